"""Fine-tune tab: start background training jobs, watch them learn, and use their models.

Training runs in `gpt.jobs.JobManager`'s worker processes; this tab only submits specs, polls the
plain `JobStatus` objects (a `gr.Timer`, active while a job is queued or running) and draws them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt.jobs import (
    BASE_TASKS,
    KIND_WORDS,
    NOBODY,
    RANGES,
    JobError,
    JobManager,
    JobPolicy,
    JobStatus,
    Visitor,
    a_job,
)
from gpt.lab.export import ExportError, export, export_zip, push
from gpt.lab.hub import endpoint as hub_endpoint
from gpt.lab.hub import explain
from gpt.lab.recipes import METHOD_WORDS, advice, base_family, form_number, tune_defaults
from gpt.lab.recipes import with_tune_defaults as recipe_fields
from gpt.lab.registry import default_registry
from gpt.lab.sources import SOURCES, availability
from gpt.train.metrics import majority_accuracy
from pages.common.heavy import heavy, light
from pages.common.inputs import friendly_errors, job_errors, named_errors, number_input, scrub
from pages.common.models import Page, Picker, model_card_box, model_choices, picker_state
from pages.common.render import duration, esc
from pages.common.views import EXPORT_DIR
from pages.visitors import ensure_token, owner_of, viewer_of, visitor_of, who

KINDS = [
    ("Spam classifier (classify)", "classify"),
    ("Instruction following (instruct)", "instruct"),
    ("Language model (lm)", "lm"),
]
METHODS = [("Full: every weight", "full"), ("Last blocks only", "last_blocks"), ("LoRA", "lora")]
UPLOAD_TYPES = {"lm": (".txt",), "classify": (".tsv", ".csv"), "instruct": (".json", ".jsonl")}
UPLOAD_HELP = {
    "lm": "a UTF-8 .txt file of plain text",
    "classify": "a .tsv file of `label<TAB>text` lines or a .csv with `label,text` columns "
    "(labels ham / spam)",
    "instruct": "a .json list or .jsonl lines of Alpaca records (`instruction`, `input`, `output`)",
}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
LEARNING_RATES = ["1e-5", "3e-5", "5e-5", "1e-4", "3e-4", "5e-4", "1e-3", "2e-3", "3e-3"]
COLUMNS = ["Job", "Kind", "Base", "Method", "State", "Progress", "Step", "Train loss", "ETA"]
OWNER_COLUMN = "Owner"  # multi-user mode: "you" / "another visitor"
EMPTY = "### No jobs yet — start one above\nYour jobs, their progress and loss curves show up here."
log = logging.getLogger("gpt2lab.jobs")
STATE_WORDS = {  # "Job j3 has succeeded", never "is succeeded"
    "queued": "is queued", "running": "is running", "succeeded": "has succeeded",
    "failed": "has failed", "cancelled": "was cancelled", "interrupted": "was interrupted",
}  # fmt: skip


def job_message(text: str) -> str:
    """A jobs manager's message as a sentence for the page: capitalised, states in words.

    >>> job_message("job j1 is succeeded; only queued or running jobs cancel")
    'Job j1 has succeeded; only queued or running jobs cancel'
    """
    states = r"\bis (" + "|".join(STATE_WORDS) + r")\b"
    text = re.sub(states, lambda m: STATE_WORDS[m.group(1)], text)
    return text[:1].upper() + text[1:]


# --- choices ------------------------------------------------------------------------------------


def base_choices(kind: str) -> list[tuple[str, str]]:
    return model_choices(BASE_TASKS.get(kind, ()))


def data_choices(kind: str) -> list[tuple[str, str]]:
    """Bundled data, an upload, and the online sources of `kind` (each marked unavailable, with
    the reason, while the network is known to be off and it is not cached)."""
    online = []
    for name, src in SOURCES.items():
        if src.kind == kind:
            why = availability(name)
            about = f"online: {src.description}" if why is None else f"unavailable, {why}"
            online.append((f"{name} ({about})", name))
    return [("Bundled sample data", "bundled"), ("Upload a file", "upload"), *online]


def data_info(kind: str) -> str:
    return f"Uploads: {UPLOAD_HELP.get(kind, 'a data file')}; at most 20 MB."


def on_kind(kind: str):
    bases = base_choices(kind)
    return (
        gr.Dropdown(choices=bases, value=bases[0][1] if bases else None),
        gr.Dropdown(choices=data_choices(kind), value="bundled", info=data_info(kind)),
    )


def epochs_text(epochs: float) -> str:
    return f"{epochs:g} epoch{'' if epochs == 1 else 's'}"


def span(field: str) -> str:
    """A job field's allowed range as the form's notes say it, from the one table `submit`
    checks (`gpt.jobs.RANGES`): span("epochs") == "0.1 to 20"."""
    _, lo, hi, _ = RANGES[field]
    return f"{form_number(lo)} to {form_number(hi)}"


def recipe_info(kind: str, method: str, base: str) -> str:
    """The learning rate box's note: where its default comes from (`gpt.lab.recipes`), e.g.
    'LoRA on a small model: 3 epochs at 1e-3 (adapters start at zero: ...). 1e-6 to 0.01; ...'"""
    d = tune_defaults(kind, method, base)
    family = "GPT-2" if base_family(base) == "gpt2" else "a small model"
    name = METHOD_WORDS.get(method, method)
    return (
        f"{name[:1].upper()}{name[1:]} on {family}: {epochs_text(d.epochs)} at "
        f"{form_number(d.lr)} ({d.why}). {span('lr')}; pick one or type a value"
    )


def on_recipe(kind: str, method: str, base: str) -> tuple[Any, Any]:
    """Epochs and learning rate that work for the picked kind, method and base: set whenever one
    of the three changes."""
    if not method:
        return gr.skip(), gr.skip()
    d, base = tune_defaults(kind, method, base or ""), base or ""
    lr = gr.Dropdown(LEARNING_RATES, value=form_number(d.lr), info=recipe_info(kind, method, base))
    return gr.Number(value=d.epochs), lr


# --- the upload: Gradio's to receive, the job's to check -------------------------------------


def check_upload(upload: Any, kind: str) -> Path:
    if not upload:
        raise gr.Error(f"Choose a file to upload first: {UPLOAD_HELP[kind]}.")
    if not (path := upload_path(upload)) or not path.is_file():
        raise gr.Error("The upload did not arrive; upload the file again.")
    if path.suffix.lower() not in UPLOAD_TYPES[kind]:
        raise gr.Error(
            f"{a_job(kind).capitalize()} reads {UPLOAD_HELP[kind]}; {path.name!r} is not one. "
            "Pick another file or another kind."
        )
    if (size := path.stat().st_size) > MAX_UPLOAD_BYTES:
        raise gr.Error(
            f"{path.name} is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB. "
            "Upload a smaller sample."
        )
    return path


def upload_folder() -> Path:
    """Gradio's upload folder (its cache): where `/upload` puts files, served at
    `/gradio_api/file=` to anyone who has the URL."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def upload_path(upload: Any) -> Path | None:
    """The file of an upload as Gradio hands it over: a path, or a dict or FileData with one."""
    raw = upload.get("path") if isinstance(upload, dict) else getattr(upload, "path", upload)
    return Path(raw) if raw and isinstance(raw, str | Path) else None


def discard_upload(upload: Any) -> bool:
    """Delete an upload from Gradio's cache (its job has its own copy, or it was refused), so
    its `/gradio_api/file=` URL stops answering; files outside the cache are never touched.
    Whether one was deleted."""
    path = upload_path(upload)
    if path is None or upload_folder() not in (path := path.resolve()).parents:
        return False
    with contextlib.suppress(OSError):
        path.unlink()
        with contextlib.suppress(OSError):  # its content-hash folder, once empty
            path.parent.rmdir()
        return True
    return False


def sweep_uploads(age_s: float) -> int:
    """Delete files in Gradio's upload folder older than `age_s` (left by an earlier run that
    ended without cleaning its cache); the number deleted. For a Space, where the folder is
    this app's alone."""
    cache, cutoff, gone = upload_folder(), time.time() - age_s, 0
    for folder, _, names in os.walk(cache, topdown=False):
        for name in names:
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    gone += 1
        with contextlib.suppress(OSError):
            if Path(folder) != cache:
                Path(folder).rmdir()  # only when empty
    if gone:
        log.warning("Gradio cache: removed %d stale upload(s) from %s", gone, cache)
    return gone


# --- commands -----------------------------------------------------------------------------------


@friendly_errors
def start_job(
    manager: JobManager, kind: str, base: str, data: str, upload: Any, method: str,
    epochs: Any, lr: Any, batch_size: Any, max_steps: Any, eval_every: Any,
    by: Visitor = NOBODY,
) -> tuple[str, str]:  # fmt: skip
    """Submit the form's values for `by`, as they are; (message, job id for the job picker).
    `JobManager.submit` checks the job (its numbers, base, data, owner, limits and disk budget)
    and says what is wrong; here only the upload's type and size, which Gradio receives. An
    upload in Gradio's cache is deleted either way: copied into the job, or refused."""
    spec = {"kind": kind, "base": base, "data": data, "method": method, "epochs": epochs,
            "lr": lr, "batch_size": batch_size, "max_steps": max_steps, "eval_every": eval_every,
            "score_base": True}  # the base model on the same test set: what tuning changed
    try:
        file = check_upload(upload, kind) if data == "upload" else None
        # the recipe fills the rest (last_n_blocks; for classify, the every-prefix loss)
        job_id = manager.submit(recipe_fields(spec), by, upload=file and str(file))
    except JobError as e:
        msg = job_message(str(e))
        if file is not None and str(file) in msg:  # the file is what is wrong
            msg = msg.replace(str(file), file.name)
            raise gr.Error(
                f"{msg}. Fix the file (it needs {UPLOAD_HELP[kind]}) and upload it again."
            ) from None
        raise gr.Error(f"Could not start the job: {msg}.") from None
    finally:
        if data == "upload":
            discard_upload(upload)
    status = manager.get(job_id)
    where = "starting now" if status.state == "running" else "queued behind the running job"
    said = f"Started job **{job_id}** ({where})."
    if cap := status.spec.get("step_cap"):  # max steps 0: the epochs decide, up to the cap
        said += f" At most {cap} steps (this Space's size limit), fewer if the epochs end sooner."
    if n := len(gone := manager.last_pruned):
        for old in gone:  # drop a cached copy of its model
            default_registry().remove(f"job:{old}")
        whose = "your own older ones, or ones past their retention age"
        said += (
            f" To stay within the disk budget, {n} finished job{'s' if n > 1 else ''} "
            f"({whose if manager.multiuser else 'of anonymous visitors'}) "
            f"{'were' if n > 1 else 'was'} removed: {', '.join(gone)}."
        )
    return said, job_id  # the list adds its choice


def estimate_text(job_id: str, record: dict[str, Any]) -> str:
    """A job's estimate in a sentence: a running job's says what its start took and what is
    left; a queued job's, the work alone (its start is on top).

    >>> estimate_text("j1", {"seconds": 5, "text": "about 5 s on this machine", "start_s": 8.4})
    'Job **j1** started in 8 s (Python, the model and the data loaded); training and testing should take about 5 s more on this machine.'
    """
    busy = " (timed while another job ran, so probably less)" if record.get("busy") else ""
    text = record["text"].removesuffix(" on this machine")
    if (start := record.get("start_s")) is not None:
        return (
            f"Job **{job_id}** started in {duration(start)} (Python, the model and the data "
            f"loaded); training and testing should take {text} more on this machine{busy}."
        )
    return (
        f"Job **{job_id}** should take {text} on this machine{busy}, plus a few seconds to "
        "start (Python, the model and the data)."
    )


def estimate_job(manager: JobManager, job_id: Any, wait_s: float = 30.0) -> str:
    """How long a just-started job should take. A queued job is estimated here (its data
    counted, a few steps of its model timed); a running one estimates itself once its model
    is loaded, so this waits up to `wait_s` for that."""
    if not job_id or not isinstance(job_id, str):
        return ""
    try:
        status = manager.get(job_id)
        if status.state == "queued":
            return estimate_text(job_id, manager.estimate(job_id))
        deadline = time.time() + wait_s
        while status.estimate is None and status.active and time.time() < deadline:
            time.sleep(0.5)
            status = manager.get(job_id)
    except Exception as e:  # an estimate is a courtesy: never fail the start over it
        return f"No time estimate for job {job_id}: {esc(str(e))}."
    if status.estimate is None:
        return f"Job **{job_id}**'s time estimate shows in its details once its model is loaded."
    return estimate_text(job_id, status.estimate)


def _job_id(job_id: Any) -> str:
    if not job_id or not isinstance(job_id, str):
        raise gr.Error("Select a job in the list first.")
    return job_id


def resume_hint(manager: JobManager, job_id: str, sentence: bool = False) -> str:
    if manager.has_checkpoint(job_id):
        return "**Resume** continues it from its last checkpoint."
    return f"{'I' if sentence else 'i'}t had no checkpoint yet, so **Resume** starts it over."


@friendly_errors
def cancel_job(manager: JobManager, job_id: str, by: Visitor = NOBODY) -> str:
    with job_errors(job_message):
        status = manager.cancel(_job_id(job_id), by)  # the policy decides whether `by` may
    return f"Job **{status.id}** cancelled at step {status.step}; {resume_hint(manager, status.id)}"


@friendly_errors
def resume_job(manager: JobManager, job_id: str, by: Visitor = NOBODY) -> str:
    with job_errors(job_message):
        manager.resume(_job_id(job_id), by)
        status = manager.get(job_id)
    return f"Job **{job_id}** resumed{f' ({status.note})' if status.note else ''}."


@friendly_errors
def delete_job(manager: JobManager, job_id: str, by: Visitor = NOBODY) -> str:
    if job_id is None:  # the browser's confirm was declined
        return "Nothing deleted."
    with job_errors(job_message):
        manager.delete(_job_id(job_id), by)
    default_registry().remove(f"job:{job_id}")  # drop a cached copy of its model
    return f"Job **{job_id}** deleted with its files."


def unpick_gone(
    pickers: list[Picker], values: list[Any], me: str | None = None
) -> tuple[str, dict[gr.Dropdown, Any]]:
    """After a job is deleted: (a sentence, an update for each picker that still holds a
    `job:` model no longer listed, picking the visitor's default for its tasks instead). A name
    typed by hand (a hub id) is left alone: it was never in the list."""
    updates: dict[gr.Dropdown, Any] = {}
    moved = []
    for picker, value in zip(pickers, values):
        if picker.dropdown in updates or not str(value or "").startswith("job:"):
            continue
        choices, mine, _ = picker_state(picker.tasks, me)
        if value not in {name for _, name in choices}:
            updates[picker.dropdown] = gr.Dropdown(choices=choices, value=mine)
            moved.append(f"the {picker.tab} tab now uses **{mine or 'no model'}**")
    said = "; ".join(moved)
    return (said[:1].upper() + said[1:] + ".") if moved else "", updates


def finished_job(
    manager: JobManager, job_id: Any, verb: str = "", by: Visitor | None = None
) -> JobStatus:
    """The job, once it has a model to use (`verb`: to download, push); with `by`, in
    multi-user mode only its owner's (or the admin's): it learned from their data."""
    with job_errors(job_message):
        status = manager.get(_job_id(job_id))
    if status.model_path is None:
        if not verb and status.state == "succeeded":
            raise gr.Error(f"Job {job_id} has succeeded but kept no model.")
        state, ready = STATE_WORDS.get(status.state, status.state), f"can be {verb}ed" * bool(verb)
        raise gr.Error(f"Job {job_id} {state}; its model {ready or 'is ready'} once it succeeds.")
    if by is not None and manager.multiuser and not manager.policy.may(by, status):
        raise gr.Error(f"Job {job_id} is another visitor's: only they can {verb} its model.")
    return status


@friendly_errors
def open_in_tabs(
    manager: JobManager, job_id: str, pickers: list[Picker]
) -> tuple[str, dict[gr.Dropdown, Any]]:
    """(message, an update per picker whose tasks fit the job: `job:<id>` picked in it)."""
    finished_job(manager, job_id)
    name = f"job:{job_id}"
    entry = next((e for e in default_registry().entries() if e.name == name), None)
    if entry is None:
        raise gr.Error(f"{name} is not in the model list yet; try again in a second.")
    if not (fits := [p for p in pickers if entry.task in p.tasks]):
        raise gr.Error(f"No other tab takes {name}, the model of {a_job(entry.task)}.")
    updates = {p.dropdown: gr.Dropdown(choices=model_choices(p.tasks), value=name) for p in fits}
    tabs = list(dict.fromkeys(f"**{p.tab}**" for p in fits))
    where = ", ".join(tabs[:-1]) + " and " + tabs[-1] if len(tabs) > 1 else tabs[0]
    msg = f"Picked **{name}** in the {where} tab{'s' * (len(tabs) > 1)}: open it in the tab bar "
    msg += "at the top."
    gr.Info(msg.replace("**", ""))
    return msg, updates


def download_model(manager: JobManager, job_id: str, by: Visitor = NOBODY) -> str:
    """A finished job's model as a .zip of a Hugging Face folder (`gpt.lab.export`) that
    `transformers` loads; its path, for the download box."""
    status = finished_job(manager, job_id, "download", by)
    folder = EXPORT_DIR / uuid.uuid4().hex[:16]
    try:
        path = export_zip(f"job:{status.id}", folder / f"gpt2lab-{status.id}.zip", jobs=manager)
    except (ExportError, OSError, ValueError) as e:
        raise gr.Error(f"Could not export job {job_id}'s model: {e}") from None
    return str(path)


REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def push_model(
    manager: JobManager, job_id: str, repo_name: str, by: Visitor = NOBODY,
    login_token: str | None = None,
) -> str:  # fmt: skip
    """Push a finished job's model (exported as `download_model` does) to the visitor's own
    namespace on the hub, as a private repo; a message with its URL. The token is the
    visitor's Hugging Face login (OAuth on a Space, with the write scope) or, locally in
    single-user mode, `HF_TOKEN`; never the server's own token for a visitor of a Space."""
    status = finished_job(manager, job_id, "push", by)
    name = (repo_name or "").strip() or f"gpt2lab-{status.id}"
    if not REPO_NAME.fullmatch(name):
        raise gr.Error(
            f"Repo name {name[:80]!r} is not a hub repo name: letters, digits, '.', '_' and '-', "
            "at most 96, no '/' (it goes to your own account)."
        )
    if not (token := login_token or (None if manager.multiuser else os.environ.get("HF_TOKEN"))):
        raise gr.Error(
            "Pushing needs your Hugging Face login: press 'Sign in with Hugging Face' above"
            if manager.multiuser
            else "Pushing needs a Hugging Face token: set HF_TOKEN and restart the app"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = export(f"job:{status.id}", Path(tmp) / "model", jobs=manager)
            url = push(report.folder, name, token, endpoint=hub_endpoint())
        except ExportError as e:
            raise gr.Error(f"Could not export job {job_id}'s model: {e}") from None
        except Exception as e:  # the hub refused (bad token, no write scope, network)
            raise gr.Error(f"The hub did not take the model: {explain(e)[1]}") from None
    return f"Pushed job {status.id}'s model to {url} (a private repo of yours)."


# --- the list and the curves --------------------------------------------------------------------


def stage_text(s: JobStatus) -> str | None:
    """A running job's stage after training, in words ("training done, evaluating on the test
    set: 40 / 120 scored"), or None while it trains."""
    if not s.stage:
        return None
    done, total = s.stage.get("done", 0), s.stage.get("total", 0)
    stage = s.stage.get("stage", "evaluating")
    stage = "training done, evaluating" if stage == "evaluating" else stage
    return f"{stage} on the test set" + (f": {done} / {total} scored" if total > 1 else "")


def progress_cell(s: JobStatus) -> str:
    """A bar of the steps done, or after training of the test set scored ("evaluating ▓▓░ 40%")."""
    stage, fraction, name = s.stage or {}, s.progress, ""
    if stage:
        fraction = stage.get("done", 0) / max(1, stage.get("total", 1))
        name = "evaluating " if stage.get("stage") == "evaluating" else "scoring base "
    full = int(round(fraction * 10))
    return name + "█" * full + "░" * (10 - full) + f" {fraction * 100:.0f}%"


def short_base(base: str) -> str:
    return Path(base).name if "/" in base or "\\" in base else base


def eta_cell(s: JobStatus) -> str:
    """A running job's time left (from its recent steps), or a queued job's estimate."""
    if s.state == "running" and s.eta_s is not None:
        return duration(s.eta_s)
    if s.state == "queued" and s.estimate:
        return f"≈ {s.estimate['text'].removeprefix('about ').removesuffix(' on this machine')}"
    return "—"


def job_rows(jobs: list[JobStatus], me: str | None = None, owners: bool = False) -> pd.DataFrame:
    """The jobs table; with `owners` (multi-user mode) an Owner column, anonymised as "you"
    (`me`'s jobs) or "another visitor"."""
    rows = [
        [s.id, s.kind, short_base(s.base), s.method.replace("_", " "), s.state, progress_cell(s),
         f"{s.step} / {s.max_steps}" if s.max_steps else str(s.step),
         "—" if s.loss is None else f"{s.loss:.4f}", eta_cell(s),
         *([who(s.owner, me)] if owners else [])]
        for s in jobs
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS + ([OWNER_COLUMN] if owners else []))


@friendly_errors
def list_jobs(manager: JobManager, me: str | None = None) -> pd.DataFrame:
    """Every job, newest first: the `/jobs` endpoint."""
    return job_rows(manager.list(), me, manager.multiuser)


def data_text(data: str, mine: bool = True) -> str:
    """A job's data in words: an upload's (or URL's) name only for its owner (`mine`)."""
    if data == "bundled":
        return "the bundled sample data"
    if data in SOURCES:
        return f"the online source `{data}`"
    if data.startswith(("http://", "https://")):
        return f"`{esc(data)}`" if mine else "a downloaded file"
    return f"your file `{esc(Path(data).name)}`" if mine else "an uploaded file"


def kept_text(status: JobStatus, policy: JobPolicy, now: float | None = None) -> str | None:
    """How long a finished job is kept (the retention age), or None when it is kept until
    deleted: 'Kept for 2 h after it finishes, then removed to make room: about 1 h 00 min left.'"""
    if (text := policy.retention_text()) is None:
        return None
    if status.active:
        return f"{text}."
    now = time.time() if now is None else now
    left = (status.finished or status.created) + (policy.retention_s or 0) - now
    if left <= 0:
        return f"{text}: it is past that age, so a new job may remove it."
    return f"{text}: about {duration(left)} left."


def details(
    status: JobStatus, metrics: dict[str, Any], public: Path | None = None, resume: str = "",
    mine: bool = True, kept: str | None = None,
) -> str:  # fmt: skip
    """The selected job in words. `public` (multi-user mode: the job's folder): its error
    without tracebacks, its paths relative to that folder. `mine`: the viewer owns it (an
    upload's name shows only to its owner); `kept`: how long it is kept (`kept_text`)."""
    spec, test = status.spec, metrics.get("test", {})
    parts = [
        f"**{status.id}** · {KIND_WORDS[status.kind]} job from **{esc(short_base(status.base))}**"
        f" · {status.method.replace('_', ' ')} · **{status.state}**",
        f"data: {data_text(spec.get('data') or status.data, mine)}",
    ]
    if status.max_steps:
        parts.append(f"step {status.step} / {status.max_steps} ({status.progress:.0%})")
    if stage := stage_text(status):
        parts.append(stage)
    elif status.active and status.eta_s is not None:
        parts.append(f"about {duration(status.eta_s)} left")
    if status.active and status.estimate:
        said = "estimated at its start" if status.state == "running" else "expected to take"
        start = status.estimate.get("start_s")
        after = f" after a start of {duration(start)}" if start is not None else ""
        parts.append(f"{said}: {status.estimate['text']}{after}")
    if status.started and status.active:
        parts.append(f"running for {duration(time.time() - status.started)}")
    text = " · ".join(parts)
    if scores := [(k, v) for k, v in test.items() if isinstance(v, int | float)][:4]:
        shown = ", ".join(f"{k.removeprefix('test_').replace('_', ' ')} {v:.3f}" for k, v in scores)
        text += f"\n\nTest set: {shown}.{base_change_text(test)}{baseline_text(test)}"
    if status.state == "succeeded" and (said := advice(spec, metrics)) is not None:
        text += f"\n\n**Weak result.** {esc(said.text())}"
    if note := loss_note(metrics, spec.get("prefix_weight") or 0):
        text += f"\n\n{note}"
    if status.model_path:
        text += (
            f"\n\nIts model is **job:{status.id}** in every model picker; "
            "**Open in other tabs** picks it for you."
        )
    text += f"\n\n{kept}" if kept else ""
    text += f"\n\nNote: {esc(status.note)}" if status.note else ""
    if status.error:
        error = status.error if public is None else scrub(status.error, public)
        data = str(spec.get("data") or status.data)
        if not mine and data_text(data, mine) != data_text(data):  # an upload's name: theirs
            error = error.replace(Path(data).name, "(an uploaded file)")
        text += f"\n\n```\n{error[-1500:]}\n```"
    if status.state in ("cancelled", "interrupted", "failed"):
        text += "\n\n" + (resume or "**Resume** continues it from its last checkpoint.")
    return text


def base_change_text(test: dict[str, Any]) -> str:
    """What fine-tuning changed: the base model's scores on the same test set, then the job's
    ("Before fine-tuning, the base model scored: accuracy 0.400 → 0.950.")."""
    base = test.get("base")
    if not isinstance(base, dict):
        return ""
    keys = [
        k
        for k in ("test_accuracy", "test_f1", "test_rouge_l_f1", "test_loss", "test_perplexity")
        if isinstance(base.get(k), int | float) and isinstance(test.get(k), int | float)
    ]
    shown = ", ".join(f"{k.removeprefix('test_')} {base[k]:.3f} → {test[k]:.3f}" for k in keys)
    return f"\n\nBefore fine-tuning, the base model scored: {shown}." if keys else ""


def baseline_text(test: dict[str, Any], labels: tuple[str, str] = ("ham", "spam")) -> str:
    """A classifier's test results next to what they must beat: the majority-class accuracy,
    and the confusion matrix (so "accuracy 0.868, recall 0.021" reads as "always ham")."""
    cm = test.get("test_confusion_matrix")
    if not (isinstance(cm, list) and len(cm) == 2 and all(len(r) == 2 for r in cm)):
        return ""
    base = majority_accuracy(cm)
    common = labels[0] if sum(cm[0]) >= sum(cm[1]) else labels[1]
    versus = ""
    if isinstance(acc := test.get("test_accuracy"), int | float):
        versus = f": this model is {abs(acc - base):.3f} {'above' if acc >= base else 'below'} it"
    rows = "\n".join(f"| **{labels[i]}** | {cm[i][0]} | {cm[i][1]} |" for i in range(2))
    return (
        f"\n\nAlways answering **{common}** would score {base:.3f}{versus}.\n\n"
        f"| true ↓ · predicted → | {labels[0]} | {labels[1]} |\n|---|---|---|\n{rows}"
    )


CURVES = [  # (records, key, name, colour, plot column)
    ("steps", "loss", "train loss", "#4a6fa5", 1),
    ("evals", "val_loss", "val loss", "#e4572e", 1),
    ("evals", "val_accuracy", "val accuracy", "#2e8b57", 2),
]
SMOOTH_POINTS = 20  # the train loss's moving average spans about 1/20 of the run


def smooth(values: list[float], span: int | None = None) -> list[float]:
    """An exponential moving average over `span` points (default: 1/`SMOOTH_POINTS` of them,
    1 to 50), debiased so its first points are not pulled towards 0 (as TensorBoard does).

    >>> [round(v, 3) for v in smooth([0.0, 6.0, 0.0, 6.0], 3)]
    [0.0, 4.0, 1.714, 4.0]
    """
    span = span or min(50, max(1, len(values) // SMOOTH_POINTS))
    beta = 1 - 2 / (span + 1)
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        avg, weight = beta * avg + (1 - beta) * v, beta * weight + (1 - beta)
        out.append(avg / weight)
    return out


def curve_points(metrics: dict[str, Any]) -> dict[str, tuple[list[int], list[float]]]:
    """(steps, values) of each curve in `CURVES`, by key: what the chart and its note read."""
    out = {}
    for rows, key, *_ in CURVES:
        kept = [r for r in metrics.get(rows, []) if isinstance(r.get(key), int | float)]
        out[key] = ([r["step"] for r in kept], [float(r[key]) for r in kept])
    return out


def loss_note(metrics: dict[str, Any], prefix_weight: float = 0.0) -> str:
    """Where the train loss's smoothed line ends against the last val loss, in words: the two
    numbers the chart draws last, and why they differ."""
    points = curve_points(metrics)
    (train_steps, train), (val_steps, val) = points["loss"], points["val_loss"]
    if not train or not val:
        return ""
    last = smooth(train)[-1]
    side = "above" if last > val[-1] else "below"
    text = (
        f"The train loss's smoothed line ends at {last:.3f} (step {train_steps[-1]}), {side} "
        f"the last val loss, {val[-1]:.3f} (step {val_steps[-1]})."
    )
    if prefix_weight:
        text += (
            f" The train loss adds the every-prefix term (× {prefix_weight:g}) and the val loss "
            "scores each message's last token only, so the two measure different things."
        )
    if side == "below":
        text += " Below means the model fits its training examples better than unseen ones."
    return text


def curves(metrics: dict[str, Any]) -> go.Figure | None:
    """Train loss (each step as a faint point, and its smoothed line), val loss, and val accuracy
    for classifiers, against the step."""
    if not metrics.get("steps") and not metrics.get("evals"):
        return None
    points = curve_points(metrics)
    cols = 2 if points["val_accuracy"][0] else 1
    fig = make_subplots(
        rows=1, cols=cols, subplot_titles=("Loss", "Accuracy")[:cols], horizontal_spacing=0.1
    )
    for _, key, name, colour, col in (c for c in CURVES if c[-1] <= cols):
        (xs, ys), at = points[key], dict(row=1, col=col)
        line = dict(color=colour, width=2)
        if key == "loss":  # noisy per step: faint points under a moving average
            faint = dict(color=colour, size=3, opacity=0.25)
            fig.add_scatter(x=xs, y=ys, mode="markers", name=f"{name} (each step)",
                            legendgroup=name, marker=faint, **at)  # fmt: skip
            fig.add_scatter(x=xs, y=smooth(ys), mode="lines", name=f"{name} (smoothed)",
                            legendgroup=name, line=line, **at)  # fmt: skip
        else:
            fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, line=line, **at)
        fig.update_xaxes(title_text="Step", **at)
    fig.update_yaxes(title_text="Loss", row=1, col=1)
    if cols == 2:
        fig.update_yaxes(title_text="Accuracy", range=[0, 1.02], row=1, col=2)
    margin = dict(l=60, r=20, t=40, b=50)
    fig.update_layout(height=340, margin=margin, legend=dict(orientation="h", y=-0.25))
    return fig


def shown_log(manager: JobManager, job: JobStatus, by: Visitor = NOBODY) -> str:
    """The job's log as this visitor may see it: all of it in single-user mode; in multi-user
    mode only for its owner (or the admin), without tracebacks and server paths."""
    if not manager.multiuser:
        return manager.log(job.id)
    if not manager.policy.may(by, job):
        return "(The log is shown to the visitor who started this job.)"
    return scrub(manager.log(job.id), manager.job_dir(job.id))


@dataclass
class JobsView:
    """The components the list redraws on every refresh (`refresh` returns one update each)."""

    empty: gr.Markdown  # "No jobs yet", shown while there are none
    table: gr.Dataframe
    picked: gr.Dropdown  # the selected job
    info: gr.Markdown  # its details
    plot: gr.Plot  # its curves
    seen: gr.State  # what the plot shows, so it is re-sent only when the job moved on
    timer: gr.Timer  # ticks while a job is queued or running
    log: gr.Code
    # Cancel, Resume, Delete: enabled only for a job the viewer may change (theirs, or the admin)
    commands: tuple[gr.Button, ...] = ()

    def outputs(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)][:-1] + [*self.commands]


def refresh(
    manager: JobManager, view: JobsView, selected: Any, seen: Any, by: Visitor = NOBODY
) -> dict[Any, Any]:
    """Everything the list shows, for the timer: an update per component of `view`. The plot is
    re-sent only when the selected job moved on. `by` decides what multi-user mode shows."""
    me, owners, jobs = by.owner, manager.multiuser, manager.list()
    job = next((s for s in jobs if s.id == selected), jobs[0]) if jobs else None
    key, info, log, plot = None, "", "", gr.Plot(value=None, visible=False)
    allowed = job is not None and manager.policy.may(by, job)  # another's job: its buttons off
    if job is not None:
        metrics = manager.metrics(job.id)
        key = [job.id, job.state, job.step, len(metrics["evals"]), len(metrics["steps"])]
        plot = gr.skip()
        if key != seen:
            fig = curves(metrics)
            plot = gr.Plot(value=fig, visible=fig is not None)
        info = details(
            job, metrics, manager.job_dir(job.id) if owners else None,
            resume_hint(manager, job.id, sentence=True),
            mine=not owners or (me is not None and job.owner == me),
            kept=kept_text(job, manager.policy) if owners else None,
        )  # fmt: skip
        log = shown_log(manager, job, by)
    choices = [
        (f"{s.id} · {s.kind} · {s.state}" + (f" · {who(s.owner, me)}" if owners else ""), s.id)
        for s in jobs
    ]
    return {
        view.empty: gr.Markdown(visible=not jobs),
        view.table: gr.Dataframe(value=job_rows(jobs, me, owners), visible=bool(jobs)),
        view.picked: gr.Dropdown(choices=choices, value=job and job.id),
        view.info: info,
        view.plot: plot,
        view.seen: key,
        view.timer: gr.Timer(active=any(s.active for s in jobs)),
        view.log: log,
        **command_looks(view, allowed, job is not None and job.active),  # Cancel first
        **{b: gr.Button(interactive=allowed) for b in view.commands[1:]},
    }


def command_looks(view: JobsView, allowed: bool, active: bool) -> dict[Any, Any]:
    """Cancel's update: enabled when the viewer may change the job (`allowed`), and red
    (variant "stop") only while it is queued or running (`active`); grey otherwise."""
    variant = "stop" if allowed and active else "secondary"
    return {b: gr.Button(interactive=allowed, variant=variant) for b in view.commands[:1]}


# --- layout -------------------------------------------------------------------------------------


def limits_text(policy: JobPolicy) -> str:
    """What multi-user mode promises and limits, said in the tab."""
    per, cap, quota, own = policy.per_visitor, policy.max_examples, policy.disk_quota, policy.owner_quota
    limits = [
        f"{per if per is not None else 'any number of'} queued or running "
        f"job{'s' if per != 1 else ''} per visitor",
        cap and f"at most {cap:,} examples per job (max steps × batch size; with max steps 0 "
        "the epochs decide, up to that)",
        quota and f"{quota / 1e9:.3g} GB of disk for all jobs",
        own and f"{own / 1e9:.3g} GB of disk per visitor (data included)",
    ]
    if kept := policy.retention_text():
        kept = f"**Your models:** {kept[:1].lower()}{kept[1:]}; until then only your own new jobs "
        kept += "replace your older ones, nobody else's."
    else:
        kept = "**Your models** are kept until you delete them; only your own new jobs replace "
        kept += "your older ones when the disk is full."
    return (
        "**Shared Space:** everyone sees the jobs list and can use finished models in every tab; "
        "only the visitor who started a job (or the admin) can cancel, resume or delete it. "
        f"Limits: {'; '.join(x for x in limits if x)}. {kept} An uploaded file is deleted from the upload cache "
        "once its job has copied it, and with its job; only you see its name."
    )


def dropdown(choices: Any, value: Any, label: str, elem_id: str, **kw: Any) -> gr.Dropdown:
    return gr.Dropdown(choices, value=value, label=label, elem_id=elem_id, interactive=True, **kw)


def job_form() -> dict[str, Any]:
    """The form's inputs by name, in `_start_job`'s order: kind, base model and method; data or
    an upload; epochs and learning rate; the advanced settings."""
    kind = KINDS[0][1]
    bases = base_choices(kind)
    base = bases[0][1] if bases else None
    recipe = tune_defaults(kind, "full", base or "")
    form: dict[str, Any] = {}
    with gr.Group():
        with gr.Row():
            form["kind"] = named_errors(dropdown(KINDS, kind, "Kind", "job-kind"))
            form["base"] = dropdown(
                bases, base, "Base model", "job-base",
                allow_custom_value=True, scale=2,  # finished jobs appear at run time; long labels
            )  # fmt: skip
            method = named_errors(dropdown(METHODS, "full", "Method", "job-method"))
        model_card_box(form["base"], "job-base-card", "About the base model")
        with gr.Row(equal_height=True):
            form["data"] = dropdown(
                data_choices(kind), "bundled", "Data", "job-data", info=data_info(kind),
                allow_custom_value=True, scale=2,  # the choices change with the kind
            )  # fmt: skip
            form["upload"] = gr.File(
                label="Upload (TSV/CSV, JSON/JSONL or TXT, ≤ 20 MB)", elem_id="job-upload",
                file_types=[".txt", ".tsv", ".csv", ".json", ".jsonl"], type="filepath",
                height=170, scale=1,  # the drop icon clears the label chip
            )  # fmt: skip
        form["method"] = method
        with gr.Row():
            form["epochs"] = number_input(
                value=recipe.epochs, step=0.5, label="Epochs", elem_id="job-epochs",
                info=f"{span('epochs')} passes over the training split; set for the method and base",
            )  # fmt: skip
            form["lr"] = dropdown(
                LEARNING_RATES, form_number(recipe.lr), "Learning rate", "job-lr",
                allow_custom_value=True, info=recipe_info(kind, "full", base or ""),
            )  # fmt: skip
        with gr.Accordion("Advanced", open=False, elem_id="job-advanced"), gr.Row():
            for name, value, label, info, elem_id in (
                ("batch_size", 8, f"Batch size ({span('batch_size')})",
                 "examples per step: larger is steadier, each step slower", "job-batch"),
                ("max_steps", 0, "Max steps (0 = set by epochs)",
                 "stops the job after this many steps, whatever the epochs say", "job-max-steps"),
                ("eval_every", 50, "Evaluate every N steps",
                 "checkpoints: at each evaluation and every 5 min; a crash loses no more",
                 "job-eval"),
            ):  # fmt: skip
                form[name] = number_input(
                    value=value, precision=0, label=label, info=info, elem_id=elem_id
                )
    return form


QUIET = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)
PRIVATE = dict(api_visibility="private", queue=False)


def build(
    demo: gr.Blocks, manager: JobManager, pickers: list[Picker], token: gr.BrowserState | None = None
) -> Page:
    """The Fine-tune tab. `pickers` are the other tabs' model pickers (their `Page`s), for "Open
    in other tabs"; `token` is the page's browser token (`pages.visitors.token_state`), made
    here when not given."""
    with gr.Tab("Fine-tune", id="jobs"):
        gr.Markdown(
            "Fine-tune a model in the background: jobs run one at a time in their own process, "
            "survive page reloads, and can be cancelled and resumed from their last checkpoint."
        )
        if manager.multiuser:
            gr.Markdown(limits_text(manager.policy), elem_id="job-limits", elem_classes="note")
        token = gr.BrowserState("") if token is None else token
        form = job_form()
        start = gr.Button("Start job", variant="primary", elem_id="job-start")
        message = gr.Markdown(elem_id="job-msg")
        estimate = gr.Markdown(elem_id="job-estimate")
        # the new job's id, for the API and the picker: a refusal marks this hidden box "Error",
        # not the picker (Gradio's error badge would cover it until closed)
        new_job = gr.Textbox(visible=False, elem_id="job-new")
        gr.Markdown("## Jobs")
        empty = gr.Markdown(EMPTY, elem_id="job-empty")
        table = gr.Dataframe(
            value=job_rows([]), headers=COLUMNS, interactive=False, visible=False,
            elem_id="job-table", wrap=True,
        )  # fmt: skip
        picked = dropdown(  # its own row: a job's label ("<id> · classify · succeeded") fits
            [], None, "Selected job", "job-picked", allow_custom_value=True
        )
        with gr.Row(equal_height=True):
            cancel, resume, delete, use, refresh_btn = (
                gr.Button(label, elem_id=f"job-{name}", scale=2 if name == "use" else 1, **kw)
                for name, label, kw in (
                    ("cancel", "Cancel", {"variant": "secondary"}),  # red while it runs
                    ("resume", "Resume", {}), ("delete", "Delete", {}),
                    ("use", "Open in other tabs", {}), ("refresh", "Refresh", {}),
                )
            )  # fmt: skip
        with gr.Accordion("Take its model out", open=False, elem_id="job-out-box"):
            gr.Markdown(
                "The selected job's model as a Hugging Face folder (config.json, "
                "model.safetensors, tokenizer, generation_config.json, README card) that "
                "`transformers.AutoModelForCausalLM` (or `...ForSequenceClassification`) loads.",
                elem_classes="note",
            )
            with gr.Row(equal_height=False):
                download = gr.Button("Download (.zip)", elem_id="job-download", size="sm",
                                     scale=0, min_width=200)  # fmt: skip
                download_box = gr.File(  # hidden until it holds the zip (CSS .numbers-box)
                    label="transformers model (.zip)", elem_id="job-zip",
                    elem_classes=["numbers-box"],
                )  # fmt: skip
            with gr.Row(equal_height=True):
                repo_name = gr.Textbox(
                    "", label="Repo name on your Hugging Face account", elem_id="job-repo",
                    placeholder="gpt2lab-<job id>", max_lines=1, scale=3,
                )  # fmt: skip
                push_btn = gr.Button("Push as a private repo", elem_id="job-push", scale=1)
        admin = gr.Textbox(
            "", label="Admin token", type="password", elem_id="job-admin",
            info="manage every visitor's job (GPT2LAB_ADMIN_TOKEN)", visible=manager.multiuser,
        )  # fmt: skip
        info = gr.Markdown(elem_id="job-details")
        plot = gr.Plot(label="Training curves", elem_id="job-plot", visible=False)
        with gr.Accordion("Log (last 40 lines)", open=False, elem_id="job-log-box"):
            log = gr.Code(value="", language=None, interactive=False, elem_id="job-log")
        view = JobsView(
            empty, table, picked, info, plot, gr.State(None), gr.Timer(1.0, active=False), log,
            (cancel, resume, delete),
        )  # fmt: skip

    # --- events: each command redraws the list after it --------------------------------------
    watch, act = [picked, view.seen, token, admin], [picked, token, admin]

    def do_refresh(selected, last, visitor_token, admin_token, profile: gr.OAuthProfile | None = None):
        return refresh(manager, view, selected, last, visitor_of(visitor_token, profile, admin_token))

    def redraw(event):  # the list, redrawn after `event`
        event.then(do_refresh, watch, view.outputs(), **QUIET)

    form["kind"].change(on_kind, form["kind"], [form["base"], form["data"]], api_visibility="private")
    recipe = [form["kind"], form["method"], form["base"]]
    for box in recipe:  # epochs and lr that work for the three
        box.change(on_recipe, recipe, [form["epochs"], form["lr"]], **PRIVATE)
    form["upload"].upload(lambda: "upload", None, form["data"], **PRIVATE)
    for name, choices in (("base", base_choices), ("data", data_choices)):  # fresh choices: a
        box = form[name]  # finished job's model; an online source's availability
        box.focus(lambda k, v, choices=choices: gr.Dropdown(choices=choices(k), value=v),
                  [form["kind"], box], box, **PRIVATE)  # fmt: skip

    def do_start(
        kind, base, data, upload, method, epochs, lr, batch_size, max_steps, eval_every,
        visitor_token=None, profile: gr.OAuthProfile | None = None,
    ):  # fmt: skip
        values = (kind, base, data, upload, method, epochs, lr, batch_size, max_steps, eval_every)
        return start_job(manager, *values, visitor_of(visitor_token, profile))

    started = start.click(
        do_start, [*form.values(), token], [message, new_job], api_name="start_job",
        **heavy("start_job", 1),  # it parses the upload; in multi-user mode, a shared slot
    )  # fmt: skip
    redraw(started.success(lambda job_id: job_id, new_job, picked, **QUIET))
    started.success(lambda job_id: estimate_job(manager, job_id), new_job, estimate, **QUIET)
    for ended in (started.success, started.failure):  # (Gradio's .then: after a success only)
        ended(  # the upload is gone from the cache (copied or refused): clear its box
            lambda data: None if data == "upload" else gr.skip(), form["data"], form["upload"],
            **QUIET,
        )  # fmt: skip

    def as_visitor(command):  # the event running `command` for whoever sent it
        def event(job_id, visitor_token=None, admin_token="", profile: gr.OAuthProfile | None = None):
            return command(manager, job_id, visitor_of(visitor_token, profile, admin_token))

        return event

    for button, command, name in ((cancel, cancel_job, "cancel_job"), (resume, resume_job, "resume_job")):
        redraw(button.click(as_visitor(command), act, message, api_name=name, **light(name)))
    deleted = delete.click(  # Delete asks first (in the browser; an API call is its own confirmation)
        as_visitor(delete_job), act, message, api_name="delete_job",
        js="(j, t, a) => confirm('Delete job ' + j + ' and its files?') ? [j, t, a] : [null, t, a]",
    )  # fmt: skip
    redraw(deleted)
    dropdowns = list(dict.fromkeys(p.dropdown for p in pickers))

    def do_unpick(data: dict, profile: gr.OAuthProfile | None = None):
        """The other tabs no longer hold the deleted job's model: theirs is run next."""
        msg, updates = unpick_gone(pickers, [data[p.dropdown] for p in pickers],
                                   viewer_of(data.get(token), profile))  # fmt: skip
        said = re.match(r"Job \*\*(\S+?)\*\*", data[estimate] or "")
        try:
            if said:
                manager.get(said.group(1))
        except JobError:  # the estimate of a job now gone
            updates[estimate] = ""
        if not updates:  # an empty dict would read as one output's value
            return {message: gr.skip()}
        if msg:
            updates[message] = f"{data[message]} {msg}".strip()
        return updates

    unpick_inputs = {message, estimate, *dropdowns, *([token] if token is not None else [])}
    deleted.then(do_unpick, unpick_inputs, [message, estimate, *dropdowns], **QUIET)

    def do_list(visitor_token=None, profile: gr.OAuthProfile | None = None):
        return list_jobs(manager, owner_of(visitor_token, profile))

    redraw(refresh_btn.click(do_list, token, table, api_name="jobs", **light("jobs", None)))
    download.click(
        as_visitor(download_model), act, download_box, api_name="download_job_model",
        **heavy("export", 1),  # writes and zips the weights: 500 MB for a GPT-2 124M job
    )  # fmt: skip

    def do_push(
        job_id, name, visitor_token=None, admin_token="",
        profile: gr.OAuthProfile | None = None, oauth: gr.OAuthToken | None = None,
    ):  # fmt: skip
        by = visitor_of(visitor_token, profile, admin_token)
        return push_model(manager, job_id, name, by, oauth.token if oauth else None)

    push_btn.click(do_push, [picked, repo_name, token, admin], message,
                   api_visibility="private", **heavy("export", 1))  # fmt: skip

    def do_open(job_id):
        msg, updates = open_in_tabs(manager, job_id, pickers)
        return {message: msg, **updates}

    targets = list(dict.fromkeys([message, *(p.dropdown for p in pickers)]))
    use.click(do_open, picked, targets, api_name="open_job_model")

    def on_select(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else gr.skip()

    redraw(table.select(on_select, None, picked, api_visibility="private"))
    picked.input(do_refresh, watch, view.outputs(), **QUIET)
    gr.on([admin.blur, admin.submit], do_refresh, watch, view.outputs(), **QUIET)  # its buttons
    view.timer.tick(do_refresh, watch, view.outputs(), **QUIET)
    redraw(demo.load(ensure_token, token, token, **QUIET))  # a new visitor gets a token
    return Page()
