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
from collections.abc import Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from gpt.device import running_on  # noqa: E402
from gpt.jobs import JobManager, JobPolicy  # noqa: E402
from gpt.jobs.policy import MAX_EXAMPLES, OWNER_BUDGET_ENV, RETENTION_ENV  # noqa: E402
from gpt.lab import hub  # noqa: E402
from gpt.lab.paths import JOBS_DIR_ENV, storage_paths  # noqa: E402
from gpt.lab.registry import add_job_models, default_registry  # noqa: E402
from pages import attention, chat, classify, generation, inside, jobs, tokenizer, walk  # noqa: E402
from pages.common.heavy import fair_heavy_queue, share_heavy_slots  # noqa: E402
from pages.common.inputs import guard_events  # noqa: E402
from pages.common.limits import BodyLimit, light_sessions, rotating_log  # noqa: E402
from pages.common.render import CSS  # noqa: E402
from pages.visitors import (  # noqa: E402
    BUDGET_ENV,
    PER_ADDRESS_ENV,
    PER_VISITOR_ENV,
    client_address,
    env_int,
    env_number,
    issue_token,
    multiuser_mode,
    token_state,
)

UPLOAD_BYTES = 20 * 1024 * 1024  # "20mb": Fine-tune data files (the tokenizer tab checks less)


class _LaunchKwargs(Mapping):
    """What `launch()` needs besides the Blocks: the page CSS, the server-side upload cap, and
    the request-size limit (`pages.common.limits.BodyLimit`: 413 for a body over ~2 MB, an
    upload over the cap, before it is read). A fresh `app_kwargs` each time it is unpacked
    (Gradio adds its lifespan to the dict it gets)."""

    def _items(self) -> dict:
        from starlette.middleware import Middleware

        return {
            "css": CSS,
            "max_file_size": "20mb",
            "footer_links": ["api"],
            "app_kwargs": {"middleware": [Middleware(BodyLimit, upload_bytes=UPLOAD_BYTES)]},
        }

    def __getitem__(self, key: str):
        return self._items()[key]

    def __iter__(self):
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


LAUNCH_KWARGS = _LaunchKwargs()
MAX_QUEUED_JOBS = 5
# Multi-user mode: the events each tab marks heavy (they run a model) share one queue of
# HEAVY_CONCURRENCY slots (a 2-vCPU Space: one per core), so a flood of them leaves CPU to the
# light ones, which get no limit at all (`pages.common.share_heavy_slots`). Generate's and Chat's
# streams are heavy but batched: they share decode steps (`gpt.batching`), so they get a group of
# their own, GPT2LAB_DECODE_SLOTS wide (16), and the batcher caps rows and KV memory.
HEAVY_ENV = "GPT2LAB_HEAVY_CONCURRENCY"
# ... served round-robin by session (and address), each session at most 2 runs of an endpoint
# waiting or running, each client address no limit unless set (`pages.common.fair_heavy_queue`).
# Each light endpoint has 4 slots, so a script looping one (/jobs) cannot hold all of Gradio's
# workers; at most 64 requests wait per endpoint group, 256 in all (Gradio's `max_size`).
# Locally none of these unless set.
HEAVY_PER_SESSION_ENV = "GPT2LAB_HEAVY_PER_SESSION"
HEAVY_PER_ADDRESS_ENV = "GPT2LAB_HEAVY_PER_ADDRESS"
LIGHT_ENV = "GPT2LAB_LIGHT_CONCURRENCY"
QUEUE_SIZE_ENV = "GPT2LAB_QUEUE_SIZE"
LOG_FILE_ENV = "GPT2LAB_LOG_FILE"  # also log to this file, rotated at 5 MB (2 old files kept)
# Gradio's cache (uploads, files the app hands out): every `frequency` s, files older than `age`
# s go, and all of it at shutdown (`gr.Blocks(delete_cache=(frequency, age))`). A Fine-tune
# upload goes at once, when its job has copied it or refused it (`pages.jobs.discard_upload`).
CACHE_CLEANING = {True: (600, 3600), False: (3600, 86400)}  # by multi-user mode
log = logging.getLogger("gpt2lab")


def job_settings(multiuser: bool) -> dict:
    """JobManager's keyword arguments for this mode: in multi-user mode (a public Space) jobs
    have owners, 1 queued-or-running job per visitor ($GPT2LAB_JOBS_PER_VISITOR) of at most
    MAX_EXAMPLES examples, a 10 GB disk budget ($GPT2LAB_DISK_BUDGET_GB) of which 4 GB per
    visitor ($GPT2LAB_OWNER_DISK_GB), and finished jobs are kept 24 h ($GPT2LAB_RETENTION_HOURS)
    before anyone's submission may remove them; locally none of these unless set."""
    budget_gb = env_number(BUDGET_ENV, 10 if multiuser else None)
    owner_gb = env_number(OWNER_BUDGET_ENV, 4 if multiuser else None)
    hours = env_number(RETENTION_ENV, 24 if multiuser else None)
    policy = JobPolicy(
        multiuser=multiuser,
        max_queued=MAX_QUEUED_JOBS,
        per_visitor=env_int(PER_VISITOR_ENV, 1 if multiuser else None),
        disk_quota=None if budget_gb is None else int(budget_gb * 10**9),
        owner_quota=None if owner_gb is None else int(owner_gb * 10**9),
        retention_s=None if hours is None else hours * 3600,
        max_examples=MAX_EXAMPLES if multiuser else None,
        local_paths=False,  # the Fine-tune tab offers listed models, bundled data, sources, uploads
    )
    return dict(max_concurrent=1, policy=policy)


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
    light_sessions()  # a new session (each sessionless API call) copies no block configs
    manager, notice = open_jobs(storage_paths().jobs_dir, multiuser_mode())
    add_job_models(default_registry(), manager)  # finished jobs' models, as job:<id>
    if manager.multiuser:  # uploads left by a run that ended without cleaning up
        jobs.sweep_uploads(CACHE_CLEANING[True][1])
    with gr.Blocks(title="GPT-2 Lab", delete_cache=CACHE_CLEANING[manager.multiuser]) as demo:
        gr.Markdown(
            "# GPT-2 Lab\nA GPT-2 built from scratch: see and steer every part of it. "
            f"*{running_on()}*",  # "Running on CPU (2 threads)", "Running on CUDA: <name>"
            elem_id="header",
        )
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
                walk.build(demo),
            ]
            jobs.build(demo, manager, [p for page in pages for p in page.pickers], token)
        gr.api(issue_token, api_name="visitor", queue=False)  # API clients' signed token
    multiuser = manager.multiuser
    manager.policy.per_address = env_int(PER_ADDRESS_ENV, 2 if multiuser else None)
    per_group = env_int(QUEUE_SIZE_ENV, 64 if multiuser else None)
    demo.queue(default_concurrency_limit=4, max_size=None if per_group is None else 4 * per_group)
    if multiuser:
        share_heavy_slots(demo, env_int(HEAVY_ENV, 2) or 2, env_int(LIGHT_ENV, 4))
    per_session = env_int(HEAVY_PER_SESSION_ENV, 2 if multiuser else None)
    per_address = env_int(HEAVY_PER_ADDRESS_ENV, None)
    if per_session is not None or per_address is not None or per_group is not None:
        fair_heavy_queue(demo, per_session or 10**9, per_address, client_address, per_group)
    guard_events(demo)
    return demo


def warm_up() -> None:
    """Load each tab's default model in the background, so no first visitor waits for a load
    (online, that downloads gpt2 once; its progress goes to the log every 10%); a default that
    fails to load gives way to the next, and pages opened after that default to it."""
    registry = default_registry()
    hub.wait(hub.CHECK_TIMEOUT + 1)
    logged = [-1]

    def report(p: hub.DownloadProgress) -> None:
        tenth = int(p.fraction * 10)
        if tenth > logged[0] or p.finished:
            logged[0] = tenth
            log.warning("downloading %s", p.line())

    for module in (attention, classify, chat):
        tried = set()  # a default that fails gives way to the next (`ModelRegistry.default`)
        while (name := registry.default(module.TASKS)) is not None and name not in tried:
            tried.add(name)
            try:
                registry.get(name, progress=report)
                break
            except Exception as e:  # a broken model shows its error in its tab; the app starts
                log.warning("could not preload %s: %s", name, e)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if log_file := os.environ.get(LOG_FILE_ENV, "").strip():
        rotating_log(log_file)
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
