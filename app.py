"""GPT-2 Lab: see and steer every part of GPT-2. `python app.py` serves it on 127.0.0.1.

`app.py` only composes the tabs in `pages/`; it honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.

At start (`python app.py`), before huggingface_hub is imported, `gpt.lab.paths.apply_storage_env`
puts the hub cache and downloads on Spaces' persistent `/data` when it exists, and
`gpt.lab.hub.start_check` asks the Hugging Face hub, in the background, whether it answers (the
model pickers list the GPT-2 sizes to download when it does).
"""

from __future__ import annotations

if __name__ == "__main__":  # before anything imports huggingface_hub (gradio does)
    from gpt.lab import hub
    from gpt.lab.paths import apply_storage_env

    apply_storage_env()
    hub.start_check()

import logging  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from gpt.jobs import JobManager  # noqa: E402
from gpt.lab import hub  # noqa: E402
from gpt.lab.paths import JOBS_DIR_ENV, storage_paths  # noqa: E402
from gpt.lab.registry import add_job_models, default_registry  # noqa: E402
from pages import attention, chat, classify, generation, inside, jobs, tokenizer  # noqa: E402
from pages.common.heavy import share_heavy_slots  # noqa: E402
from pages.common.render import CSS  # noqa: E402
from pages.visitors import (  # noqa: E402
    BUDGET_ENV,
    PER_VISITOR_ENV,
    env_int,
    env_number,
    multiuser_mode,
    token_state,
)

# What `launch()` needs besides the Blocks: the page CSS and the server-side upload cap (the
# fine-tuning tab takes data files up to 20 MB; the tokenizer tab checks its own smaller cap).
LAUNCH_KWARGS = {"css": CSS, "max_file_size": "20mb", "footer_links": ["api"]}
MAX_QUEUED_JOBS = 5
# Multi-user mode: the events each tab marks heavy (they run a model) share one queue of
# HEAVY_CONCURRENCY slots (a 2-vCPU Space: one per core), so a flood of them leaves CPU to the
# light ones, which get no limit at all (`pages.common.share_heavy_slots`).
HEAVY_ENV = "GPT2LAB_HEAVY_CONCURRENCY"
log = logging.getLogger("gpt2lab")


def job_settings(multiuser: bool) -> dict:
    """JobManager's keyword arguments for this mode: in multi-user mode (a public Space) jobs
    have owners, 1 queued-or-running job per visitor ($GPT2LAB_JOBS_PER_VISITOR) and a 10 GB
    disk budget ($GPT2LAB_DISK_BUDGET_GB); locally neither limit unless set."""
    budget_gb = env_number(BUDGET_ENV, 10 if multiuser else None)
    return dict(
        max_concurrent=1,
        max_queued=MAX_QUEUED_JOBS,
        disk_quota_bytes=None if budget_gb is None else int(budget_gb * 10**9),
        multiuser=multiuser,
        max_active_per_owner=env_int(PER_VISITOR_ENV, 1 if multiuser else None),
    )


def open_jobs(folder: str | Path, multiuser: bool = False) -> tuple[JobManager, str]:
    """The jobs manager, and a notice when `folder` cannot be used (a temporary folder is).

    A jobs folder that cannot be created or opened must not stop the app: every other tab works
    without it, and jobs still run, only not across restarts.
    """
    settings = job_settings(multiuser)
    try:
        return JobManager(folder, **settings), ""
    except (OSError, sqlite3.Error) as e:
        fallback = Path(tempfile.gettempdir()) / "gpt2lab-jobs"
        log.warning("jobs folder %s unusable (%s); using %s", folder, e, fallback)
        reason = getattr(e, "strerror", None) or type(e).__name__
        notice = (
            f"⚠️ The jobs folder `{folder}` cannot be used ({reason}), so fine-tuning jobs are "
            f"kept in a temporary folder and are lost when the app stops. Set `{JOBS_DIR_ENV}` "
            "to a writable folder and restart to keep them."
        )
        return JobManager(fallback, **settings), notice


def build_app() -> gr.Blocks:
    """The app. Jobs live in `gpt.lab.paths.storage_paths().jobs_dir` ($GPT2LAB_JOBS_DIR, else
    /data/gpt2lab/jobs on a Space with persistent storage, else ./jobs)."""
    manager, notice = open_jobs(storage_paths().jobs_dir, multiuser_mode())
    add_job_models(default_registry(), manager)  # finished jobs' models, as job:<id>
    with gr.Blocks(title="GPT-2 Lab") as demo:
        gr.Markdown("# GPT-2 Lab\nA GPT-2 built from scratch: see and steer every part of it.")
        if notice:
            gr.Markdown(notice, elem_id="jobs-notice")
        if manager.multiuser and os.environ.get("OAUTH_CLIENT_ID"):  # a Space with hf_oauth
            gr.LoginButton(elem_id="login")
        token = token_state(manager.root)  # this browser's visitor token: who owns its jobs
        with gr.Tabs():
            pages = [
                tokenizer.build(demo),
                attention.build(demo),
                generation.build(demo),
                classify.build(demo, manager, token),
                chat.build(demo, manager, token),
                inside.build(demo),
            ]
            jobs.build(demo, manager, [p for page in pages for p in page.pickers], token)
    demo.queue(default_concurrency_limit=4)
    if manager.multiuser:
        share_heavy_slots(demo, env_int(HEAVY_ENV, 2) or 2)
    return demo


def warm_up() -> None:
    """Load each tab's default model in the background, so no first visitor waits for a load
    (online, that downloads gpt2 once; its progress goes to the log every 10%)."""
    registry = default_registry()
    hub.wait(hub.CHECK_TIMEOUT + 1)
    logged = [-1]

    def report(p: hub.DownloadProgress) -> None:
        tenth = int(p.fraction * 10)
        if tenth > logged[0] or p.finished:
            logged[0] = tenth
            log.warning("downloading %s", p.line())

    for module in (attention, classify, chat):
        name = registry.default(module.TASKS)
        if name is None:
            continue
        try:
            registry.get(name, progress=report)
        except Exception as e:  # a broken model shows its error in the tab; the app still starts
            log.warning("could not preload %s: %s", name, e)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    paths = storage_paths()
    if paths.persistent:
        log.warning(
            "persistent storage: jobs in %s, hub cache in %s",
            paths.jobs_dir,
            paths.hf_home or "HF_HOME",
        )
    state = hub.wait(hub.CHECK_TIMEOUT + 0.5)  # the pickers are built with its answer
    log.warning("Hugging Face hub: %s", state.line())
    app = build_app()
    threading.Thread(target=warm_up, name="gpt2lab-warm-up", daemon=True).start()
    app.launch(**LAUNCH_KWARGS)


if __name__ == "__main__":
    main()
