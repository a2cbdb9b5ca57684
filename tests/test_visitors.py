"""Multi-user mode without a browser: who owns a job, who may change it, what a visitor sees.

JobManager enforces ownership itself (the endpoints only say who is asking), so these tests
drive it directly with real (tiny) jobs; tests/test_app_visitors.py does the same through the
app's API with two clients.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from gpt.jobs import JobError, JobManager, JobPolicy, NotOwnerError, Visitor, connect
from pages.common.inputs import scrub
from pages.visitors import (
    KEY_FILE,
    TokenKeys,
    ensure_token,
    is_admin,
    multiuser_mode,
    new_token,
    owner_of,
    valid_token,
    who,
)
from tests.test_jobs import classify_spec, files, one_thread  # noqa: F401 (fixtures)

LONG = dict(max_steps=100_000, eval_every=10_000, checkpoint_every=100_000)
SHARED = JobPolicy(multiuser=True)  # multi-user mode without the job size cap (LONG is over it)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, False),
        ({"SPACE_ID": "someone/gpt2-lab"}, True),
        ({"SPACE_ID": "someone/gpt2-lab", "GPT2LAB_MULTIUSER": "0"}, False),
        ({"GPT2LAB_MULTIUSER": "1"}, True),
        ({"GPT2LAB_MULTIUSER": "yes"}, True),
    ],
)
def test_multiuser_mode_follows_space_id_unless_forced(env, expected):
    assert multiuser_mode(env) is expected


def test_tokens_and_owners():
    a, b = new_token(), new_token()
    assert a != b and valid_token(a) and len(a) >= 32
    assert owner_of(a) != owner_of(b) and owner_of(a) == owner_of(a)
    assert a not in owner_of(a)  # the owner is a digest: the secret token never shows
    for bad in (None, "", "short", "x" * 31, "bad token with spaces and more chars!!", 42):
        assert owner_of(bad) is None and not valid_token(bad)
    assert ensure_token(a) == a and valid_token(ensure_token(None))

    class Profile:
        username = "alice"

    assert owner_of(a, Profile()) == "hf:alice"  # signed in: the HF user, whatever the token
    assert who("hf:alice", "hf:alice") == "you" and who("hf:alice", owner_of(a)) != "you"


def test_admin_token_needs_the_exact_configured_value():
    env = {"GPT2LAB_ADMIN_TOKEN": "s3cret-admin"}
    assert is_admin("s3cret-admin", env)
    assert not is_admin("s3cret-admi", env) and not is_admin("", env) and not is_admin(None, env)
    assert not is_admin("", {}) and not is_admin("anything", {})  # unset: nobody is admin


def test_signing_key_survives_restarts_and_is_private(tmp_path, monkeypatch):
    monkeypatch.delenv("GPT2LAB_VISITOR_KEY", raising=False)
    from pages import visitors

    monkeypatch.setattr(visitors, "_keys", None)
    token = visitors.keys(tmp_path).issue()
    monkeypatch.setattr(visitors, "_keys", None)  # a restart: the key is read back
    assert visitors.keys(tmp_path).nonce(token) is not None
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o077 == 0
    secret = TokenKeys(bytes.fromhex((tmp_path / KEY_FILE).read_text())).browser_secret()
    assert secret not in (tmp_path / KEY_FILE).read_text()  # what the page gets is not the key


@pytest.mark.slow  # a real job
def test_only_the_owner_or_the_admin_changes_a_job(files, tmp_path):  # noqa: F811
    a, b = Visitor(owner_of(new_token())), Visitor(owner_of(new_token()))
    with JobManager(tmp_path / "jobs", policy=SHARED, background=False) as jobs:
        with pytest.raises(JobError, match="needs an owner"):
            jobs.submit(classify_spec(files))
        job_id = jobs.submit(classify_spec(files, **LONG), a)
        assert jobs.get(job_id).owner == a.owner
        for verb in (jobs.cancel, jobs.delete):
            with pytest.raises(NotOwnerError, match="belongs to another visitor"):
                verb(job_id, b)
            with pytest.raises(NotOwnerError):
                verb(job_id)  # nobody in particular
        assert jobs.get(job_id).active  # untouched
        assert jobs.cancel(job_id, a).state == "cancelled"
        with pytest.raises(NotOwnerError, match="only they \\(or the admin\\) can resume"):
            jobs.resume(job_id, b)
        admin = Visitor(b.owner, admin=True)
        jobs.resume(job_id, admin)
        assert jobs.cancel(job_id, admin).state == "cancelled"
        with pytest.raises(NotOwnerError):
            jobs.delete(job_id, b)
        jobs.delete(job_id, a)
        assert jobs.list() == []


@pytest.mark.slow  # a real job
def test_single_user_mode_lets_anyone_act(files, tmp_path):  # noqa: F811
    with JobManager(tmp_path / "jobs", background=False) as jobs:
        job_id = jobs.submit(classify_spec(files, **LONG), Visitor("anon:a"))
        assert jobs.cancel(job_id, Visitor("anon:b")).state == "cancelled"
        jobs.resume(job_id)
        jobs.delete(job_id, Visitor("anon:c"))
        assert jobs.list() == []


@pytest.mark.slow  # a real job
def test_one_active_job_per_owner(files, tmp_path):  # noqa: F811
    a, b = Visitor("anon:aaaa"), Visitor("anon:bbbb")
    policy = JobPolicy(multiuser=True, per_visitor=1)
    with JobManager(tmp_path / "jobs", policy=policy, background=False) as jobs:
        first = jobs.submit(classify_spec(files, **LONG), a)
        with pytest.raises(JobError, match="you already have 1 job queued or running"):
            jobs.submit(classify_spec(files), a)
        other = jobs.submit(classify_spec(files, **LONG), b)  # another visitor may
        jobs.cancel(first, a)
        again = jobs.submit(classify_spec(files, **LONG), a)  # once A's job ended
        with pytest.raises(JobError, match="already have 1"):
            jobs.resume(first, a)  # resuming counts too
        for job_id, owner in ((again, a), (other, b)):
            jobs.cancel(job_id, owner)


def test_jobs_db_from_before_owners_gains_the_column(tmp_path):
    root = tmp_path / "jobs"
    root.mkdir()
    old = sqlite3.connect(root / "jobs.db")
    old.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, base TEXT NOT NULL, "
        "method TEXT NOT NULL, data TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL, "
        "step INTEGER NOT NULL DEFAULT 0, max_steps INTEGER, loss REAL, eta_s REAL, "
        "created REAL NOT NULL, started REAL, finished REAL, error TEXT, note TEXT, pid INTEGER,"
        " attempt INTEGER NOT NULL DEFAULT 0, resume INTEGER NOT NULL DEFAULT 0, "
        "cancel_requested INTEGER NOT NULL DEFAULT 0, disk_quota INTEGER)"
    )
    old.execute(
        "INSERT INTO jobs (id, kind, base, method, data, spec, state, created) VALUES "
        "('old', 'classify', 'starter', 'full', 'bundled', '{}', 'cancelled', ?)",
        (time.time(),),
    )
    old.commit()
    old.close()
    connect(root).close()
    with JobManager(root, policy=JobPolicy(multiuser=True), background=False) as jobs:
        assert jobs.get("old").owner is None
        with pytest.raises(NotOwnerError):  # an unowned old job is the admin's to manage
            jobs.delete("old", Visitor("anon:someone"))
        jobs.delete("old", Visitor(None, admin=True))


def test_unknown_job_error_names_no_server_path(tmp_path):
    with JobManager(tmp_path / "jobs", background=False) as jobs, pytest.raises(JobError) as e:
        jobs.get("nope")
    assert str(tmp_path) not in str(e.value) and "nope" in str(e.value)


def test_scrub_hides_tracebacks_and_server_paths(tmp_path):
    job = tmp_path / "jobs" / "20260101-000000-abcdef"
    error = (
        "worker exited with status 1:\n"
        "Traceback (most recent call last):\n"
        f'  File "{tmp_path}/repo/gpt/jobs/worker.py", line 151, in _run\n'
        "    metrics = run(spec, out)\n"
        f'  File "{tmp_path}/repo/gpt/data.py", line 80, in read\n'
        "    raise DataError(msg)\n"
        f"gpt.train.data.DataError: {job}/data/upload.tsv: line 12 has no tab"
    )
    shown = scrub(error, job)
    assert (
        shown
        == "worker exited with status 1:\ngpt.train.data.DataError: data/upload.tsv: line 12 has no tab"
    )
    assert "…/worker.py" in scrub(f"see {tmp_path}/repo/gpt/jobs/worker.py")
    assert scrub("fetch https://example.org/a/b failed") == "fetch https://example.org/a/b failed"


def test_errors_reach_visitors_in_words_only(caplog):
    import gradio as gr

    from pages.common import friendly_errors

    @friendly_errors
    def rejects():
        raise gr.Error("Batch size must be between 1 and 64.")

    @friendly_errors
    def breaks():
        raise OSError("cannot open /srv/app/jobs/j1/data/upload.tsv")

    with pytest.raises(gr.Error) as e:
        rejects()
    assert e.value.print_exception is False  # gradio prints no traceback for it
    with caplog.at_level("ERROR", logger="gpt2lab"), pytest.raises(gr.Error) as e:
        breaks()
    assert "/srv" not in e.value.message and "…/upload.tsv" in e.value.message
    assert e.value.print_exception is False  # logged once, below, with its traceback
    assert "/srv/app/jobs/j1/data/upload.tsv" in caplog.text  # the server log has it all


@pytest.mark.slow  # a real job
def test_a_failed_jobs_error_and_log_show_no_traceback_or_path(files, tmp_path):  # noqa: F811
    from pages.jobs import details, shown_log

    a = Visitor("anon:aaaa")
    with JobManager(tmp_path / "jobs", policy=SHARED, background=False) as jobs:
        job_id = jobs.submit(classify_spec(files, **LONG), a)
        jobs.cancel(job_id, a)
        folder = jobs.job_dir(job_id)
        trace = (
            "Traceback (most recent call last):\n"
            f'  File "{tmp_path}/gpt/jobs/worker.py", line 151, in _run\n'
            "    metrics = run(spec, out)\n"
            f"gpt.train.data.DataError: {folder}/data/sms.tsv: line 12 has no tab"
        )
        jobs._execute("UPDATE jobs SET error = ? WHERE id = ?", (trace, job_id))
        with open(folder / "log.txt", "a", encoding="utf-8") as log:
            log.write(trace + "\n")
        status = jobs.get(job_id)
        text = details(status, jobs.metrics(job_id), folder)
        assert "data/sms.tsv: line 12 has no tab" in text
        assert str(tmp_path) not in text and "Traceback" not in text
        mine = shown_log(jobs, status, a)
        assert "data/sms.tsv: line 12" in mine
        assert str(tmp_path) not in mine and "Traceback" not in mine
        assert "shown to the visitor who started" in shown_log(jobs, status, Visitor("anon:b"))
        assert "line 12" in shown_log(jobs, status, Visitor("anon:b", True))


@pytest.mark.slow  # a real job
def test_cancel_says_whether_resume_continues_or_starts_over(files, tmp_path):  # noqa: F811
    from pages.jobs import cancel_job

    with JobManager(tmp_path / "jobs", background=False) as jobs:
        early = jobs.submit(classify_spec(files, **LONG))
        assert "no checkpoint yet, so **Resume** starts it over" in cancel_job(jobs, early)
        later = jobs.submit(classify_spec(files, max_steps=100_000, checkpoint_every=2))
        deadline = time.time() + 90
        while not jobs.has_checkpoint(later) and time.time() < deadline:
            time.sleep(0.1)
        assert "continues it from its last checkpoint" in cancel_job(jobs, later)


def test_a_classifiers_results_come_with_their_baseline():
    from pages.jobs import baseline_text

    text = baseline_text({"test_accuracy": 0.868, "test_confusion_matrix": [[860, 5], [127, 8]]})
    assert "Always answering **ham** would score 0.865" in text
    assert "0.003 above it" in text and "| **spam** | 127 | 8 |" in text
    assert baseline_text({"test_loss": 2.0}) == ""  # no classifier, no baseline
