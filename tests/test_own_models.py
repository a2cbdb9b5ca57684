"""A visitor's own fine-tuned models come first in the pickers (issue 19, part 2): their newest
job model is the default, before the hub's and the starters; other visitors' jobs keep their
place in the list."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")

from gpt.lab.registry import ModelEntry, ModelRegistry  # noqa: E402
from pages.common import models  # noqa: E402
from pages.visitors import EVERYONE, viewer_of  # noqa: E402


def _entry(name: str, source: str, owner: str | None = None) -> ModelEntry:
    return ModelEntry(name, "instruct", source, f"{name} model", f"/m/{name}", "gpt2", owner=owner)


@pytest.fixture
def registry(monkeypatch):
    """Chat's models: a hub instruct model, starter-chat, then two visitors' jobs (newest
    first, as `JobManager.models` lists them)."""
    listed = [
        _entry("org/gpt2-alpaca", "hub (cache)"),
        _entry("starter-chat", "starter"),
        _entry("job:b2", "job", "anon:b"),
        _entry("job:a1", "job", "anon:a"),
        _entry("job:b1", "job", "anon:b"),
    ]
    reg = ModelRegistry(sources=[lambda: listed])
    monkeypatch.setattr(models, "default_registry", lambda: reg)
    return reg


def default_model(tasks, me):
    """The visitor's default: their newest own job model, else the registry's."""
    return models.picker_state(tasks, me)[1]


def test_a_visitors_own_jobs_come_first_newest_first(registry):
    names = [name for _, name in models.model_choices(("instruct",), "anon:b")]
    assert names == ["job:b2", "job:b1", "org/gpt2-alpaca", "starter-chat", "job:a1"]
    assert default_model(("instruct",), "anon:b") == "job:b2"
    assert default_model(("instruct",), "anon:a") == "job:a1"


def test_without_jobs_of_ones_own_the_registry_default_holds(registry):
    for me in ("anon:c", None):
        assert default_model(("instruct",), me) == registry.default(("instruct",))
        assert [n for _, n in models.model_choices(("instruct",), me)] == registry.names()
    assert default_model(("classify",), "anon:b") is None  # no model fits


def test_single_user_mode_every_job_is_the_visitors(registry, monkeypatch):
    monkeypatch.delenv("GPT2LAB_MULTIUSER", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert viewer_of(None) == EVERYONE
    assert default_model(("instruct",), EVERYONE) == "job:b2"
    names = [n for _, n in models.model_choices(("instruct",), EVERYONE)]
    assert names[:3] == ["job:b2", "job:a1", "job:b1"]
    monkeypatch.setenv("GPT2LAB_MULTIUSER", "1")
    assert viewer_of("not a signed token") is None  # nobody's: no job of theirs first


def test_a_deleted_jobs_model_leaves_the_pickers_that_held_it(registry):
    """After a delete: a picker on a job no longer listed moves to the visitor's default; one on
    a listed job, or on a hub id typed by hand (never in the list), stays."""
    import gradio as gr

    from pages import jobs
    from pages.common.models import Picker

    chat, other, typed = (Picker(t, ("instruct",), gr.Dropdown()) for t in ("Chat", "Inside", "Walk"))
    values = ["job:gone", "job:a1", "someone/gpt2-poems"]
    msg, updates = jobs.unpick_gone([chat, other, typed], values, "anon:b")
    assert list(updates) == [chat.dropdown]
    assert updates[chat.dropdown].value == "job:b2"  # anon:b's newest own model
    assert msg == "The Chat tab now uses **job:b2**."
    assert jobs.unpick_gone([chat], ["job:a1"], "anon:b") == ("", {})
