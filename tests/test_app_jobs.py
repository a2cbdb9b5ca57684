"""The Fine-tune tab: background jobs through gradio_client, then in a real browser.

One app for the module (tests/test_app_api.py's `start_app`, its registry holding tiny
random-weight checkpoints), its jobs under a temporary GPT2LAB_JOBS_DIR. Every job is a tiny
classifier fine-tuned from `tiny-spam` for a few steps on a TSV written here.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

import gradio_client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from tests.test_app_api import SPAM, assert_alive, start_app  # noqa: E402

pytestmark = pytest.mark.slow  # the app, real job worker processes and a browser


def write_tsv(path: Path, n: int = 60) -> Path:
    rows = [
        ("spam", f"WIN a free prize number {i}, call now!")
        if i % 3 == 0
        else ("ham", f"see you at {i} ok")
        for i in range(n)
    ]
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def app_root(tmp_path_factory):
    """The app's folder: `models/` for its registry, `jobs/` for its jobs."""
    return tmp_path_factory.mktemp("jobs-app")


@pytest.fixture(scope="module")
def app_url(app_root):
    root = app_root
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT2LAB_JOBS_DIR", str(root / "jobs"))
        mp.setenv("GPT2LAB_JOB_THREADS", "1")  # leave a core to the app and the browser
        demo, url = start_app(root / "models")
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(app_url):
    return gradio_client.Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def tsv(tmp_path_factory):
    return write_tsv(tmp_path_factory.mktemp("jobs-data") / "sms.tsv")


def form(upload, max_steps=4, eval_every=2, **over):
    args = dict(
        kind="classify",
        base=SPAM,
        data="upload",
        upload=gradio_client.handle_file(str(upload)) if upload else None,
        method="full",
        epochs=1,
        lr="1e-3",
        batch_size=8,
        max_steps=max_steps,
        eval_every=eval_every,
    )
    args.update(over)
    return list(args.values())


def jobs(client) -> dict[str, dict]:
    table = client.predict(api_name="/jobs")
    return {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}


def wait_state(client, job_id: str, states: tuple[str, ...], timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while True:
        row = jobs(client)[job_id]
        if row["State"] in states or time.monotonic() > end:
            return row
        time.sleep(0.1)


def test_no_jobs_at_first(client):
    assert jobs(client) == {}


def test_start_job_runs_and_its_model_classifies(client, tsv, app_root):
    message, job_id = client.predict(*form(tsv), api_name="/start_job")
    assert job_id and f"**{job_id}**" in message
    row = wait_state(client, job_id, ("succeeded", "failed"))
    assert row["State"] == "succeeded" and row["Step"] == "4 / 4"
    assert row["Progress"] == "██████████ 100%"

    from gpt.lab.registry import default_registry

    assert f"job:{job_id}" in default_registry().names("classify")
    spec = json.loads((app_root / "jobs" / job_id / "out" / "spec.json").read_text())
    assert spec["prefix_weight"] == 0.5  # its trace in the Spam tab rises as the spam appears
    label, summary, _ = client.predict(f"job:{job_id}", "WIN a free prize!", api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"ham", "spam"} and "P(spam)" in summary


def test_bad_uploads_say_what_to_fix(client, tmp_path):
    binary = tmp_path / "blob.tsv"
    binary.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(AppError, match=r"blob\.tsv.*upload it again"):
        client.predict(*form(binary), api_name="/start_job")
    columns = tmp_path / "columns.csv"
    columns.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(AppError, match=r"columns\.csv.*label"):
        client.predict(*form(columns), api_name="/start_job")
    wrong_type = tmp_path / "notes.json"
    wrong_type.write_text("[]", encoding="utf-8")
    with pytest.raises(AppError, match="is not one"):
        client.predict(*form(wrong_type), api_name="/start_job")
    with pytest.raises(AppError, match="Choose a file"):
        client.predict(*form(None), api_name="/start_job")
    assert_alive(client)


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(epochs=1000), "Epochs must be between 0.1 and 20"),
        (dict(lr="fast"), "Learning rate must be a number"),
        (dict(lr=1.0), "Learning rate must be between"),
        (dict(batch_size=-3), "Batch size"),
        (dict(base="tiny-lm-nope"), "does not fit"),
        (dict(data="alpaca"), "does not fit a classifier job"),
    ],
)
def test_absurd_settings_are_rejected(client, tsv, over, match):
    with pytest.raises(AppError, match=match):
        client.predict(*form(tsv, **over), api_name="/start_job")


def test_cancel_then_resume_to_success(client, tsv):
    _, job_id = client.predict(*form(tsv, max_steps=40, eval_every=10), api_name="/start_job")
    assert wait_state(client, job_id, ("running",))["State"] == "running"
    message = client.predict(job_id, api_name="/cancel_job")
    assert "cancelled" in message
    assert jobs(client)[job_id]["State"] == "cancelled"
    assert "resumed" in client.predict(job_id, api_name="/resume_job")
    assert wait_state(client, job_id, ("succeeded", "failed"))["State"] == "succeeded"
    with pytest.raises(AppError, match="only cancelled, interrupted, failed jobs resume"):
        client.predict(job_id, api_name="/resume_job")
    assert "deleted" in client.predict(job_id, api_name="/delete_job")
    assert job_id not in jobs(client)


def file_status(app_url: str, path: str | Path) -> int:
    import httpx

    return httpx.get(f"{app_url}gradio_api/file={path}", timeout=10).status_code


def test_an_upload_leaves_gradios_cache_and_job_files_are_not_served(
    app_url, client, tsv, app_root
):
    import httpx

    with tsv.open("rb") as f:  # an upload as the browser sends it, before Start
        reply = httpx.post(f"{app_url}gradio_api/upload", files={"files": f}, timeout=10)
    (cached,) = reply.json()
    assert Path(cached).is_file() and file_status(app_url, cached) == 200
    _, job_id = client.predict(*form(tsv), api_name="/start_job")  # the same file again
    assert not Path(cached).exists() and file_status(app_url, cached) != 200  # copied: gone
    copy = app_root / "jobs" / job_id / "data" / tsv.name
    assert copy.is_file() and file_status(app_url, copy) != 200  # job folders are not served
    assert wait_state(client, job_id, ("succeeded", "failed"))["State"] == "succeeded"
    assert "deleted" in client.predict(job_id, api_name="/delete_job")
    assert not copy.exists() and not (app_root / "jobs" / job_id).exists()
    with pytest.raises(AppError, match="blob"):  # a refused upload leaves the cache too
        bad = tsv.parent / "blob.tsv"
        bad.write_bytes(bytes(range(256)) * 20)
        client.predict(*form(bad), api_name="/start_job")
    from pages.jobs import upload_folder

    assert not list(upload_folder().rglob("blob.tsv"))


def test_full_queue_says_so(app_url, tmp_path, tsv):
    import gradio as gr

    from gpt.jobs import JobManager, JobPolicy
    from pages.jobs import start_job

    args = ("classify", SPAM, "upload", str(tsv), "full", 1, "1e-4", 8, 4, 2)
    manager = JobManager(tmp_path / "jobs", policy=JobPolicy(max_queued=0), background=False)
    with manager, pytest.raises(gr.Error, match="queue is full"):
        start_job(manager, *args)


# --- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(app_url):
    from tests import test_browser as tb  # skips when chromium is missing

    with tb.browser_page(app_url) as pg:
        yield pg


def wait_for_text(page, elem_id: str, pattern: str, timeout: float = 20_000) -> None:
    """Wait until the text of `#elem_id` matches the (JS) regular expression `pattern`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([id, re]) => new RegExp(re).test(document.querySelector('#' + id)?.innerText ?? '')",
            arg=[elem_id, pattern],
            timeout=timeout,
        )
    except PlaywrightTimeout:
        shown = page.locator(f"#{elem_id}").inner_text()
        details = page.locator("#job-details").inner_text()
        raise AssertionError(
            f"#{elem_id} never matched {pattern!r}: {shown!r}; {details!r}"
        ) from None


def fill_and_leave(page, elem_id: str, value: str, tries: int = 5) -> None:
    """Type `value` into a field and leave it (blur), so Gradio commits it before a button
    reads the form. Types again if the field lost the value: seen once in a full run, on the
    first field inside the Advanced accordion right after it opened."""
    field = page.locator(f"#{elem_id} input")
    for _ in range(tries):
        field.fill(value)
        field.press("Tab")
        page.wait_for_timeout(200)
        if field.input_value() == value:
            return
    raise AssertionError(f"#{elem_id} would not keep {value!r}: it shows {field.input_value()!r}")


def test_fine_tune_tab_in_browser(page, tmp_path):
    from tests import test_browser as tb

    tb.open_tab(page, "Fine-tune")
    tb.pick_model(page, "job-kind", "Spam classifier")
    tb.pick_model(page, "job-base", SPAM)
    page.locator("#job-upload input[type=file]").set_input_files(
        str(write_tsv(tmp_path / "my.tsv"))
    )
    page.wait_for_function(
        "document.querySelector('#job-data input').value === 'Upload a file'"
    )  # uploading picks it as the data
    page.get_by_text("Advanced").click()
    # a refusal: said in a pop-up, the picker left usable (no error badge over it), and the
    # upload box cleared (the refused file left the upload cache)
    fill_and_leave(page, "job-epochs", "50")
    page.locator("#job-start").click()
    page.wait_for_function(
        "[...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes("
        "'Epochs must be between 0.1 and 20'))"
    )
    page.wait_for_function("!document.querySelector('#job-upload')?.innerText.includes('my.tsv')")
    assert "Error" not in page.locator("#job-picked").inner_text()
    page.locator("#job-upload input[type=file]").set_input_files(str(tmp_path / "my.tsv"))
    page.wait_for_function("document.querySelector('#job-upload')?.innerText.includes('my.tsv')")
    # 600 steps: long enough (~20 s idle) that the 1 s poll always catches it running
    for field, value in (("job-epochs", "2"), ("job-max-steps", "600"), ("job-eval", "20")):
        fill_and_leave(page, field, value)
    page.locator("#job-start").click()
    wait_for_text(page, "job-msg", "Started job")
    job_id = re.search(r"Started job (\S+)", page.locator("#job-msg").inner_text()).group(1)

    # progress shows up while it runs (step > 0 of 120), then cancel and resume it
    # generous: on a loaded 2-core machine the worker's start (importing torch) takes a while
    wait_for_text(page, "job-table", r"running[\s\S]*\b[1-9]\d* / 600\b", timeout=150_000)
    page.locator("#job-cancel").click()
    wait_for_text(page, "job-msg", "cancelled")
    wait_for_text(page, "job-table", "cancelled")
    page.locator("#job-resume").click()
    wait_for_text(page, "job-msg", "resumed")
    wait_for_text(page, "job-details", f"{job_id}[\\s\\S]*succeeded", timeout=300_000)
    page.wait_for_function(
        "[...document.querySelectorAll('#job-plot .y2title')]"
        ".some(t => t.textContent === 'Accuracy')"
    )
    xtitles = page.locator("#job-plot .xtitle, #job-plot .x2title").all_text_contents()
    ytitles = page.locator("#job-plot .ytitle, #job-plot .y2title").all_text_contents()
    assert xtitles == ["Step", "Step"] and ytitles == ["Loss", "Accuracy"]

    page.get_by_text("Log (last 40 lines)").click()
    wait_for_text(page, "job-log", r"resuming from step-\d+[\s\S]*succeeded: 600 steps")

    page.locator("#job-use").click()
    wait_for_text(page, "job-msg", "Picked")
    assert "Spam classifier" in page.locator("#job-msg").inner_text()
    for close in page.locator(".toast-close").all():  # its countdown would hold up settle()
        close.click()
    page.locator("#job-start").scroll_into_view_if_needed()
    tb.shot(page, "jobs")

    tb.open_tab(page, "Spam classifier")
    assert f"job:{job_id}" in page.locator("#clf-model input").input_value()
    # the tab's model card follows the picker to the job's model: its data, its limit
    page.locator("#clf-card-box").get_by_text("About this model").click()
    wait_for_text(page, "clf-card", f"job {job_id}[\\s\\S]*my\\.tsv[\\s\\S]*Limits")

    # deleting the job moves every tab that held its model to the default, and says so
    tb.open_tab(page, "Fine-tune")
    page.once("dialog", lambda dialog: dialog.dismiss())  # declined first: nothing moves
    page.locator("#job-delete").click()
    wait_for_text(page, "job-msg", "Nothing deleted")
    page.wait_for_timeout(1_000)  # the follow-up (no picker to move) has run
    assert "Error" not in page.locator("#job-msg").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#job-delete").click()
    wait_for_text(page, "job-msg", f"{job_id}[\\s\\S]*deleted[\\s\\S]*Spam classifier tab now uses")
    page.wait_for_function("!document.querySelector('#job-estimate').innerText.trim()")
    tb.open_tab(page, "Spam classifier")
    page.wait_for_function(
        f"!document.querySelector('#clf-model input').value.includes('job:{job_id}')"
    )
    page.wait_for_function(  # the card follows the new pick
        f"!document.querySelector('#clf-card').innerText.includes('job {job_id}')"
    )
