"""One-click GPT-2 fine-tunes (gpt.lab.oneclick + pages.oneclick): offline they start nothing and say
why; online (the fake hub of tests/fakehub.py serving a tiny GPT-2 as `gpt2`, and a small local
data file in place of the online source) the button's job trains in the background, and when it
ends its model is picked in the tab.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from gpt.jobs import JobManager, Visitor  # noqa: E402
from gpt.lab import hub  # noqa: E402
from gpt.lab.oneclick import ONE_CLICK, why_not  # noqa: E402
from gpt.lab.registry import add_job_models, default_registry  # noqa: E402
from pages import oneclick as page  # noqa: E402
from tests import fakehub  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean hub environment (cache under tmp_path, no variable ruling the network out)."""
    for name in ("HF_HUB_OFFLINE", "GPT2LAB_ALLOW_DOWNLOAD", "GPT2LAB_MODELS_DIR", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("GPT2LAB_CACHE", str(tmp_path / "sources"))  # no cached online data
    hub.reset()
    yield monkeypatch
    hub.reset()


def test_offline_the_buttons_say_they_need_the_network_and_start_nothing(env, tmp_path):
    env.setenv("HF_HUB_OFFLINE", "1")
    manager = JobManager(tmp_path / "jobs")
    try:
        for one in ONE_CLICK.values():
            assert why_not(one).startswith("needs the network")
            job_id, line, timer = page.start(manager, one, None)
            assert job_id is None and "needs the network" in line and "nothing was started" in line
            assert timer.active is False
        assert manager.list() == []
    finally:
        manager.close()


def test_a_refused_hub_names_the_reason(env, tmp_path):
    url = fakehub.start(fakehub.make_tiny_gpt2(tmp_path / "tiny"), mode="refuse")
    env.setenv("HF_ENDPOINT", url)
    try:
        assert hub.check(timeout=2).offline
        why = why_not(ONE_CLICK["gpt2-chat"])
        assert why.startswith("needs the network") and "refused" in why.lower()
    finally:
        fakehub.stop()


@pytest.mark.slow
def test_online_the_spam_button_trains_gpt2_and_picks_its_model(env, tmp_path):
    url = fakehub.start(fakehub.make_tiny_gpt2(tmp_path / "tiny"))
    env.setenv("HF_ENDPOINT", url)
    data = tmp_path / "sms.tsv"  # a small local stand-in for the online SMS Spam Collection
    lines = (REPO / "data" / "sms" / "train.tsv").read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(lines[:60]) + "\n", encoding="utf-8")
    one = ONE_CLICK["gpt2-spam"]
    one = dataclasses.replace(one, spec=dataclasses.replace(one.spec, data=str(data), epochs=1))
    assert why_not(one) is not None  # the hub has not answered yet: gpt2 is not listed
    assert hub.check(timeout=5).online
    assert why_not(one) is None
    manager = JobManager(tmp_path / "jobs")
    add_job_models(default_registry(), manager)
    try:
        job_id, line, timer = page.start(manager, one, None, Visitor("anon:x"))
        assert job_id and f"Started job **{job_id}**" in line and timer.active is True
        assert f"about **{one.minutes:.0f} min**" in line  # measured, said before the estimate
        again, line2, _ = page.start(manager, one, job_id)  # a second click while it runs
        assert again == job_id and len(manager.list()) == 1 and job_id in line2
        status = manager.wait(job_id, timeout=300)
        assert status.state == "succeeded", manager.log(job_id)
        assert hub.cached_gpt2("gpt2") is not None  # the worker downloaded it from the fake hub
        text, picker, timer = page.poll(manager, ("classify",), job_id, "starter-spam", "anon:x")
        assert "finished" in text and "test accuracy" in text and f"job:{job_id}" in text
        assert picker.value == f"job:{job_id}" and timer.active is False
        names = [value for _label, value in picker.choices]
        assert names[0] == f"job:{job_id}"  # the visitor's own model first in the list
        assert default_registry().entry(f"job:{job_id}").owner == "anon:x"
    finally:
        manager.close()
        fakehub.stop()


def test_progress_lines_say_where_the_job_is():
    from gpt.jobs import JobStatus

    base = dict(kind="classify", base="gpt2", method="last_blocks", data="sms-spam", step=0)
    common = dict(created=0.0, started=None, finished=None, error=None, note=None)
    more = dict(model_path=None, pid=None, attempt=1)
    queued = JobStatus(
        "j1", **base, state="queued", max_steps=None, progress=0.0, loss=None, eta_s=None,
        **common, **more, estimate={"text": "about 3 min on this machine"},
    )  # fmt: skip
    assert page.progress_line(queued) == (
        "Job **j1** is queued behind another job. It should take about 3 min on this machine."
    )
    running = dataclasses.replace(
        queued, state="running", step=30, max_steps=120, progress=0.25, eta_s=150.0
    )
    line = page.progress_line(running)
    assert "step 30/120 (25%)" in line and "about 3 min left" in line  # 150 s, rounded


def test_the_line_beside_the_button_says_when_it_cannot_start(env):
    one = ONE_CLICK["gpt2-spam"]
    env.setenv("HF_HUB_OFFLINE", "1")
    offline = page.intro(one)
    assert offline.startswith("⚠️ Unavailable now") and "needs the network" in offline
    env.delenv("HF_HUB_OFFLINE")
    env.setenv("GPT2LAB_ALLOW_DOWNLOAD", "1")  # listed as downloadable, as when the hub answers
    online = page.intro(one)
    assert online.startswith("A background job") and f"about {one.minutes:.0f} min" in online
