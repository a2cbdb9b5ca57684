"""The job store (`gpt.jobs.store`): the lifecycle table is the only way a job changes state, and
a finishing worker drains the queue with the store's and manager's public functions alone."""

from __future__ import annotations

import os

import pytest

from gpt.jobs import JobManager, store
from gpt.jobs.store import LIFECYCLE, STATES, add_job, finish_attempt, job_row, transition
from tests.test_jobs import classify_spec, files, one_thread, wait_for  # noqa: F401 (fixtures)


def new_job(conn, job_id: str, state: str = "queued", **fields) -> None:
    add_job(conn, job_id, kind="lm", base="preset:tiny", method="full", data="bundled", spec="{}")
    # a row as another state left it: set by hand, the one way around `transition`
    values = {"state": state, **fields}
    sets = ", ".join(f"{k} = ?" for k in values)
    conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))


@pytest.mark.parametrize("source", STATES)
def test_transition_allows_exactly_the_lifecycle_table(tmp_path, source):
    conn = store.connect(tmp_path)
    for target in STATES:
        job_id = f"{source}-{target}"
        new_job(conn, job_id, source, attempt=3, error="old", pid=42, cancel_requested=1)
        moved = transition(conn, job_id, target)
        row = job_row(conn, job_id)
        assert moved == (target in LIFECYCLE[source]), (source, target)
        assert row["state"] == (target if moved else source)
        if not moved:
            assert row["attempt"] == 3 and row["error"] == "old"
        elif target == "running":  # a new attempt
            assert row["attempt"] == 4 and row["started"] and row["pid"] is None
        elif target == "queued":  # resumed: last attempt's end forgotten
            assert row["attempt"] == 3 and row["error"] is None and not row["cancel_requested"]
            assert row["pid"] is None and row["finished"] is None
        else:
            assert row["finished"] and row["error"] is None and row["eta_s"] is None


def test_an_attempt_ends_once_and_only_while_it_runs(tmp_path):
    conn = store.connect(tmp_path)
    new_job(conn, "j", "running", attempt=2)
    assert not finish_attempt(conn, "j", 1, "failed", "a late report of attempt 1")
    assert finish_attempt(conn, "j", 2, "succeeded", step=7)
    assert not finish_attempt(conn, "j", 2, "failed", "ended twice")
    row = job_row(conn, "j")
    assert (row["state"], row["step"], row["error"]) == ("succeeded", 7, None)
    new_job(conn, "q", "queued", attempt=2)
    assert not finish_attempt(conn, "q", 2, "cancelled")  # not running: a queued job stays
    assert transition(conn, "q", "cancelled", expect="queued")


def test_bad_moves_and_fields_are_refused_by_name(tmp_path):
    conn = store.connect(tmp_path)
    new_job(conn, "j")
    with pytest.raises(ValueError, match="unknown job state 'done'"):
        transition(conn, "j", "done")
    with pytest.raises(ValueError, match="a succeeded job never becomes queued"):
        transition(conn, "j", "queued", expect="succeeded")
    with pytest.raises(ValueError, match="an attempt ends .*, not 'running'"):
        finish_attempt(conn, "j", 0, "running")
    with pytest.raises(ValueError, match="not a job field: state"):
        store.update(conn, "j", state="succeeded")
    with pytest.raises(ValueError, match="not a job field: colour"):
        transition(conn, "j", "cancelled", colour="red")
    assert job_row(conn, "j")["state"] == "queued"


def test_claim_next_keeps_the_limit_and_skips_a_job_whose_lock_is_held(tmp_path):
    conn = store.connect(tmp_path)
    for job_id in ("a", "b", "c"):
        new_job(conn, job_id)
    (tmp_path / "a").mkdir()
    held = store.take_worker_lock(tmp_path / "a" / store.LOCK_NAME)  # a's old worker, exiting
    claim = store.claim_next(conn, tmp_path, max_concurrent=2)
    assert (claim.job_id, claim.attempt) == ("b", 1)
    assert store.worker_holds_lock(tmp_path / "b" / store.LOCK_NAME)
    second = store.claim_next(conn, tmp_path, max_concurrent=2)
    assert second.job_id == "c"
    assert store.claim_next(conn, tmp_path, max_concurrent=2) is None  # two run already
    for fd in (held, claim.lock, second.lock):
        store.close_lock(fd)
    assert [job_row(conn, j)["state"] for j in "abc"] == ["queued", "running", "running"]


@pytest.mark.slow
def test_a_finishing_worker_starts_the_next_queued_job_without_a_manager(files, tmp_path):  # noqa: F811
    root = tmp_path / "jobs"
    with JobManager(root, background=False) as jobs:
        first = jobs.submit(classify_spec(files, max_steps=1, eval_every=1))
        second = jobs.submit(classify_spec(files, max_steps=1, eval_every=1))
        assert jobs.get(second).state == "queued"
    # No manager watches `root` now: the first job's worker must start the second one.
    conn = store.connect(root)
    states = lambda: [job_row(conn, j)["state"] for j in (first, second)]  # noqa: E731
    wait_for(lambda: states() == ["succeeded", "succeeded"], timeout=120)
    worker = job_row(conn, first)["pid"]
    log = (root / second / store.LOG_NAME).read_text()
    assert f"started by pid {worker}\n" in log and worker != os.getpid()
