"""Multi-user mode through the app's API: two `gradio_client` clients act as two visitors.

A visitor is its signed visitor token (the page keeps it in `gr.BrowserState`; an API client
gets one from `/visitor`; in-process, `new_token` issues one with the app's key). B must not cancel, resume or delete A's job; A may;
the admin token may; B still sees the job (anonymised) and may use its finished model.
"""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

import gradio_client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from pages.visitors import new_token  # noqa: E402
from tests.test_app_api import assert_alive, start_app  # noqa: E402
from tests.test_app_jobs import form, write_tsv  # noqa: E402

pytestmark = pytest.mark.slow  # the app, real job worker processes and a browser

ADMIN = "admin-" + new_token()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(demo, url) of the app in multi-user mode."""
    root = tmp_path_factory.mktemp("visitors-app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT2LAB_JOBS_DIR", str(root / "jobs"))
        mp.setenv("GPT2LAB_JOB_THREADS", "1")
        mp.setenv("GPT2LAB_MULTIUSER", "1")
        mp.setenv("GPT2LAB_ADMIN_TOKEN", ADMIN)
        demo, url = start_app(root / "models")
        yield demo, url
        demo.close()


@pytest.fixture(scope="module")
def app_url(served):
    return served[1]


class Visitor:
    """One visitor: a client and its browser token."""

    def __init__(self, url: str) -> None:
        self.client = gradio_client.Client(url, verbose=False)
        self.token = new_token()

    def start(self, upload, **over):
        return self.client.predict(*form(upload, **over), self.token, api_name="/start_job")

    def act(self, verb: str, job_id: str, admin: str = "") -> str:
        return self.client.predict(job_id, self.token, admin, api_name=f"/{verb}_job")

    def jobs(self) -> dict[str, dict]:
        table = self.client.predict(self.token, api_name="/jobs")
        return {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}

    def wait_steps(self, job_id: str, timeout: float = 90) -> int:
        """The steps the job will take, once its worker has counted them (its Step column's
        "n / total")."""
        end = time.monotonic() + timeout
        while "/" not in (step := self.jobs()[job_id]["Step"]) and time.monotonic() < end:
            time.sleep(0.2)
        return int(step.split("/")[1])

    def wait(self, job_id: str, states: tuple[str, ...], timeout: float = 90) -> dict:
        end = time.monotonic() + timeout
        while True:
            row = self.jobs()[job_id]
            if row["State"] in states or time.monotonic() > end:
                return row
            time.sleep(0.1)


@pytest.fixture(scope="module")
def tsv(tmp_path_factory):
    return write_tsv(tmp_path_factory.mktemp("visitors-data") / "sms.tsv")


def test_only_the_owner_or_the_admin_changes_a_job(app_url, tsv):
    a, b = Visitor(app_url), Visitor(app_url)
    message, job_id = a.start(tsv, max_steps=900, eval_every=900)
    assert f"**{job_id}**" in message
    assert a.wait(job_id, ("running",))["State"] == "running"
    assert a.jobs()[job_id]["Owner"] == "you"
    assert b.jobs()[job_id]["Owner"] == "another visitor"  # B sees it, anonymised

    for verb in ("cancel", "delete"):
        with pytest.raises(AppError, match="belongs to another visitor"):
            b.act(verb, job_id)
    with pytest.raises(AppError, match="belongs to another visitor"):  # no token at all
        b.client.predict(job_id, api_name="/cancel_job")
    with pytest.raises(AppError, match="belongs to another visitor"):  # a wrong admin token
        b.act("cancel", job_id, admin="admin-guess")
    assert a.jobs()[job_id]["State"] == "running"  # untouched

    assert "cancelled" in a.act("cancel", job_id)
    with pytest.raises(AppError, match="belongs to another visitor"):
        b.act("resume", job_id)
    assert "resumed" in b.act("resume", job_id, admin=ADMIN)  # the admin may
    assert "cancelled" in b.act("cancel", job_id, admin=ADMIN)
    assert "deleted" in a.act("delete", job_id)
    assert job_id not in b.jobs()
    assert_alive(a.client)


def test_one_job_per_visitor_and_a_size_cap(app_url, tsv):
    a, b = Visitor(app_url), Visitor(app_url)
    _, first = a.start(tsv, max_steps=900, eval_every=900)
    with pytest.raises(AppError, match="You already have 1 job queued or running"):
        a.start(tsv)
    _, other = b.start(tsv, max_steps=900, eval_every=900)  # B's own job is fine
    with pytest.raises(AppError, match="limit of 8,000 examples per job"):
        Visitor(app_url).start(tsv, max_steps=5000, batch_size=8)
    with pytest.raises(AppError, match="no visitor token"):
        a.client.predict(*form(tsv), api_name="/start_job")  # nobody: cannot own a job
    for visitor, job_id in ((a, first), (b, other)):
        visitor.act("delete", job_id)
    # max steps 0 or none (a cleared box): the epochs decide, up to 1,000 steps of 8
    big = write_tsv(tsv.parent / "big.tsv", 1000)  # 700 to train on: 88 steps an epoch
    for upload, steps in ((tsv, 6 * 20), (big, 1000)):  # 42 to train on: 6 steps an epoch
        c = Visitor(app_url)
        said, job_id = c.start(upload, max_steps=None, batch_size=8, epochs=20, eval_every=1000)
        assert "At most 1000 steps (this Space's size limit)" in said
        assert c.wait_steps(job_id) == steps
        c.act("delete", job_id)


def test_another_visitor_uses_a_finished_model(app_url, tsv):
    a, b = Visitor(app_url), Visitor(app_url)
    _, job_id = a.start(tsv, max_steps=4, eval_every=2)
    assert a.wait(job_id, ("succeeded", "failed"))["State"] == "succeeded"
    label, _, _ = b.client.predict(f"job:{job_id}", "WIN a prize", api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"ham", "spam"}
    with pytest.raises(AppError, match="belongs to another visitor"):
        b.act("delete", job_id)


def test_rejected_input_writes_no_server_traceback(app_url, tsv, capfd):
    a = Visitor(app_url)
    capfd.readouterr()
    for over in (dict(epochs=1000), dict(lr="fast"), dict(max_steps=5000)):
        with pytest.raises(AppError):
            a.start(tsv, **over)
    with pytest.raises(AppError, match="No job 'nope'"):
        a.act("cancel", "nope")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_heavy_endpoints_share_two_slots_and_light_ones_have_their_own(served):
    fns = {fn.api_name: fn for fn in served[0].fns.values() if isinstance(fn.api_name, str)}
    for name in ("attention", "classify", "lens", "start_job"):
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == ("heavy", 2), name
    for name in ("generate", "chat"):  # batched: their runs share decode steps (gpt.batching)
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == ("heavy:decode", 16)
    for name in ("tokenize", "jobs"):  # each its own few slots: a /jobs flood is not /tokenize's
        assert fns[name].concurrency_limit == 4 and fns[name].concurrency_id == f"light:{name}"


# --- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(app_url):
    from tests import test_browser as tb  # skips when chromium is missing

    with tb.browser_page(app_url) as pg:
        yield pg


def test_a_second_visitor_in_the_browser(page, app_url, tsv):
    """B (the browser) sees A's job as "another visitor" and cannot cancel it (its Cancel,
    Resume and Delete are off); B's own job is "you" after a reload (the token lives in the
    browser), and B can cancel that one."""
    from tests import test_browser as tb
    from tests.test_app_jobs import wait_for_text

    a = Visitor(app_url)
    # long enough (the size cap's 8,000 examples, one a step) that B's job stays queued behind
    # it: a 900-step job ended on a quiet machine, then B's 1,000 steps did too, and B's Cancel
    # had turned off before the click below
    _, a_job = a.start(tsv, max_steps=8000, eval_every=8000, batch_size=1)
    tb.open_tab(page, "Fine-tune")
    page.locator("#job-refresh").click()
    wait_for_text(page, "job-table", f"{a_job}[\\s\\S]*another visitor")
    assert "Shared Space" in page.locator("#job-limits").inner_text()

    tb.pick_model(page, "job-kind", "Spam classifier")
    tb.pick_model(page, "job-base", "tiny-spam")
    page.locator("#job-start").click()
    wait_for_text(page, "job-msg", r"Started job \S+[\s\S]*At most \d+ steps")
    b_job = re.search(r"Started job (\S+)", page.locator("#job-msg").inner_text()).group(1)

    page.reload(wait_until="load")
    page.wait_for_selector("#tok-text textarea")
    tb.open_tab(page, "Fine-tune")
    wait_for_text(page, "job-table", f"{b_job}[\\s\\S]*you")

    tb.pick_model(page, "job-picked", f"{a_job} · classify")
    for name in ("cancel", "resume", "delete"):  # A's job: B's buttons are off
        page.wait_for_selector(f"#job-{name}:disabled")
    page.locator("#job-cancel").click(force=True)  # a click does nothing
    time.sleep(1)  # (a cancel would show within this)
    # untouched: still going, or finished on its own (a 900-step tiny job can end meanwhile on
    # a quiet machine), never cancelled by B
    assert a.jobs()[a_job]["State"] in ("running", "queued", "succeeded")
    page.get_by_text("Log (last 40 lines)").click()
    wait_for_text(page, "job-log", "shown to the visitor who started")

    tb.pick_model(page, "job-picked", f"{b_job} · classify")
    page.wait_for_selector("#job-cancel:enabled")
    page.locator("#job-cancel").click()
    wait_for_text(page, "job-msg", f"{b_job}[\\s\\S]*cancelled")
    a.act("delete", a_job)
    a.act("delete", b_job, admin=ADMIN)


def test_a_visitors_own_model_is_picked_first_after_a_reload(page, app_url, tsv):
    """B (the browser) fine-tunes a classifier: after a reload the Classify tab has B's model
    picked and first in its list; A's finished model is listed but not picked for B; a new
    visitor C keeps the default."""
    from tests import test_browser as tb
    from tests.test_app_jobs import wait_for_text

    a = Visitor(app_url)
    _, a_job = a.start(tsv, max_steps=4, eval_every=2)
    assert a.wait(a_job, ("succeeded", "failed"))["State"] == "succeeded"

    tb.open_tab(page, "Fine-tune")
    tb.pick_model(page, "job-kind", "Spam classifier")
    tb.pick_model(page, "job-base", "tiny-spam")
    page.locator("#job-advanced").get_by_text("Advanced").click()
    page.locator("#job-max-steps input").fill("4")
    page.locator("#job-eval input").fill("2")
    page.locator("#job-start").click()
    wait_for_text(page, "job-msg", r"Started job \S+")
    b_job = re.search(r"Started job (\S+)", page.locator("#job-msg").inner_text()).group(1)
    assert a.wait(b_job, ("succeeded", "failed"))["State"] == "succeeded"

    page.reload(wait_until="load")
    page.wait_for_selector("#tok-text textarea")
    tb.open_tab(page, "Spam classifier")
    picked = "document.querySelector('#clf-model input')?.value ?? ''"
    page.wait_for_function(f"({picked}).startsWith('job:{b_job}')")
    page.locator("#clf-model input").click()
    options = [o.lstrip("✓ \n") for o in page.get_by_role("option").all_inner_texts()]
    assert options[0].startswith(f"job:{b_job}"), options  # B's own first
    assert any(o.startswith(f"job:{a_job}") for o in options[1:])  # A's listed, further down
    page.keyboard.press("Escape")

    key = "gpt2lab-visitor"  # pages.visitors.STORAGE_KEY: B's token in this browser
    saved = page.evaluate(f"localStorage.getItem('{key}')")
    page.evaluate(f"localStorage.removeItem('{key}')")  # a new visitor C in this browser
    page.reload(wait_until="load")
    page.wait_for_selector("#tok-text textarea")
    tb.open_tab(page, "Spam classifier")
    time.sleep(1)  # (the page-load events have run by now)
    assert "job:" not in page.evaluate(picked)  # C: the default, not B's model
    page.evaluate(f"localStorage.setItem('{key}', {saved!r})")  # B again
    for job_id in (a_job, b_job):
        a.act("delete", job_id, admin=ADMIN)
