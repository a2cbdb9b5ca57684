"""Background jobs: real worker processes training tiny models on tiny files (no mocks).

Each job trains `preset:tiny` (or a 1-block model folder for instruct, whose Alpaca prompts do
not fit tiny's 64-token context with a byte tokenizer) for a handful of steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import gpt
from gpt.jobs import REPO, JobError, JobManager, JobPolicy, connect, retry_db
from gpt.jobs.cli import register
from gpt.train import state as trainstate

pytestmark = pytest.mark.slow  # real job worker processes


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("GPT2LAB_JOB_THREADS", "1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("jobdata")
    tok = gpt.Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256})
    tok.save(d / "tok.json")
    sms = []
    for i in range(40):
        if i % 3 == 0:
            sms.append(f"spam\tWIN a free prize now, call {i}")
        else:
            sms.append(f"ham\tsee you at lunch {i}")
    (d / "sms.tsv").write_text("\n".join(sms) + "\n", encoding="utf-8")
    recs = [{"instruction": f"Say {i}.", "input": "", "output": f"{i}"} for i in range(20)]
    (d / "alpaca.json").write_text(json.dumps(recs), encoding="utf-8")
    # Alpaca prompts are ~150 bytes: a 1-block model with a 256-token context, as a folder.
    model = gpt.GPT(gpt.GPTConfig(vocab_size=257, block_size=256, n_layer=1, n_head=2, n_embd=32))
    gpt.save_checkpoint(d / "byte-model", model, tokenizer=tok)
    return d


def classify_spec(files: Path, **kw) -> dict:
    spec = {
        "kind": "classify",
        "base": "preset:tiny",
        "tokenizer": str(files / "tok.json"),
        "data": str(files / "sms.tsv"),
        "method": "full",
        "max_steps": 4,
        "batch_size": 4,
        "eval_every": 2,
        "checkpoint_every": 2,
    }
    return {**spec, **kw}


def wait_for(pred, timeout: float = 60.0, interval: float = 0.02):
    end = time.time() + timeout
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


def exited(pid: int) -> bool:
    """Every thread of the process has finished dying, so its files (locks included) are
    closed. A process loses its command line, and its main thread turns zombie, before the
    last of its threads closes its files."""
    states = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return all(s in ("Z", "X") for s in states)


def is_worker_alive(pid: int | None, job_id: str) -> bool:
    """Whether `pid` is a live (not zombie) worker of `job_id`: its command line must name the
    worker module and the job, so a reused PID is not mistaken for the job."""
    try:
        if not pid or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
            return False
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return b"gpt.jobs.worker" in argv and job_id.encode() in argv


def assert_continuous(steps: list[dict], max_steps: int) -> None:
    assert [r["step"] for r in steps] == list(range(1, max_steps + 1))


def test_classify_job_end_to_end_then_limits(files, tmp_path):
    root = tmp_path / "jobs"
    with JobManager(root) as jobs:
        job_id = jobs.submit(classify_spec(files))
        status = jobs.wait(job_id, timeout=60)
        assert status.state == "succeeded", (status.error, (root / job_id / "log.txt").read_text())
        assert status.step == status.max_steps == 4 and status.progress == 1.0
        assert status.started <= status.finished
        # the worker's estimate says what its start took (Python, the model, the data): part
        # of the job's time that the estimate itself does not count
        assert 0 < status.estimate["start_s"] < status.finished - status.started
        metrics = jobs.metrics(job_id)
        assert_continuous(metrics["steps"], 4)
        assert [e["step"] for e in metrics["evals"]] == [2, 4]
        log = jobs.log(job_id)
        assert log.startswith("--- attempt 1") and "succeeded: 4 steps" in log
        with pytest.raises(JobError, match="no job 'nope'"):
            jobs.log("nope")
        assert "test_accuracy" in metrics["test"]
        (model,) = jobs.models()
        assert model.id == job_id and model.kind == "classify" and "test_f1" in model.metrics
        assert model.path == str(root / job_id / "out" / "model")
        clf = gpt.load_model(model.path)
        assert isinstance(clf, gpt.GPTClassifier)
        # a finished job's model is a base for the next job
        assert jobs.resolve_base(model.name).portable == model.path

    used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and f.parent != root)
    with JobManager(root, policy=JobPolicy(disk_quota=used // 2)) as jobs:
        with pytest.raises(JobError, match="disk quota exceeded"):
            jobs.submit(classify_spec(files))
        jobs.delete(job_id)
        assert jobs.list() == [] and not (root / job_id).exists()
        assert jobs.disk_usage() == 0


def test_instruct_job_end_to_end(files, tmp_path):
    spec = {
        "kind": "instruct",
        "base": str(files / "byte-model"),
        "data": str(files / "alpaca.json"),
        "method": "lora",
        "max_steps": 3,
        "batch_size": 4,
        "eval_every": 3,
        "eval_samples": 2,
        "max_new_tokens": 4,
    }
    with JobManager(tmp_path / "jobs") as jobs:
        job_id = jobs.submit(spec)
        status = jobs.wait(job_id, timeout=60)
        assert status.state == "succeeded", status.error
        (model,) = jobs.models()
        assert model.kind == "instruct" and "test_token_f1" in model.metrics
        lm = gpt.load_model(model.path)
        assert isinstance(lm, gpt.GPT) and lm.config.block_size == 256


def test_sigkill_then_restart_marks_interrupted_and_resume_redoes_one_interval(files, tmp_path):
    root, every, total = tmp_path / "jobs", 2, 40
    spec = classify_spec(files, max_steps=total, eval_every=100, checkpoint_every=every)
    jobs = JobManager(root)
    job_id = jobs.submit(spec)
    pid = wait_for(lambda: (s := jobs.get(job_id)).step >= 4 and s.pid)
    jobs.close()  # the app goes down ...
    os.kill(pid, signal.SIGKILL)  # ... and the job is killed with it
    wait_for(lambda: exited(pid))

    with JobManager(root) as jobs:  # the app restarts
        status = jobs.get(job_id)
        assert status.state == "interrupted", status
        assert "resume" in status.error
        done_before = max(r["step"] for r in jobs.metrics(job_id)["steps"])
        ckpt_step = trainstate.latest_valid(root / job_id / "out" / "checkpoints")[1]["step"]
        redone = done_before - ckpt_step
        print(f"\nkilled at step {done_before}, checkpoint {ckpt_step}: {redone} steps redone")
        assert 0 <= redone <= every
        jobs.resume(job_id)
        status = jobs.wait(job_id, timeout=60)
        assert status.state == "succeeded", status.error
        assert status.attempt == 2
        assert_continuous(jobs.metrics(job_id)["steps"], total)
        assert "resuming from step-" in (root / job_id / "log.txt").read_text()


def test_cancel_stops_a_running_job_and_keeps_a_checkpoint(files, tmp_path):
    root = tmp_path / "jobs"  # how fast cancel() returns: bench/bench_jobs.py
    with JobManager(root) as jobs:
        job_id = jobs.submit(classify_spec(files, max_steps=100_000, eval_every=10_000))
        pid = wait_for(lambda: (s := jobs.get(job_id)).step >= 2 and s.pid)
        status = jobs.cancel(job_id)
        assert status.state == "cancelled" and not is_worker_alive(pid, job_id)
        assert trainstate.list_checkpoints(root / job_id / "out" / "checkpoints")
        assert jobs.cancel(job_id).state == "cancelled"  # cancelling again is harmless


def test_queue_runs_jobs_one_after_the_other(files, tmp_path):
    with JobManager(tmp_path / "jobs", max_concurrent=1) as jobs:
        a = jobs.submit(classify_spec(files))
        b = jobs.submit(classify_spec(files))
        assert jobs.get(b).state == "queued"
        sa, sb = jobs.wait(a, timeout=60), jobs.wait(b, timeout=60)
        assert sa.state == sb.state == "succeeded"
        assert sa.finished <= sb.started
        assert [s.id for s in jobs.list()] == [b, a]
        # While a scheduler runs, it starts every job itself (not `a`'s worker), so that it
        # can also wait for each one: no zombie is left behind.
        root = tmp_path / "jobs"
        for job_id in (a, b):
            assert f"started by pid {os.getpid()}\n" in (root / job_id / "log.txt").read_text()
        wait_for(lambda: not any(Path(f"/proc/{s.pid}").exists() for s in (sa, sb)), timeout=10)


def test_queue_full_gives_a_clear_error(files, tmp_path):
    with JobManager(tmp_path / "jobs", 1, JobPolicy(max_queued=1)) as jobs:
        spec = classify_spec(files, max_steps=100_000)
        running = jobs.submit(spec)
        queued = jobs.submit(spec)
        with pytest.raises(JobError, match="queue is full"):
            jobs.submit(spec)
        assert jobs.cancel(queued).state == "cancelled"
        assert jobs.cancel(running).state == "cancelled"


BAD_FILES = {
    "no_tab.tsv": ("classify", "ham this line has no tab\n"),
    "label.tsv": ("classify", "ham\thello\nmaybe\tworld\n"),
    "binary.tsv": ("classify", b"\x00\xff\xfe\x00PK\x03\x04"),
    "empty.tsv": ("classify", ""),
    "columns.csv": ("classify", "category,message\nham,hello\n"),
    "no_output.json": ("instruct", json.dumps([{"instruction": "Say hi.", "input": ""}])),
    "not_json.json": ("instruct", "[{'instruction': 'x'"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_uploads_are_rejected_at_submit_with_the_parsers_message(files, tmp_path, name):
    from gpt.train.data import DataError, validate_file

    kind, content = BAD_FILES[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as parser:
        validate_file(kind, path)
    with JobManager(tmp_path / "jobs", background=False) as jobs:
        with pytest.raises(JobError) as e:
            jobs.submit(classify_spec(files, kind=kind, data=str(path)))
        assert str(e.value) == str(parser.value)
        assert jobs.list() == []
        assert [p for p in (tmp_path / "jobs").iterdir() if p.is_dir()] == []  # no job folder


@pytest.mark.parametrize(
    "change, message",
    [
        ({"base": "gpt3-huge"}, "unknown base model 'gpt3-huge'"),
        ({"base": "preset:enormous"}, "unknown preset 'enormous'"),
        ({"base": "job:nope"}, "no job 'nope'"),
        ({"learning_rate": 0.1}, "unknown run settings: learning_rate"),
        ({"method": "head", "kind": "instruct"}, "'head' only for the classify task"),
        ({"data": "/no/such/file.tsv"}, "neither 'bundled', an existing file"),
        ({"tokenizer": "/no/such/tok.json"}, "tokenizer '/no/such/tok.json' not found"),
        # the form's numbers, checked here for every caller: the field and its range
        ({"epochs": 50}, "epochs must be between 0.1 and 20, not 50"),
        ({"lr": "fast"}, "learning rate must be a number between 1e-6 and 0.01, not 'fast'; try"),
        ({"batch_size": 0}, "batch size must be between 1 and 64, not 0"),
        ({"batch_size": 2.5}, "batch size must be a whole number between 1 and 64, not 2.5"),
        ({"batch_size": int(1e308)}, "batch size must be between 1 and 64, not 1e\\+308$"),
        ({"eval_every": 20_000}, "evaluate every N steps must be between 1 and 10000"),
        ({"max_steps": -1}, "max steps must be between 0 and 100000, not -1; 0 lets the epochs"),
        ({"kind": "lm", "base": "starter-spam"}, "classify model: it does not fit a language-model"),
        ({"data": "alpaca"}, "data 'alpaca' does not fit a classifier job; choose one of: bundled"),
        ({"data": "upload"}, "data 'upload' needs the uploaded file"),
    ],
)
def test_bad_specs_are_rejected_at_submit(files, tmp_path, change, message):
    with (
        JobManager(tmp_path / "jobs", background=False) as jobs,
        pytest.raises(JobError, match=message.replace("(", r"\(")),
    ):
        jobs.submit(classify_spec(files, **change))


def test_a_file_too_small_to_hold_some_out_is_refused_at_submit(files, tmp_path):
    """Fewer than 20 examples: no job (it would train on all of them and test on none)."""
    (files / "tiny.tsv").write_text("ham\thi\nspam\tWIN now\nham\tok\n", encoding="utf-8")
    one = [{"instruction": "Say a.", "input": "", "output": "a"}]
    (files / "one.json").write_text(json.dumps(one), encoding="utf-8")
    with JobManager(tmp_path / "jobs", background=False) as jobs:
        with pytest.raises(JobError, match=r"tiny\.tsv has 3 examples; a classifier job needs "
                                           "at least 20"):  # fmt: skip
            jobs.submit(classify_spec(files, data=str(files / "tiny.tsv")))
        with pytest.raises(JobError, match=r"one\.json has 1 example; an instruction job"):
            jobs.submit(classify_spec(files, kind="instruct", data=str(files / "one.json")))
        assert jobs.list() == []


def test_a_split_with_nothing_held_out_is_refused_by_the_run(files):
    """The run's own check (the CLI reads files without the job's minimum)."""
    from gpt.lab.runs import RunSpec, load_run_data
    from gpt.train.data import DataError

    (files / "few.tsv").write_text("ham\thi\nspam\tWIN now\nham\tok\n", encoding="utf-8")
    spec = RunSpec(kind="classify", data=str(files / "few.tsv"))
    tok = gpt.Tokenizer.load(files / "tok.json")
    with pytest.raises(DataError, match=r"splits into train \d+, val 0, test \d+ examples"):
        load_run_data(spec, tok, 32)


def test_the_apps_policy_takes_only_what_the_form_offers(files, tmp_path):
    policy = JobPolicy(local_paths=False)  # the app's: no model folder or data file of the server
    spec = classify_spec(files, base="starter-spam", tokenizer=None)
    with JobManager(tmp_path / "jobs", policy=policy, background=False) as jobs:
        with pytest.raises(JobError, match="base model 'preset:tiny' does not fit a classifier"):
            jobs.submit({**spec, "base": "preset:tiny"})
        with pytest.raises(JobError, match=r"data '/.*sms\.tsv' does not fit a classifier job"):
            jobs.submit(spec)
        job_id = jobs.submit({**spec, "data": "upload"}, upload=str(files / "sms.tsv"))
        assert jobs.get(job_id).spec["data"] == str(jobs.job_dir(job_id) / "data" / "sms.tsv")
        jobs.delete(job_id)


def test_submissions_from_many_threads_get_distinct_ids_and_all_run(files, tmp_path):
    ids: list[str] = []
    errors: list[Exception] = []

    def submit():
        try:
            ids.append(jobs.submit(classify_spec(files, max_steps=1, eval_every=1)))
        except Exception as e:  # pragma: no cover (reported below)
            errors.append(e)

    with JobManager(tmp_path / "jobs", 3, JobPolicy(max_queued=16)) as jobs:
        threads = [threading.Thread(target=submit) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(set(ids)) == 6
        finals = [jobs.wait(i, timeout=90) for i in ids]
        assert [s.state for s in finals] == ["succeeded"] * 6, [
            (s.state, s.error, s.note) for s in finals if s.state != "succeeded"
        ]
        running_at_once = max(
            sum(s.started <= t.started < s.finished for s in jobs.list()) for t in jobs.list()
        )
        assert running_at_once <= 3


def test_a_worker_that_fails_outside_training_records_failed_itself(files, tmp_path):
    """A worker started by another process (here: by hand) that dies of an error outside the
    training loop must say `failed` and why; the reaper could only call it `interrupted`."""
    root = tmp_path / "jobs"
    with JobManager(root, background=False) as jobs:
        job_id = jobs.submit(classify_spec(files, max_steps=100_000))
        jobs.cancel(job_id)
        conn = connect(root)
        conn.execute("UPDATE jobs SET state = 'running', attempt = 9, pid = NULL WHERE id = ?",
                     (job_id,))  # fmt: skip
        conn.close()
        env = {**os.environ, "GPT2LAB_JOB_THREADS": "many", "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "gpt.jobs.worker", str(root), job_id, "9"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        status = jobs.get(job_id)
        assert status.state == "failed", (status.state, status.error)
        assert status.error.startswith("ValueError: invalid literal for int()"), status.error


def _set_row(root: Path, job_id: str, **values) -> None:
    conn = connect(root)
    sets = ", ".join(f"{k} = ?" for k in values)
    conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))
    conn.close()


def test_a_claimed_job_whose_manager_died_before_spawning_is_interrupted_at_once(files, tmp_path):
    root = tmp_path / "jobs"
    with JobManager(root, background=False) as jobs:
        job_id = jobs.submit(classify_spec(files, max_steps=100_000))
        jobs.cancel(job_id)
    # as a manager leaves it when it dies between claiming the job and starting its worker
    _set_row(
        root, job_id, state="running", attempt=2, pid=None, started=time.time(), cancel_requested=0
    )
    with JobManager(root, background=False) as jobs:
        status = jobs.get(job_id)
        assert status.state == "interrupted" and "process was gone" in status.error


def test_a_live_worker_is_judged_by_its_lock_not_by_its_pid(files, tmp_path):
    """Whatever makes a live worker's PID look wrong to another manager (here: a PID that is
    not a worker), that manager must not mark the job interrupted while the worker runs."""
    root = tmp_path / "jobs"
    with JobManager(root) as owner:
        job_id = owner.submit(classify_spec(files, max_steps=100_000, eval_every=10_000))
        pid = wait_for(lambda: (s := owner.get(job_id)).step >= 2 and s.pid)
        _set_row(root, job_id, pid=os.getppid())
        with JobManager(root, background=False) as other:
            assert other.get(job_id).state == "running"
        _set_row(root, job_id, pid=pid)
        assert owner.cancel(job_id).state == "cancelled"
        assert not is_worker_alive(pid, job_id)


def test_retry_db_retries_busy_errors_only():
    def failing(message: str, times: int):
        calls = []

        def fn():
            calls.append(1)
            if len(calls) <= times:
                raise sqlite3.OperationalError(message)
            return len(calls)

        return fn

    assert retry_db(failing("database is locked", 2)) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_db(failing("no such table: x", 1))  # not transient: raised at once
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_db(failing("database is locked", 10**6), timeout=0.1)


def test_corrupted_checkpoint_falls_back_or_fails_clearly(files, tmp_path):
    root = tmp_path / "jobs"
    with JobManager(root) as jobs:
        job_id = jobs.submit(classify_spec(files, max_steps=100_000, eval_every=10_000))
        wait_for(lambda: jobs.get(job_id).step >= 4)
        jobs.cancel(job_id)
        ckpts = trainstate.list_checkpoints(root / job_id / "out" / "checkpoints")
        assert len(ckpts) == 2
        older, newer = (c / "model.safetensors" for c in ckpts)
        saved = older.read_bytes()
        for f in (older, newer):
            with open(f, "r+b") as fh:
                fh.seek(200)
                fh.write(b"\xde\xad\xbe\xef" * 8)
        with pytest.raises(JobError, match="no valid training checkpoint.*checksum mismatch"):
            jobs.resume(job_id)
        status = jobs.get(job_id)
        assert status.state == "cancelled" and "cannot resume" in status.note

        older.write_bytes(saved)  # one valid checkpoint left: resume falls back to it
        jobs.resume(job_id)
        assert f"resuming from {ckpts[0].name}" in jobs.get(job_id).note
        assert "corrupted" in jobs.get(job_id).note
        wait_for(lambda: jobs.get(job_id).step > int(ckpts[1].name[5:]) + 1)
        jobs.cancel(job_id)
        steps = [r["step"] for r in jobs.metrics(job_id)["steps"]]
        assert steps == list(range(1, len(steps) + 1))
        assert "corrupted" in (root / job_id / "log.txt").read_text()


def test_cli_submit_wait_list_show(files, tmp_path, capsys):
    ap = argparse.ArgumentParser()
    register(ap.add_subparsers(dest="command", required=True))
    root = str(tmp_path / "jobs")

    def cli(*argv):
        args = ap.parse_args(["jobs", *argv])
        args.func(args)
        return capsys.readouterr()

    spec = classify_spec(files)
    out = cli(
        "submit", "--root", root, "--kind", "classify", "--base", "preset:tiny",
        "--tokenizer", spec["tokenizer"], "--data", spec["data"], "--max-steps", "3",
        "--batch-size", "4", "--set", "eval_every=3", "--wait",
    )  # fmt: skip
    job_id = out.out.split()[0]
    assert "succeeded" in out.out
    assert job_id in cli("list", "--root", root).out
    shown = json.loads(cli("show", "--root", root, job_id, "--json").out)
    assert shown["state"] == "succeeded" and shown["model_path"]
    assert "    succeeded: 3 steps" in cli("show", "--root", root, job_id, "--log").out
    with pytest.raises(SystemExit) as e:
        cli(
            "submit",
            "--root",
            root,
            "--kind",
            "classify",
            "--base",
            "preset:tiny",
            "--data",
            "/nope.tsv",
        )
    assert e.value.code == 2
    assert "error: data '/nope.tsv'" in capsys.readouterr().err
