"""The disk budget for job folders: small fake jobs (rows and files written here) against a
tiny budget, and one real tiny job that drops its checkpoints once it succeeds."""

from __future__ import annotations

import json
import logging
import time

import pytest

from gpt.jobs import JobError, JobManager, JobPolicy, Visitor
from tests.test_jobs import classify_spec, files, one_thread  # noqa: F401 (fixtures)

KB = 1000


def fake_job(jobs: JobManager, job_id: str, state: str, owner: str | None, size: int) -> None:
    """A job row and `size` bytes of files: a model for succeeded jobs, a checkpoint else."""
    jobs._execute(
        "INSERT INTO jobs (id, kind, base, method, data, spec, state, created, owner) "
        "VALUES (?, 'classify', 'starter', 'full', 'bundled', ?, ?, ?, ?)",
        (job_id, json.dumps({"kind": "classify"}), state, time.time(), owner),
    )
    part = "model" if state == "succeeded" else "checkpoints/step-1"
    folder = jobs.job_dir(job_id) / "out" / part
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\0" * size)
    time.sleep(0.01)  # distinct creation times: oldest first


@pytest.fixture
def four(tmp_path):
    """4 KB of jobs: an old anonymous succeeded one, an anonymous cancelled one, a signed-in
    visitor's, and an anonymous one still queued."""
    with JobManager(tmp_path / "jobs", policy=JobPolicy(multiuser=True), background=False) as jobs:
        fake_job(jobs, "a-model", "succeeded", "anon:aaaa", KB)
        fake_job(jobs, "a-cancelled", "cancelled", "anon:aaaa", KB)
        fake_job(jobs, "alice", "succeeded", "hf:alice", KB)
        fake_job(jobs, "b-queued", "queued", "anon:bbbb", KB)
        jobs._execute("UPDATE jobs SET state = 'queued' WHERE id = 'b-queued'")
        yield jobs


def ids(jobs: JobManager) -> set[str]:
    return {r["id"] for r in jobs._execute("SELECT id FROM jobs")}


def test_within_budget_nothing_is_pruned(four):
    four.policy.disk_quota = 10 * KB
    assert four.make_room(KB) == [] and len(ids(four)) == 4


def test_the_requesters_jobs_without_a_model_go_first(four, caplog):
    four.policy.disk_quota = 3500
    with caplog.at_level(logging.WARNING, logger="gpt2lab.jobs"):
        assert four.make_room(500, owner="anon:aaaa") == ["a-cancelled"]  # 3000 + 500 fits now
    assert "pruned job a-cancelled (cancelled, anon:aaaa, the requester's own" in caplog.text
    assert not four.job_dir("a-cancelled").exists()
    assert ids(four) == {"a-model", "alice", "b-queued"}


def test_final_models_last_then_signed_in_and_active_jobs_are_kept(four):
    four.policy.disk_quota = 3500
    assert four.make_room(1500, owner="anon:aaaa") == ["a-cancelled", "a-model"]
    assert ids(four) == {"alice", "b-queued"} and four.disk_usage() == 2 * KB
    four.policy.disk_quota = 2500
    with pytest.raises(JobError, match="disk quota exceeded"):  # nothing left it may prune
        four.make_room(1500, owner="anon:aaaa")
    assert ids(four) == {"alice", "b-queued"}


def test_others_jobs_are_never_pruned_for_a_visitor(four):
    four.policy.disk_quota = 3500
    with pytest.raises(JobError, match="disk quota exceeded"):
        four.make_room(1500, owner="anon:cccc")  # anon:aaaa's jobs are not theirs to remove
    assert len(ids(four)) == 4


def test_submit_over_budget_says_so_and_deletes_nothing(four, files):  # noqa: F811
    four.policy.disk_quota = 2 * KB  # alice's and the queued job fill it
    with pytest.raises(JobError, match="disk quota exceeded.*even after removing your own"):
        four.submit(classify_spec(files), Visitor("anon:cccc"))
    assert len(ids(four)) == 4  # a refused submission deletes nothing
    with pytest.raises(JobError, match="disk quota exceeded"):  # nor does one of their own
        four.submit(classify_spec(files), Visitor("anon:aaaa"))
    assert len(ids(four)) == 4 and four.job_dir("a-model").exists()


def test_resume_never_prunes_the_job_it_resumes(four):
    four.policy.disk_quota = 4 * KB
    assert four.make_room(KB, keep="a-cancelled", owner="anon:aaaa") == ["a-model"]
    assert "a-cancelled" in ids(four) and "a-model" not in ids(four)


@pytest.mark.slow  # a real job
def test_a_succeeded_job_under_a_budget_keeps_its_model_only(files, tmp_path):  # noqa: F811
    with JobManager(
        tmp_path / "jobs", policy=JobPolicy(disk_quota=10**9), background=False
    ) as jobs:
        job_id = jobs.submit(classify_spec(files))
        status = jobs.wait(job_id, timeout=120)
        assert status.state == "succeeded", status.error
        out = jobs.job_dir(job_id) / "out"
        assert (out / "model" / "config.json").is_file()
        assert not (out / "checkpoints").exists()
        assert "dropped the training checkpoints" in jobs.log(job_id)


def test_accepted_jobs_keep_room_for_what_they_will_write(files, tmp_path):  # noqa: F811
    from gpt.lab.runs import expected_bytes

    spec = classify_spec(files, max_steps=100_000, eval_every=10_000, checkpoint_every=100_000)
    need = expected_bytes(spec)
    assert need > 0
    policy = JobPolicy(multiuser=True, disk_quota=int(need * 1.5))  # no job size cap
    with JobManager(tmp_path / "jobs", policy=policy, background=False) as jobs:
        first = jobs.submit(spec, Visitor("anon:aaaa"))  # fits
        with pytest.raises(JobError, match="disk quota exceeded.*running jobs will need"):
            jobs.submit(spec, Visitor("anon:bbbb"))  # would not, once the first has written
        jobs.cancel(first, Visitor("anon:aaaa"))
