"""GPT-2 Lab: see and steer every part of GPT-2. `python app.py` serves it on 127.0.0.1.

`app.py` only composes the tabs in `pages/`; it honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
from pathlib import Path

import gradio as gr

from gpt.jobs import JobManager
from gpt.registry import add_job_models, default_registry
from pages import attention, chat, classify, generation, inside, jobs, tokenizer
from pages.common import CSS

# What `launch()` needs besides the Blocks: the page CSS and the server-side upload cap (the
# fine-tuning tab takes data files up to 20 MB; the tokenizer tab checks its own smaller cap).
LAUNCH_KWARGS = {"css": CSS, "max_file_size": "20mb", "footer_links": ["api"]}
JOBS_DIR_ENV = "GPT2LAB_JOBS_DIR"  # where fine-tuning jobs live (default ./jobs)
MAX_QUEUED_JOBS = 5


def open_jobs(folder: str | Path) -> tuple[JobManager, str]:
    """The jobs manager, and a notice when `folder` cannot be used (a temporary folder is).

    A jobs folder that cannot be created or opened must not stop the app: every other tab works
    without it, and jobs still run, only not across restarts.
    """
    try:
        return JobManager(folder, max_concurrent=1, max_queued=MAX_QUEUED_JOBS), ""
    except (OSError, sqlite3.Error) as e:
        fallback = Path(tempfile.gettempdir()) / "gpt2lab-jobs"
        logging.getLogger(__name__).warning(
            "jobs folder %s unusable (%s); using %s", folder, e, fallback
        )
        reason = getattr(e, "strerror", None) or type(e).__name__
        notice = (
            f"⚠️ The jobs folder `{folder}` cannot be used ({reason}), so fine-tuning jobs are "
            f"kept in a temporary folder and are lost when the app stops. Set `{JOBS_DIR_ENV}` "
            "to a writable folder and restart to keep them."
        )
        return JobManager(fallback, max_concurrent=1, max_queued=MAX_QUEUED_JOBS), notice


def build_app() -> gr.Blocks:
    manager, notice = open_jobs(os.environ.get(JOBS_DIR_ENV, "jobs"))
    add_job_models(default_registry(), manager)  # finished jobs' models, as job:<id>
    with gr.Blocks(title="GPT-2 Lab") as demo:
        gr.Markdown("# GPT-2 Lab\nA GPT-2 built from scratch: see and steer every part of it.")
        if notice:
            gr.Markdown(notice, elem_id="jobs-notice")
        with gr.Tabs():
            tokenizer.build(demo)
            attention.build(demo)
            generation.build(demo)
            classify.build(demo)
            chat.build(demo)
            inside.build(demo)
            pickers = {b.elem_id: b for b in demo.blocks.values() if b.elem_id in jobs.TAB_TASKS}
            jobs.build(demo, manager, pickers)
    demo.queue(default_concurrency_limit=4)
    return demo


def warm_up() -> None:
    """Load each tab's default model in the background, so no first visitor waits for a load."""
    registry = default_registry()
    for module in (attention, classify, chat):
        name = registry.default(module.TASKS)
        if name is None:
            continue
        try:
            registry.get(name)
        except Exception as e:  # a broken model shows its error in the tab; the app still starts
            logging.getLogger(__name__).warning("could not preload %s: %s", name, e)


if __name__ == "__main__":
    app = build_app()
    threading.Thread(target=warm_up, name="gpt2lab-warm-up", daemon=True).start()
    app.launch(**LAUNCH_KWARGS)
