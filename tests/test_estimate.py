"""Run-time estimates: the work counted from data and config, the arithmetic, and where they show."""

from __future__ import annotations

import pytest
import torch

from gpt.classifier import GPTClassifier
from gpt.config import PRESETS
from gpt.lab.runs import run
from gpt.model import GPT
from gpt.train.estimate import (
    Costs,
    Estimate,
    Workload,
    duration,
    estimate_fit,
    measure,
    plan,
)
from gpt.train.loop import ClassifyTask, TrainConfig, _epoch_batches, example_lengths, prepare_model
from gpt.train.trunk import frozen_split
from tests.test_runs import byte_tok, spam_tsv, tiny_spec  # noqa: F401 (fixtures)
from tests.test_train import classify_collate, classify_data

SMALL = PRESETS["tiny"].replace(n_layer=3)


def padded(lengths, batches) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_plan_counts_the_batches_fit_draws():
    lengths = [3, 9, 4, 12, 5, 7, 2, 8, 6, 10]
    cfg = TrainConfig(task="classify", batch_size=3, epochs=2, eval_every=3, grad_accum=2)
    # 4 micro-batches an epoch, 2 per step: 2 steps an epoch, 4 in all
    expected = padded(lengths, _epoch_batches(10, 3, 0, 0, lengths))
    expected += padded(lengths, _epoch_batches(10, 3, 1, 0, lengths))
    w = plan(cfg, lengths, [4, 6, 5], split=True, cached=False, bucket=True)
    assert (w.steps, w.train_tokens) == (4, expected)
    assert w.trunk_tokens == expected  # uncached: the trunk runs on every batch
    assert w.eval_tokens == 2 * 3 * 6  # evaluations after steps 3 and 4, one padded batch each
    cached = plan(cfg, lengths, split=True, cached=True, bucket=True, group=3)
    groups = [[6, 0, 2], [4, 8, 5], [7, 1, 9], [3]]  # by length, 3 at a time
    assert cached.trunk_tokens == padded(lengths, groups) == 3 * 4 + 3 * 7 + 3 * 10 + 12
    assert plan(cfg, lengths, split=False).trunk_tokens == 0
    short = plan(TrainConfig(batch_size=3, max_steps=1), lengths, split=True, cached=True, group=3)
    assert short.trunk_tokens < cached.trunk_tokens  # only the groups its batch touches


def test_estimate_is_the_counted_work_times_the_measured_costs():
    torch.manual_seed(0)
    model = GPTClassifier(GPT(SMALL), 2)
    cfg = TrainConfig(task="classify", method="last_blocks", epochs=2, batch_size=8, eval_every=5)
    prepare_model(model, cfg)
    data = classify_data(40)
    costs = Costs(trunk=1e-4, train=3e-4, eval=2e-4, step=0.05)
    est = estimate_fit(
        model, ClassifyTask(), data, data[:8], cfg, collate=classify_collate, costs=costs
    )
    lengths = example_lengths(ClassifyTask(), data, classify_collate)
    train = padded(lengths, _epoch_batches(40, 8, 0, 0, lengths))
    train += padded(lengths, _epoch_batches(40, 8, 1, 0, lengths))
    order = sorted(range(40), key=lambda i: (lengths[i], i))
    trunk = padded(lengths, [order])  # one group: 40 examples, up to 64 at a time
    trunk += 8 * max(lengths[:8])  # and the validation set's own cache: once, one group
    val = 2 * 8 * max(lengths[:8])  # evaluations after steps 5 and 10 (the trained part)
    assert (est.work.steps, est.work.train_tokens, est.work.trunk_tokens) == (10, train, trunk)
    assert est.work.eval_tokens == val
    expected = trunk * 1e-4 + train * 3e-4 + val * 2e-4 + 10 * 0.05
    assert est.seconds == pytest.approx(expected)
    assert Estimate(Workload(0, 0, 0, 0, decode_tokens=10), Costs(0, 0, 0, 0, 0.5)).seconds == 5


def test_measuring_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = GPTClassifier(GPT(SMALL), 2)
    cfg = TrainConfig(task="classify", method="last_blocks", batch_size=4)
    prepare_model(model, cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = classify_data(12)
    lengths = example_lengths(ClassifyTask(), data, classify_collate)
    split = frozen_split(model, "last_blocks", 1)
    costs = measure(model, ClassifyTask(), data, classify_collate, cfg, lengths, split)
    assert min(costs.trunk, costs.train, costs.eval, costs.step) > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow  # a whole (tiny) training run
def test_run_announces_its_estimate_before_training(tmp_path, byte_tok, spam_tsv):  # noqa: F811
    events = []
    run(tiny_spec("classify", byte_tok, spam_tsv), tmp_path, [events.append], estimate=True)
    first = events[0]
    assert first.kind == "estimate" and first.eta_s == first.metrics["seconds"] > 0
    assert first.metrics["text"].startswith("about ") and first.max_steps == 6
    assert events[1].kind != "estimate"


@pytest.mark.slow  # prepares a (tiny) run
def test_the_estimate_counts_scoring_the_base_model(byte_tok, spam_tsv):  # noqa: F811
    """score_base runs the test set once more, through the base model, before training."""
    from gpt.lab.runs import estimate_run

    plain = estimate_run(tiny_spec("classify", byte_tok, spam_tsv)).work
    scored = estimate_run(tiny_spec("classify", byte_tok, spam_tsv, score_base=True)).work
    assert scored.eval_tokens > plain.eval_tokens and scored.train_tokens == plain.train_tokens


@pytest.mark.slow  # two whole (tiny) training runs
def test_a_run_announces_the_same_accounting_as_a_queued_jobs_estimate(
    tmp_path, monkeypatch, byte_tok, spam_tsv  # noqa: F811
):
    """The estimate a run announces at its start counts the test set (twice with score_base),
    as `estimate_run` does for a queued job: training alone is measured as free here."""
    import gpt.lab.runs
    from gpt.train.estimate import Costs, Estimate, Workload

    free_fit = Estimate(Workload(0, 0, 0, 0), Costs(0.0, 0.0, 1.0, 0.0))
    monkeypatch.setattr(gpt.lab.runs, "estimate_fit", lambda *a, **k: free_fit)
    said = []
    for scored in (False, True):
        events = []
        spec = tiny_spec("classify", byte_tok, spam_tsv, score_base=scored)
        run(spec, tmp_path / str(scored), [events.append], estimate=True)
        said.append(events[0].metrics["seconds"])
        assert said[-1] == gpt.lab.runs.estimate_run(spec).seconds
    assert said[0] > 0 and said[1] == 2 * said[0]  # one test pass (tokens at 1 s each), or two


def test_rough_durations():
    assert [duration(s, rough=True) for s in (0.2, 61, 89, 90, 3599, 7200)] == [
        "5 s",
        "1 min",
        "1 min",
        "2 min",
        "60 min",
        "2 h",
    ]


def test_fine_tune_tab_shows_estimates():
    pytest.importorskip("gradio")
    from gpt.jobs import JobStatus
    from pages.jobs import details, estimate_text, eta_cell

    def status(state, eta=None, estimate=None):
        return JobStatus(
            "j1", "classify", "gpt2", "last_blocks", "bundled", state, 3, 30, 0.1, 0.5, eta,
            0.0, 0.0, None, None, None, None, None, 1, {}, estimate,
        )  # fmt: skip

    est = {"seconds": 170.0, "text": "about 3 min on this machine", "busy": 1}
    assert eta_cell(status("queued", estimate=est)) == "≈ 3 min"
    assert eta_cell(status("running", eta=65.0, estimate=est)) == "1 min 05 s"
    assert "expected to take: about 3 min" in details(status("queued", estimate=est), {})
    shown = details(status("running", eta=65.0, estimate=est), {})
    assert "about 1 min 05 s left" in shown and "estimated at its start: about 3 min" in shown
    assert estimate_text("j1", est) == (
        "Job **j1** should take about 3 min on this machine (timed while another job ran, so "
        "probably less), plus a few seconds to start (Python, the model and the data)."
    )
    started = {**est, "busy": 0, "start_s": 9.6}  # written by the worker: its start is known
    assert estimate_text("j1", started) == (
        "Job **j1** started in 10 s (Python, the model and the data loaded); training and "
        "testing should take about 3 min more on this machine."
    )
    shown = details(status("running", eta=65.0, estimate=started), {})
    assert "estimated at its start: about 3 min on this machine after a start of 10 s" in shown


def test_a_queued_job_gets_an_estimate(tmp_path, monkeypatch, byte_tok, spam_tsv):  # noqa: F811
    pytest.importorskip("gradio")
    from gpt.jobs import JobManager
    from pages.jobs import estimate_job, eta_cell

    monkeypatch.setattr("gpt.jobs.store.claim_next", lambda *a: None)  # it stays queued
    with JobManager(tmp_path / "jobs", background=False) as manager:
        job_id = manager.submit(tiny_spec("classify", byte_tok, spam_tsv, method="last_blocks"))
        assert manager.get(job_id).state == "queued" and manager.get(job_id).estimate is None
        text = estimate_job(manager, job_id)
        status = manager.get(job_id)
    assert status.estimate["seconds"] > 0 and status.estimate["busy"] == 0
    assert text.startswith(f"Job **{job_id}** should take {status.estimate['text']}, plus a few")
    assert eta_cell(status).startswith("≈ ")


def test_a_failed_estimate_is_a_note_not_a_failed_run(tmp_path, monkeypatch, byte_tok, spam_tsv):  # noqa: F811
    import gpt.lab.runs

    def broken(*args, **kwargs):
        raise RuntimeError("no clock")

    monkeypatch.setattr(gpt.lab.runs, "estimate_fit", broken)
    events = []
    metrics = run(
        tiny_spec("classify", byte_tok, spam_tsv), tmp_path, [events.append], estimate=True
    )
    assert metrics["status"] == "finished"
    assert events[0].kind == "note" and "RuntimeError: no clock" in events[0].metrics["message"]
