"""A one-click GPT-2 fine-tune inside a tab: a button, then the job's ETA and progress, then its
model picked in the tab's model picker.

`build(manager, one, picker, tasks)` adds the button and a status line under it. The job runs in
the background (`gpt.jobs`), so the visitor keeps using the tab; a timer polls the job every two
seconds while it is queued or running. Offline, the button says what it needs and starts nothing.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from gpt.jobs import NOBODY, JobError, JobManager, JobStatus, Visitor
from gpt.lab.oneclick import OneClick, why_not
from gpt.lab.registry import default_registry
from pages.common import duration, esc, friendly_errors, model_choices
from pages.visitors import viewer_of, visitor_of

POLL_S = 2.0


def progress_line(status: JobStatus) -> str:
    """One line for a queued or running job: where it is and how long is left."""
    estimate = (status.estimate or {}).get("text")
    if status.state == "queued":
        wait = f" It should take {estimate}." if estimate else ""
        return f"Job **{status.id}** is queued behind another job.{wait}"
    if status.stage:
        done, total = status.stage.get("done", 0), status.stage.get("total", 0)
        count = f" ({done}/{total} scored)" if total > 1 else ""
        if status.stage.get("stage") != "evaluating":
            return f"Job **{status.id}** is {status.stage.get('stage')} on the test set{count}."
        return f"Job **{status.id}** finished training; now evaluating on the test set{count}."
    if status.max_steps:
        where = f"step {status.step}/{status.max_steps} ({status.progress * 100:.0f}%)"
    else:
        where = "preparing (downloading the model and data, caching the trunk)"
    left = f" · about {duration(status.eta_s, rough=True)} left" if status.eta_s else ""
    told = f" · estimated {estimate} at the start" if estimate else ""
    return f"Job **{status.id}** is training: {where}{left}{told}."


def end_line(status: JobStatus, metrics: dict[str, Any]) -> str:
    """What a finished job gave: its test metrics, or why it stopped."""
    if status.state == "succeeded":
        test = metrics.get("test") or {}
        shown = [
            f"{label} {test[key]:.3f}"
            for key, label in (
                ("test_accuracy", "test accuracy"),
                ("test_f1", "spam F1"),
                ("test_rouge_l_f1", "ROUGE-L F1"),
                ("test_loss", "test loss"),
            )
            if isinstance(test.get(key), int | float)
        ]
        scores = f" ({', '.join(shown)})" if shown else ""
        return f"Job **{status.id}** finished{scores}: **job:{status.id}** is now picked above."
    reason = f": {esc(status.error)}" if status.error else ""
    return (
        f"Job **{status.id}** ended **{status.state}**{reason}. The Fine-tune tab shows its log; "
        "Resume it there."
    )


@friendly_errors
def start(
    manager: JobManager, one: OneClick, job_id: str | None, by: Visitor = NOBODY
) -> tuple[Any, str, Any]:
    """Submit `one` for `by` (unless this visitor's earlier one is still active);
    (job id, line, timer)."""
    if job_id:
        try:
            status = manager.get(job_id)
        except JobError:
            status = None
        if status is not None and status.active:
            return job_id, progress_line(status), gr.Timer(active=True)
    why = why_not(one)
    if why is not None:
        return (
            job_id,
            f"⚠️ {one.title} {why}. Connect this machine to the internet and reload the page; "
            "nothing was started.",
            gr.Timer(active=False),
        )
    try:
        new_id = manager.submit(one.spec, by)
    except JobError as e:
        raise gr.Error(f"Could not start the job: {e}.") from None
    for gone in manager.last_pruned:  # pruned to make room: drop a cached copy of its model
        default_registry().remove(f"job:{gone}")
    status = manager.get(new_id)
    where = "starting now" if status.state == "running" else "queued behind the running job"
    line = (
        f"Started job **{new_id}** ({where}): {esc(one.about)}. On 2 CPU cores it took about "
        f"**{one.minutes:.0f} min** plus the download; its own estimate for this machine follows "
        "once it starts. Keep using the tab meanwhile; the Fine-tune tab shows its curves."
    )
    return new_id, line, gr.Timer(active=True)


def poll(
    manager: JobManager, tasks: tuple[str, ...], job_id: str | None, picked: Any, me: Any = None
):
    """(line, picker update, timer update): progress while active; at the end, the model picked
    (the list with `me`'s own job models first, `pages.visitors.viewer_of`)."""
    if not job_id:
        return gr.skip(), gr.skip(), gr.Timer(active=False)
    try:
        status = manager.get(job_id)
    except JobError:
        return f"Job **{job_id}** no longer exists.", gr.skip(), gr.Timer(active=False)
    if status.active:
        return progress_line(status), gr.skip(), gr.skip()
    picker: Any = gr.skip()
    if status.state == "succeeded":
        picker = gr.Dropdown(choices=model_choices(tasks, me), value=f"job:{job_id}")
    return end_line(status, manager.metrics(job_id)), picker, gr.Timer(active=False)


def intro(one: OneClick) -> str:
    """The line beside the button before any click: what it trains, or why it cannot now."""
    why = why_not(one)
    if why is not None:
        return (
            f"⚠️ Unavailable now: it {esc(why)}. Online, this button trains {esc(one.about)} "
            f"in the background (about {one.minutes:.0f} min on 2 CPU cores)."
        )
    return (
        f"A background job: {esc(one.about)}; about {one.minutes:.0f} min on 2 CPU cores, plus "
        "the one-time download of GPT-2's weights and the data."
    )


def build(
    manager: JobManager,
    one: OneClick,
    picker: gr.Dropdown,
    tasks: tuple[str, ...],
    demo: gr.Blocks | None = None,
    token: gr.BrowserState | None = None,
) -> None:
    """The button and its status line; the job's model lands in `picker` when it succeeds.
    With `demo`, the line is brought up to date (online or not) on each page load; `token` is
    the page's browser token (`pages.visitors.token_state`): the job's owner."""
    with gr.Row(equal_height=True):
        button = gr.Button(
            f"🚀 {one.title}", elem_id=f"{one.name}-btn", size="md", scale=0, min_width=320
        )
        status = gr.Markdown(intro(one), elem_id=f"{one.name}-status", elem_classes="note")
    job = gr.State(None)  # this visitor's job
    timer = gr.Timer(POLL_S, active=False)

    def do_start(job_id, visitor_token=None, profile: gr.OAuthProfile | None = None):
        return start(manager, one, job_id, visitor_of(visitor_token, profile))

    button.click(
        do_start,
        [job] if token is None else [job, token],
        [job, status, timer],
        api_name=one.name.replace("-", "_"),
        concurrency_limit=1,
    )
    if demo is not None:
        demo.load(lambda: intro(one), None, status, api_visibility="private", queue=False)
    def do_poll(job_id, picked, visitor_token=None, profile: gr.OAuthProfile | None = None):
        return poll(manager, tasks, job_id, picked, viewer_of(visitor_token, profile))

    timer.tick(
        do_poll,
        [job, picker] if token is None else [job, picker, token],
        [status, picker, timer],
        api_visibility="private",
        show_progress="hidden",
    )
