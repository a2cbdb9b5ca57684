"""The Fine-tune tab's defaults (`gpt.lab.recipes.TUNE_DEFAULTS`), the advice a weak result
gets, and the loss curves' smoothed and raw traces."""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import gradio as gr
import pytest

from gpt.jobs import JobError, JobPolicy
from gpt.jobs import cli as jobs_cli
from gpt.jobs.manager import JobStatus
from gpt.lab import recipes
from gpt.lab.recipes import advice, tune_defaults, with_tune_defaults
from pages import jobs as page


def status(**kw) -> JobStatus:
    spec = kw.pop("spec", {})
    base = dict(
        id="j1", kind="classify", base="starter", method=spec.get("method", "full"),
        data="bundled", state="succeeded", step=100, max_steps=100, progress=1.0, loss=0.3,
        eta_s=None, created=0.0, started=0.0, finished=1.0, error=None, note=None,
        model_path=None, pid=None, attempt=1, spec=spec,
    )  # fmt: skip
    return JobStatus(**{**base, **kw})


# --- defaults -----------------------------------------------------------------------------------


def test_each_method_has_its_own_recipe_per_base_family():
    small = {m: tune_defaults("classify", m, "starter") for m in ("full", "last_blocks", "lora")}
    gpt2 = {m: tune_defaults("classify", m, "gpt2") for m in ("full", "last_blocks", "lora")}
    assert len({(d.epochs, d.lr) for d in small.values()}) > 1  # not one value for all
    assert all(gpt2[m].lr < small[m].lr for m in small)  # a pretrained GPT-2 takes small steps
    assert small["lora"].lr > small["full"].lr  # adapters start at zero
    assert tune_defaults("classify", "full", "job:20260101-abc").lr == small["full"].lr
    assert tune_defaults("lm", "head", "starter") == tune_defaults("lm", "full", "starter")


def test_form_updates_epochs_and_lr_when_the_method_or_base_changes():
    for kind, method, base in [
        ("classify", "full", "starter"),
        ("classify", "lora", "starter"),
        ("classify", "last_blocks", "starter-spam"),
        ("classify", "lora", "gpt2"),
        ("instruct", "full", "starter"),
    ]:
        epochs, lr = page.on_recipe(kind, method, base)
        d = tune_defaults(kind, method, base)
        assert epochs.value == d.epochs and float(lr.value) == d.lr
        assert lr.value in page.LEARNING_RATES  # a choice of the dropdown, as the form writes it
        assert page.recipe_info(kind, method, base) == lr.info
    assert page.on_recipe("classify", "lora", "starter")[1].value == "1e-3"
    assert page.on_recipe("classify", "lora", "gpt2")[1].value == "3e-4"


def test_page_and_cli_fill_the_same_fields():
    seen = {}

    class Manager:
        policy = JobPolicy()
        last_pruned: list = []
        multiuser = False

        def submit(self, spec, by=None, upload=None):
            seen["page"] = self.policy.numbers(spec)  # the numbers as the job gets them
            return "j1"

        def get(self, job_id):
            return status(state="queued")

    d = tune_defaults("classify", "last_blocks", "starter")
    page.start_job(Manager(), "classify", "starter", "bundled", None, "last_blocks",
                    d.epochs, page.form_number(d.lr), 8, 0, 50)  # fmt: skip
    args = argparse.Namespace(spec=None, set=[], **{n: None for n, *_ in jobs_cli._FLAGS})
    args.kind, args.base, args.method = "classify", "starter", "last_blocks"
    cli = jobs_cli._spec(args)
    for key in ("epochs", "lr", "last_n_blocks", "prefix_weight"):
        assert seen["page"].get(key) == cli.get(key), key
    assert cli["prefix_weight"] == d.fields()["prefix_weight"] == 2.0  # last blocks' own
    lora = with_tune_defaults({"kind": "classify", "method": "lora"})
    assert lora["prefix_weight"] == recipes.CLASSIFY_PREFIX_WEIGHT
    assert seen["page"]["weigh_classes"] is cli["weigh_classes"] is True
    given = with_tune_defaults({"kind": "classify", "method": "lora", "lr": 1e-4})
    assert given["lr"] == 1e-4 and given["epochs"] == tune_defaults("classify", "lora", "x").epochs


@pytest.mark.parametrize("asked, capped", [(0, True), ("0", True), (0.0, True), (None, True),
                                           (50, False), ("50", False)])
def test_the_page_says_when_the_space_capped_the_steps(asked, capped):
    """Max steps 0 (however the value arrives: the form's number, an API's text, None) lets
    the epochs decide up to the Space's cap, and the message says so; a number the visitor
    chose gets no such line."""

    class Manager:
        policy = JobPolicy(max_examples=800)
        last_pruned: list = []
        multiuser = True

        def submit(self, spec, by=None, upload=None):
            self.spec = self.policy.numbers(spec)
            return "j1"

        def get(self, job_id):
            return status(state="queued", spec=self.spec)

    said, _ = page.start_job(Manager(), "classify", "starter", "bundled", None, "full",
                             1, "1e-4", 8, asked, 50)  # fmt: skip
    assert ("At most 100 steps (this Space's size limit)" in said) is capped, said


# --- advice -------------------------------------------------------------------------------------

WEAK = {"kind": "classify", "base": "starter", "method": "last_blocks", "epochs": 1, "lr": 5e-5}


def test_a_weak_classifier_gets_concrete_advice_a_good_one_none():
    d, full = (
        tune_defaults("classify", "last_blocks", "starter"),
        tune_defaults("classify", "full", "starter"),
    )
    said = advice(WEAK, {"test": {"test_confusion_matrix": [[623, 0], [81, 16]]}})  # 0.58
    assert "0.58" in said.problem and "0.50" in said.problem
    assert f"more epochs: {d.epochs:g}" in said.tries
    assert f"learning rate {page.form_number(d.lr)} for last blocks" in said.tries
    assert f"method full ({full.epochs:g} epochs, lr {page.form_number(full.lr)})" in said.tries
    good = {**WEAK, "epochs": d.epochs, "lr": d.lr}
    assert advice(good, {"test": {"test_balanced_accuracy": 0.97}}) is None
    short = advice(good, {"test": {"test_balanced_accuracy": 0.85}})  # not weak, short of 0.90
    assert "below the 0.90" in short.problem and short.tries
    assert advice(WEAK, {"test": {}}) is None  # nothing measured, nothing said


def test_a_language_model_whose_val_loss_did_not_fall_gets_advice():
    spec = {"kind": "lm", "base": "starter", "method": "full", "epochs": 1, "lr": 1e-5}
    flat = {"evals": [{"step": s, "val_loss": 3.0} for s in (50, 100, 150)]}
    said = advice(spec, flat)
    assert "did not fall" in said.problem and said.tries[0].startswith("learning rate")
    rose = {"evals": [{"step": 50, "val_loss": 3.0}, {"step": 100, "val_loss": 2.5},
                      {"step": 150, "val_loss": 3.1}]}  # fmt: skip
    assert advice(spec, rose).tries[0].startswith("fewer epochs")
    fell = {"evals": [{"step": 50, "val_loss": 3.0}, {"step": 100, "val_loss": 2.0}]}
    assert advice(spec, fell) is None


def test_the_job_card_and_jobs_show_say_what_to_try(capsys):
    metrics = {
        "steps": [],
        "evals": [],
        "test": {"test_balanced_accuracy": 0.58, "test_accuracy": 0.89},
    }
    text = page.details(status(spec=WEAK), metrics)
    assert "**Weak result.**" in text and "more epochs: " in text
    assert "Weak result" not in page.details(status(spec=WEAK, state="running"), metrics)
    fake = SimpleNamespace(
        get=lambda _: status(spec=WEAK), metrics=lambda _: metrics, log=lambda _: ""
    )
    jobs_cli.cmd_show(fake, argparse.Namespace(job_id="j1", json=False, log=False))
    out = capsys.readouterr().out
    assert "weak result: Balanced accuracy 0.58" in out and "try: more epochs: " in out


# --- curves -------------------------------------------------------------------------------------


def noisy_metrics(train_level: float, val_level: float, steps: int = 200) -> dict:
    return {
        "steps": [{"step": s, "loss": train_level + (1.5 if s % 2 else -1.5)} for s in range(1, steps + 1)],
        "evals": [{"step": s, "val_loss": val_level, "val_accuracy": 0.9} for s in range(50, steps + 1, 50)],
    }  # fmt: skip


def test_curves_draw_faint_raw_points_under_a_smoothed_line_each_labelled():
    fig = page.curves(noisy_metrics(1.0, 2.0))
    by_name = {t.name: t for t in fig.data}
    raw, smooth = by_name["train loss (each step)"], by_name["train loss (smoothed)"]
    assert raw.mode == "markers" and raw.marker.opacity < 0.5 and smooth.mode == "lines"
    assert {"val loss", "val accuracy"} <= set(by_name)
    spread = lambda ys: max(ys[50:]) - min(ys[50:])  # noqa: E731
    assert spread(smooth.y) < spread(raw.y) / 5  # the line does smooth the 0-to-6 jumps
    assert len(smooth.x) == len(raw.x) == 200


@pytest.mark.parametrize(("train", "val", "side"), [(1.0, 2.0, "below"), (1.0, 0.5, "above")])
def test_the_loss_note_reads_the_numbers_the_chart_draws(train, val, side):
    metrics = noisy_metrics(train, val)
    fig = page.curves(metrics)
    drawn = {t.name: t for t in fig.data}
    last_train, last_val = drawn["train loss (smoothed)"].y[-1], drawn["val loss"].y[-1]
    note = page.loss_note(metrics, 0.5)
    assert f"{side} the last val loss" in note
    assert f"{last_train:.3f}" in note and f"{last_val:.3f}" in note
    assert (last_train > last_val) == (side == "above")


# --- small things -------------------------------------------------------------------------------


def test_cancel_is_red_only_while_the_selected_job_runs():
    cancel = gr.Button()
    view = SimpleNamespace(commands=(cancel, gr.Button()))
    assert page.command_looks(view, True, True)[cancel].variant == "stop"
    assert page.command_looks(view, True, False)[cancel].variant == "secondary"
    assert page.command_looks(view, False, True)[cancel].variant == "secondary"


def test_epochs_are_singular_or_plural_and_the_loss_column_says_which():
    assert page.epochs_text(1) == "1 epoch" and page.epochs_text(3) == "3 epochs"
    assert "Train loss" in page.COLUMNS and "Loss" not in page.COLUMNS


# --- the goal, end to end through the job path (slow) -------------------------------------------


@pytest.mark.slow
def test_tab_defaults_reach_the_goal_through_a_real_job(tmp_path):
    """last_blocks from starter on the bundled data, as the tab submits it, in a job worker:
    balanced accuracy >= 0.90 (the bench measures every method and dataset)."""
    from gpt.jobs import JobManager

    spec = with_tune_defaults({"kind": "classify", "base": "starter", "method": "last_blocks"})
    spec |= {"data": "bundled", "batch_size": 8, "eval_every": 50, "score_base": True}
    with JobManager(tmp_path / "jobs") as jobs:
        job_id = jobs.submit(spec)
        deadline = time.time() + 900
        while jobs.get(job_id).active and time.time() < deadline:
            time.sleep(1)
        s, metrics = jobs.get(job_id), jobs.metrics(job_id)
    assert s.state == "succeeded", s.error
    assert metrics["test"]["test_balanced_accuracy"] >= recipes.GOAL_BALANCED, json.dumps(
        metrics["test"]["test_confusion_matrix"]
    )
    assert advice(s.spec, metrics) is None


@pytest.mark.parametrize("field", ["epochs", "lr", "batch_size", "eval_every", "max_steps"])
def test_the_forms_ranges_are_the_ones_submit_checks(field):
    """The notes say a field's range (`page.span`); `JobPolicy.numbers` takes both ends of it
    and refuses a value just past either."""
    lo, hi = (float(x) for x in page.span(field).split(" to "))
    policy = JobPolicy()
    for ok in (lo, hi):
        got = policy.numbers({field: ok})[field]
        assert got == pytest.approx(ok) or (field, ok, got) == ("max_steps", 0, None)  # epochs decide
    for bad in (lo - max(abs(lo), 1) / 2, hi * 1.5):
        with pytest.raises(JobError, match=r"must be between|must be a"):
            policy.numbers({field: bad})
