"""Jobs say what they are doing: the test-set evaluation is a stage with its own progress."""

from __future__ import annotations

import json

import pytest

from gpt.jobs import JobManager
from gpt.lab.runs import RunSpec, run
from tests.test_jobs import classify_spec, files, one_thread  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # runs and real job worker processes


def test_run_reports_the_evaluation_as_a_stage(files, tmp_path):  # noqa: F811
    events = []
    spec = RunSpec.from_dict(classify_spec(files, batch_size=2))
    metrics = run(spec, tmp_path / "out", callbacks=[events.append])
    stages = [e.metrics for e in events if e.kind == "stage"]
    assert stages and stages[0]["done"] == 0  # announced before the first test batch
    total = metrics["data"]["test_examples"]
    assert stages[-1] == {"stage": "evaluating", "done": total, "total": total}
    kinds = [e.kind for e in events]
    assert kinds.index("stage") > max(i for i, k in enumerate(kinds) if k == "step")


def test_a_running_jobs_stage_shows_in_the_list_and_details(files, tmp_path):  # noqa: F811
    from pages.jobs import details, job_rows

    with JobManager(tmp_path / "jobs", background=False) as jobs:
        job_id = jobs.submit(classify_spec(files))
        assert jobs.wait(job_id, timeout=120).state == "succeeded"
        assert "evaluating on the test set" in jobs.log(job_id)
        assert jobs.get(job_id).stage is None  # finished: no stage
        stage = {"stage": "evaluating", "done": 40, "total": 120}
        jobs._execute(
            "UPDATE jobs SET state = 'running', stage = ? WHERE id = ?",
            (json.dumps(stage), job_id),
        )
        status = jobs._status(jobs._row(job_id))  # no poll: it would reap the fake
        assert status.stage == stage
        row = job_rows([status]).iloc[0]
        assert row["Progress"].startswith("evaluating ") and row["Progress"].endswith("33%")
        text = details(status, {})
        assert "evaluating on the test set: 40 / 120 scored" in text and "left" not in text


def test_the_base_model_is_scored_on_the_same_test_set(files, tmp_path):  # noqa: F811
    from pages.jobs import details

    with JobManager(tmp_path / "jobs", background=False) as jobs:
        job_id = jobs.submit(classify_spec(files, score_base=True, max_steps=6, lr=1e-2))
        status = jobs.wait(job_id, timeout=120)
        assert status.state == "succeeded", status.error
        test = jobs.metrics(job_id)["test"]
        base = test["base"]
        assert set(base) >= {"test_accuracy", "test_confusion_matrix"}
        assert base["test_confusion_matrix"] != [[0, 0], [0, 0]]
        assert sum(map(sum, base["test_confusion_matrix"])) == sum(
            map(sum, test["test_confusion_matrix"])
        )  # the same test examples
        assert "scoring the base model on the test set" in jobs.log(job_id)
        assert "Before fine-tuning, the base model scored: accuracy" in details(
            status, {"test": test}
        )
        assert jobs.get(job_id).stage is None
        (model,) = jobs.models()
        assert "base" not in model.metrics
        # the model card's baseline: cards read `untuned_<base>_test`
        assert '"untuned_preset:tiny_test"' in (jobs.model_dir(job_id) / "config.json").read_text()
