"""The job manager: submit a `RunSpec`, watch it, cancel it, resume it, use its model.

Training takes minutes to hours on a CPU, so it never runs inside a web request. A
`JobManager` keeps a queue in `root/jobs.db` (`gpt.jobs.store`) and runs each job in its own
OS process (`gpt.jobs.worker`), so a crash, an out-of-memory kill or a `kill -9` of a job never
takes the app down, and a restart of the app never loses a job:

    with JobManager("jobs") as jobs:
        job_id = jobs.submit({"kind": "classify", "base": "starter", "data": "bundled"})
        jobs.get(job_id).progress          # poll a plain JobStatus
        jobs.cancel(job_id)                # stops within ~2 s, keeps the last checkpoint
        jobs.resume(job_id)                # continues from that checkpoint
        jobs.models()                      # finished jobs' models, for gpt.load_model

This module owns what a job may be asked to do and by whom: validating a spec (its base model,
data, tokenizer), the limits (queue, per-visitor, disk budget with pruning), ownership in
multi-user mode, and scheduling: claiming queued jobs, starting their workers
(`spawn_worker`), and recording the end of an attempt whose worker died without reporting
(`end_attempt`). The states and their allowed moves live in `gpt.jobs.store`.

A job whose process died without reporting (killed by a signal, or gone when a new manager
starts) is `interrupted`; `resume` continues cancelled, interrupted and failed jobs from their
newest valid checkpoint, so at most one checkpoint interval of training is redone, and the
metric history stays continuous (rows past the checkpoint are dropped, rows up to it are
restored from it).

Several managers (the app, the CLI) may share one root: a job is claimed inside one SQLite write
transaction, so the concurrency limit holds across processes. A manager with a scheduler thread
(the app's) starts every queued job as its own child, and waits for it; with none running (say,
only the CLI), a finished worker starts the next queued job itself (`start_queued`), so a
queue always drains.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gpt.checkpoint import CheckpointError
from gpt.jobs import store
from gpt.jobs.store import (
    LOCK_FD_ENV,
    LOCK_NAME,
    LOG_NAME,
    RESUMABLE,
    THREADS_ENV,
    WORKER_MODULE,
    Claim,
    connect,
    dir_size,
    finish_attempt,
    jobs_usage,
    log_tail,
    transaction,
    transition,
    worker_holds_lock,
)
from gpt.lab.names import EXPECTED, ModelNameError, resolve
from gpt.lab.runs import RunSpec
from gpt.train import state as trainstate

REPO = Path(__file__).resolve().parents[2]
CANCEL_GRACE_S = 1.5  # SIGTERM, then SIGKILL after this long
ANONYMOUS = "anon:"  # owners without a Hugging Face account: their old jobs are pruned first
log = logging.getLogger("gpt2lab.jobs")
_ACTIVE_SQL = "(" + ", ".join(f"'{state}'" for state in store.ACTIVE) + ")"  # SQL: ('queued', ...)
T = TypeVar("T")


class JobError(ValueError):
    """A job request that cannot be done (bad spec or data, unknown job, a limit reached)."""


class NotOwnerError(JobError):
    """In multi-user mode: a visitor tried to change a job that another visitor started."""


@dataclass(frozen=True)
class JobStatus:
    """What a page or the CLI polls: one job's state and progress, plain values only."""

    id: str
    kind: str
    base: str
    method: str
    data: str
    state: str
    step: int
    max_steps: int | None
    progress: float  # 0..1
    loss: float | None
    eta_s: float | None
    created: float
    started: float | None
    finished: float | None
    error: str | None
    note: str | None  # e.g. a corrupted checkpoint skipped on resume
    model_path: str | None  # set once the job succeeded
    pid: int | None
    attempt: int  # 1 for the first run, +1 per resume
    spec: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, Any] | None = None  # `JobManager.estimate`'s record, once made
    owner: str | None = None  # who started it (multi-user mode); None: nobody in particular
    stage: dict[str, Any] | None = None  # a running job past training: {"stage", "done", "total"}

    @property
    def active(self) -> bool:
        return self.state in store.ACTIVE


@dataclass(frozen=True)
class JobModel:
    """A finished job's model: `path` loads with `gpt.load_model`; `base` names it as `job:<id>`."""

    id: str
    kind: str
    base: str
    method: str
    path: str
    finished: float | None
    metrics: dict[str, Any]  # the test metrics (test_loss, test_accuracy, ...)

    @property
    def name(self) -> str:
        return f"job:{self.id}"


# --- disk budget and what a visitor sees ----------------------------------------------------------


def expected_bytes(spec: Mapping[str, Any]) -> int:
    """How much disk a job should need at most: its final model plus the two training
    checkpoints it keeps, each the trained weights and (full fine-tuning) Adam's two moments.
    Weights are measured from the base model's folder, or counted from a preset's config.

    >>> expected_bytes({"base": "preset:tiny", "method": "full"}) > 0
    True
    """
    base, method = str(spec.get("base", "")), spec.get("method", "full")
    try:
        ref = resolve(base, weights=False)  # the config is enough: no download needed
    except CheckpointError:
        return 0
    if ref.kind in ("preset", "gpt2"):  # counted: a new model, or one maybe not downloaded yet
        weights = ref.config.n_params() * 4
    else:
        weights = sum(p.stat().st_size for p in ref.folder.glob("*.safetensors"))
    per_checkpoint = weights * (3 if method == "full" else 1.2)  # adapters' moments are small
    return int(weights + 2 * per_checkpoint)


_ABS_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"(),:;]+")
_FRAME = re.compile(r"^\s+(File \"|\S)")  # a traceback's frame line or its source line


def scrub(text: str, job_dir: Path | str | None = None) -> str:
    r"""`text` fit to show a visitor: paths inside the job folder made relative to it, every
    other absolute path cut to its file name, traceback frames dropped (the exception's own
    line stays). The whole text stays in the job's log on the server.

    >>> print(scrub("no /srv/jobs/j1/data/up.tsv (see /srv/gpt/data.py)", "/srv/jobs/j1"))
    no data/up.tsv (see …/data.py)
    >>> print(scrub("Traceback (most recent call last):\n  File \"/a/b.py\", line 3, in f\n"
    ...             "    x()\nValueError: bad https://h/x"))
    ValueError: bad https://h/x
    """
    if job_dir is not None:
        folder = str(job_dir).rstrip("/\\")
        text = text.replace(folder + os.sep, "").replace(folder, ".")
    lines, in_tb = [], False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_tb = True
            continue
        if in_tb and _FRAME.match(line):
            continue
        in_tb = False
        lines.append(line)
    text = "\n".join(lines)
    return _ABS_PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


# --- the manager --------------------------------------------------------------------------------


class JobManager:
    """Queue, run, watch, cancel and resume training jobs stored under `root_dir`.

    Args:
        root_dir: where `jobs.db` and the job folders live.
        max_concurrent: jobs running at once (1 suits a CPU: a job uses every core).
        max_queued: jobs waiting at once; a submit beyond it raises JobError.
        disk_quota_bytes: total size of the job folders above which submit and resume raise
            JobError, and a running job stops at its next checkpoint (None: no limit).
        background: run a scheduler thread that starts queued jobs and reaps finished ones
            (without it, every public method does that work itself via `poll()`).
        poll_interval: seconds between the scheduler thread's rounds.
        multiuser: every job must have an owner, and only its owner (or an admin) may
            cancel, resume or delete it; off, anyone may (one person's machine).
        max_active_per_owner: queued-or-running jobs one owner may have at once (None: no
            limit beyond `max_queued`); counted only for jobs that have an owner.

    In multi-user mode the commands take the acting visitor (`actor`, an owner string such as
    `hf:alice` or `anon:3f2a...`) and `admin=True` for someone holding the admin token:

    >>> import tempfile
    >>> jobs = JobManager(tempfile.mkdtemp(), multiuser=True, background=False)
    >>> jobs.authorize({"id": "j1", "owner": "anon:a"}, "anon:b", "cancel")
    Traceback (most recent call last):
    ...
    gpt.jobs.manager.NotOwnerError: job j1 belongs to another visitor; only they (or the admin) can cancel it
    >>> jobs.authorize({"id": "j1", "owner": "anon:a"}, "anon:a", "cancel")
    >>> jobs.close()
    """

    def __init__(
        self,
        root_dir: str | Path,
        max_concurrent: int = 1,
        max_queued: int = 20,
        disk_quota_bytes: int | None = None,
        *,
        background: bool = True,
        poll_interval: float = 0.2,
        multiuser: bool = False,
        max_active_per_owner: int | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if max_queued < 0:
            raise ValueError(f"max_queued must be >= 0, got {max_queued}")
        self.root = Path(root_dir).resolve()
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.disk_quota_bytes = disk_quota_bytes
        self.poll_interval = poll_interval
        self.multiuser = multiuser
        self.max_active_per_owner = max_active_per_owner
        self.last_pruned: list[str] = []  # jobs the last `make_room` removed
        self._conn = connect(self.root)
        self._lock = threading.RLock()
        self._procs: dict[str, tuple[subprocess.Popen, int]] = {}
        self._closed = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.last_error: str | None = None  # the scheduler's last failed round, if any
        store.set_max_concurrent(self._conn, max_concurrent)
        self.poll()  # recovery: jobs whose process died while no manager watched
        self._thread = None
        self._scheduler_fd = None
        if background:  # the lock tells finishing workers to leave the queue to us
            self._scheduler_fd = store.hold_scheduler_lock(self.root)
            self._thread = threading.Thread(target=self._loop, name="job-scheduler", daemon=True)
            self._thread.start()

    # -- lifecycle --

    def close(self) -> None:
        """Stop the scheduler thread. Running jobs go on in their own processes; a later
        manager on the same root picks them up (or marks them interrupted if they died)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        store.close_lock(self._scheduler_fd)
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.poll()
                self.last_error = None
            except Exception as e:  # a locked or vanished DB must not kill the scheduler
                error = f"{type(e).__name__}: {e}"
                if error != self.last_error:  # logged once per new error, not every round
                    log.warning("job scheduler: %s", error)
                self.last_error = error

    # -- database helpers --

    def _execute(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._db(lambda conn: conn.execute(sql, params).fetchall())

    def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(conn, *args, **kwargs)` on our connection, under our lock: e.g.
        `self._db(store.update, job_id, note="...")`."""
        with self._lock:
            if self._closed:
                raise JobError("the job manager is closed")
            return fn(self._conn, *args, **kwargs)

    def _row(self, job_id: str) -> sqlite3.Row:
        rows = self._execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobError(f"no job {job_id!r}")  # the folder is the server's business
        return rows[0]

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def model_dir(self, job_id: str) -> Path:
        return self.root / job_id / "out" / "model"

    def _status(self, row: sqlite3.Row) -> JobStatus:
        model = self.model_dir(row["id"])
        done = row["state"] == "succeeded" and (model / "config.json").is_file()
        max_steps = row["max_steps"]
        if row["state"] == "succeeded":
            progress = 1.0
        else:
            progress = min(1.0, row["step"] / max_steps) if max_steps else 0.0
        return JobStatus(
            id=row["id"],
            kind=row["kind"],
            base=row["base"],
            method=row["method"],
            data=row["data"],
            state=row["state"],
            step=row["step"],
            max_steps=max_steps,
            progress=progress,
            loss=row["loss"],
            eta_s=row["eta_s"] if row["state"] == "running" else None,
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
            error=row["error"],
            note=row["note"],
            model_path=str(model) if done else None,
            pid=row["pid"],
            attempt=row["attempt"],
            spec=json.loads(row["spec"]),
            estimate=store.read_estimate(self.job_dir(row["id"])),
            owner=row["owner"],
            stage=_stage(row),
        )

    # -- queries --

    def get(self, job_id: str) -> JobStatus:
        self.poll()
        return self._status(self._row(job_id))

    def list(self) -> list[JobStatus]:
        """Every job, newest first."""
        self.poll()
        rows = self._execute("SELECT * FROM jobs ORDER BY created DESC, rowid DESC")
        return [self._status(r) for r in rows]

    def metrics(self, job_id: str) -> dict[str, Any]:
        """The job's full history: `steps` (step, loss, lr, ...), `evals` (val metrics),
        `checkpoints` (steps) and `test` (final test metrics, once succeeded)."""
        self._row(job_id)
        rows = self._execute(
            "SELECT kind, step, data FROM metrics WHERE job_id = ? ORDER BY step", (job_id,)
        )
        out: dict[str, Any] = {"steps": [], "evals": [], "checkpoints": [], "test": {}}
        for r in rows:
            data = json.loads(r["data"])
            if r["kind"] == "step":
                out["steps"].append(data)
            elif r["kind"] == "eval":
                out["evals"].append(data)
            elif r["kind"] == "checkpoint":
                out["checkpoints"].append(r["step"])
            elif r["kind"] == "test":
                out["test"] = data
        return out

    def estimate(self, job_id: str) -> dict[str, Any]:
        """Estimate how long the job will train and evaluate on this machine
        (`gpt.train.estimate.estimate_run`: its data counted, a few steps of its model timed), keep
        it in the job folder for `JobStatus.estimate`, and return it: `seconds`, `text`
        ("about 4 min on this machine"), `busy` (jobs running while it was measured)."""
        from gpt.train.estimate import estimate_run

        row = self._row(job_id)
        busy = len(
            self._execute("SELECT id FROM jobs WHERE state = 'running' AND id != ?", (job_id,))
        )
        est = estimate_run(RunSpec.from_dict(json.loads(row["spec"])))
        return store.write_estimate(self.job_dir(job_id), est.seconds, est.describe(), busy)

    def log(self, job_id: str, lines: int = 40) -> str:
        """The last `lines` lines of the job's log: who started each attempt, what it trains,
        resumes, warnings, tracebacks and the final result."""
        self._row(job_id)
        return log_tail(self.job_dir(job_id) / LOG_NAME, lines)

    def models(self) -> list[JobModel]:
        """The models of succeeded jobs, newest first."""
        out = []
        for s in self.list():
            if s.state != "succeeded" or s.model_path is None:
                continue
            test = self.metrics(s.id)["test"]
            test = {k: v for k, v in test.items() if k not in ("test_samples", "base")}
            out.append(JobModel(s.id, s.kind, s.base, s.method, s.model_path, s.finished, test))
        return out

    def has_checkpoint(self, job_id: str) -> bool:
        """Whether the job has a training checkpoint to resume from (else resume starts over)."""
        return bool(trainstate.list_checkpoints(self.job_dir(job_id) / "out" / "checkpoints"))

    def disk_usage(self) -> int:
        return jobs_usage(self.root)

    # -- validation --

    def _resolve_base(self, base: str) -> str:
        """The `RunSpec.base` to run for a spec's base (`gpt.lab.names.resolve`), or JobError when
        it does not exist: a `job:<id>` becomes its model folder, a folder its absolute path."""
        try:
            return resolve(base, jobs=self).portable
        except ModelNameError as e:
            if e.reason == "unknown":
                raise JobError(f"unknown base model {base!r}: expected {EXPECTED}") from e
            raise JobError(str(e)) from e
        except CheckpointError as e:  # a folder whose config.json is broken
            raise JobError(f"base model {base!r}: {e}") from e

    def _check_data(self, kind: str, data: str) -> Path | None:
        """The uploaded file to copy into the job (None for bundled data or an online source);
        the file is parsed now, so a bad one fails with the parser's message."""
        from gpt.lab.sources import SOURCES, availability
        from gpt.train.data import DataError, validate_file

        if data in SOURCES:
            why = availability(data)  # the network check found it off, and it is not cached
            if why is not None:
                raise JobError(f"data {data!r} {why}; use bundled data or a file instead")
            return None
        if data == "bundled" or data.startswith(("http://", "https://")):
            return None
        path = Path(data).expanduser()
        if not path.is_file():
            raise JobError(
                f"data {data!r} is neither 'bundled', an existing file, a known source "
                f"({', '.join(SOURCES)}) nor an http(s) URL"
            )
        try:
            validate_file(kind, path)
        except DataError as e:
            raise JobError(str(e)) from e
        except OSError as e:
            raise JobError(f"cannot read data file {path}: {e}") from e
        return path.resolve()

    def make_room(self, extra: int = 0, keep: str | None = None) -> list[str]:
        """Free disk for `extra` more bytes within the budget: delete finished jobs of anonymous
        visitors, oldest first, those without a final model (failed, cancelled, interrupted)
        before those with one. Signed-in visitors' jobs, jobs without an owner and active jobs
        are never pruned, nor `keep` (a job being resumed). Each removal is logged; returns the
        removed ids (`last_pruned`).

        >>> import tempfile
        >>> JobManager(tempfile.mkdtemp(), disk_quota_bytes=10**6, background=False).make_room()
        []
        """
        pruned: list[str] = []
        if self.disk_quota_bytes is None:
            return pruned
        used = self.disk_usage() + self.reserved_bytes()
        if used + extra <= self.disk_quota_bytes:
            return pruned
        rows = self._execute(
            "SELECT id, state, owner FROM jobs WHERE owner LIKE ? AND id != ? AND state NOT IN "
            f"{_ACTIVE_SQL} ORDER BY state = 'succeeded', created, rowid",
            (ANONYMOUS + "%", keep or ""),
        )
        for row in rows:
            if used + extra <= self.disk_quota_bytes:
                break
            size = dir_size(self.job_dir(row["id"]))
            self._remove(row["id"])
            used -= size
            pruned.append(row["id"])
            log.warning(
                "disk budget: pruned job %s (%s, %s, %.1f MB) to make room; jobs use %.1f MB "
                "of %.1f MB",
                row["id"],
                row["state"],
                row["owner"],
                size / 1e6,
                used / 1e6,
                self.disk_quota_bytes / 1e6,
            )
        self.last_pruned = pruned
        return pruned

    def reserved_bytes(self) -> int:
        """Disk the queued and running jobs should still write (`expected_bytes` less what
        each has written), so a submit leaves room for the jobs already accepted."""
        rows = self._execute(f"SELECT id, spec FROM jobs WHERE state IN {_ACTIVE_SQL}")
        return sum(
            max(0, expected_bytes(json.loads(r["spec"])) - dir_size(self.job_dir(r["id"])))
            for r in rows
        )

    def _remove(self, job_id: str) -> None:
        with self._lock:
            store.delete_job(self._conn, job_id)
            self._procs.pop(job_id, None)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def _check_quota(self, extra: int = 0, keep: str | None = None) -> None:
        if self.disk_quota_bytes is None:
            return
        self.make_room(extra, keep)
        used = self.disk_usage() + self.reserved_bytes()
        if used + extra > self.disk_quota_bytes:
            raise JobError(
                f"disk quota exceeded: job outputs use (or running jobs will need) {used:,} bytes"
                + (f" (+{extra:,} for this job's data)" if extra else "")
                + f" of the {self.disk_quota_bytes:,} allowed, even after pruning old anonymous "
                "jobs; delete finished jobs to make room"
            )

    def authorize(
        self, row: Mapping[str, Any], actor: str | None, verb: str, admin: bool = False
    ) -> None:
        """Raise NotOwnerError unless `actor` may `verb` the job `row` (a jobs row or a dict
        with `id` and `owner`): always in single-user mode or for an admin; in multi-user mode
        only its owner. A job without an owner (made before multi-user mode) is the admin's."""
        if not self.multiuser or admin:
            return
        if actor is None or row["owner"] is None or actor != row["owner"]:
            raise NotOwnerError(
                f"job {row['id']} belongs to another visitor; only they (or the admin) can "
                f"{verb} it"
            )

    def _check_owner_limit(self, conn: sqlite3.Connection, owner: str | None) -> None:
        if owner is None or self.max_active_per_owner is None:
            return
        (active,) = conn.execute(
            f"SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN {_ACTIVE_SQL}",
            (owner,),
        ).fetchone()
        if active >= self.max_active_per_owner:
            n = self.max_active_per_owner
            raise JobError(
                f"you already have {active} job{'s' if active != 1 else ''} queued or running "
                f"(at most {n} per visitor here); wait for it to finish or cancel it"
            )

    def _check_queue(self, conn: sqlite3.Connection) -> None:
        (queued,) = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()
        if queued >= self.max_queued:
            raise JobError(
                f"the job queue is full ({queued} queued, limit {self.max_queued}); wait for a "
                "job to start or cancel one"
            )

    # -- commands --

    def submit(self, spec: Mapping[str, Any] | RunSpec, owner: str | None = None) -> str:
        """Validate `spec` (a dict of RunSpec fields, or a RunSpec) and queue it; return its id.
        `owner` is recorded with the job (required in multi-user mode).

        Raises JobError for an unknown key, a bad value, a missing base model, a data file
        that does not parse, a full queue, an owner's limit or an exceeded disk quota.
        """
        if self.multiuser and not owner:
            raise JobError("every job needs an owner here (multi-user mode); none was given")
        d = spec.to_dict() if isinstance(spec, RunSpec) else dict(spec)
        label = str(d.get("base", "starter"))
        try:
            run_spec = RunSpec.from_dict(d)
        except (TypeError, ValueError) as e:
            raise JobError(f"invalid job spec: {e}") from e
        base = self._resolve_base(label)
        tokenizer = run_spec.tokenizer
        if tokenizer not in (None, "gpt2"):
            tok_path = Path(tokenizer).expanduser()
            if not tok_path.exists():
                raise JobError(f"tokenizer {tokenizer!r} not found")
            tokenizer = str(tok_path.resolve())
        upload = self._check_data(run_spec.kind, run_spec.data)
        self.last_pruned = []
        need = expected_bytes({"base": base, "method": run_spec.method})
        self._check_quota(extra=need + (upload.stat().st_size if upload else 0))
        with self._lock:
            self._check_queue(self._conn)
            self._check_owner_limit(self._conn, owner)

        for _ in range(100):
            job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            folder = self.job_dir(job_id)
            try:
                folder.mkdir(parents=True)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover
            raise JobError("could not allocate a job id")
        try:
            data = run_spec.data
            if upload is not None:
                (folder / "data").mkdir()
                data = str(shutil.copy2(upload, folder / "data" / upload.name))
            changes = {"base": base, "data": data, "tokenizer": tokenizer}
            final = RunSpec.from_dict({**run_spec.to_dict(), **changes})
            with self._lock, transaction(self._conn) as conn:
                self._check_queue(conn)
                self._check_owner_limit(conn, owner)
                store.add_job(
                    conn,
                    job_id,
                    kind=final.kind,
                    base=label,
                    method=final.method,
                    data=run_spec.data,
                    spec=json.dumps(final.to_dict()),
                    max_steps=final.max_steps,
                    disk_quota=self.disk_quota_bytes,
                    owner=owner,
                )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.poll()
        return job_id

    def cancel(self, job_id: str, actor: str | None = None, admin: bool = False) -> JobStatus:
        """Cancel a queued job, or stop a running one (SIGTERM: it checkpoints at the end of its
        step; SIGKILL after CANCEL_GRACE_S). Returns within about 2 seconds. In multi-user mode
        only its owner (`actor`) or an admin may; anyone else gets NotOwnerError."""
        row = self._row(job_id)
        self.authorize(row, actor, "cancel", admin)
        if row["state"] == "queued":
            self._db(transition, job_id, "cancelled", expect="queued")
            row = self._row(job_id)
        if row["state"] != "running":
            if row["state"] == "cancelled":
                return self._status(row)
            raise JobError(f"job {job_id} is {row['state']}; only queued or running jobs cancel")
        self._db(store.update, job_id, cancel_requested=1)
        deadline = time.time() + 1.0
        while row["pid"] is None and time.time() < deadline:  # claimed, not yet spawned
            time.sleep(0.02)
            row = self._row(job_id)
        pid, attempt = row["pid"], row["attempt"]
        if pid is not None and self._alive(job_id, pid):
            self._signal(pid, signal.SIGTERM)
            end = time.time() + CANCEL_GRACE_S
            while time.time() < end and self._alive(job_id, pid):
                time.sleep(0.02)
            if self._alive(job_id, pid):
                self._signal(pid, signal.SIGKILL, group=True)
                end = time.time() + 0.4
                while time.time() < end and self._alive(job_id, pid):
                    time.sleep(0.01)
        self._finish(job_id, attempt, "cancelled", None)
        self.poll()
        return self._status(self._row(job_id))

    def resume(self, job_id: str, actor: str | None = None, admin: bool = False) -> str:
        """Queue a cancelled, interrupted or failed job again, to continue from its newest valid
        checkpoint (or from the start when it has none). Raises JobError when every checkpoint
        is corrupted, or a limit is reached; NotOwnerError as `cancel`."""
        row = self._row(job_id)
        self.authorize(row, actor, "resume", admin)
        if row["state"] not in RESUMABLE:
            raise JobError(
                f"job {job_id} is {row['state']}; only {', '.join(RESUMABLE)} jobs resume"
            )
        self._check_quota(keep=job_id)
        ckpts = self.job_dir(job_id) / "out" / "checkpoints"
        note = None
        if trainstate.list_checkpoints(ckpts):
            try:
                folder, _, problems = trainstate.latest_valid(ckpts)
            except trainstate.TrainStateError as e:
                msg = f"cannot resume: {e}"
                self._db(store.update, job_id, note=msg)
                raise JobError(f"job {job_id}: {msg}") from e
            if problems:
                note = f"skipped {'; '.join(problems)}; resuming from {folder.name}"
        else:
            note = "no checkpoint yet: starting over"
        with self._lock, transaction(self._conn) as conn:
            self._check_queue(conn)
            self._check_owner_limit(conn, row["owner"])
            moved = transition(
                conn,
                job_id,
                "queued",
                expect=row["state"],
                resume=1,
                note=note,
                disk_quota=self.disk_quota_bytes,
            )
        if not moved:
            raise JobError(f"job {job_id} changed state meanwhile; try again")
        self.poll()
        return job_id

    def delete(self, job_id: str, actor: str | None = None, admin: bool = False) -> None:
        """Remove a job, its files and its history (a running job is cancelled first).
        NotOwnerError as `cancel`."""
        row = self._row(job_id)
        self.authorize(row, actor, "delete", admin)
        if row["state"] in store.ACTIVE:
            self.cancel(job_id, actor, admin)
        self._remove(job_id)

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 0.1) -> JobStatus:
        """Block until the job leaves queued/running (or `timeout` seconds pass)."""
        end = None if timeout is None else time.time() + timeout
        while True:
            status = self.get(job_id)
            if not status.active or (end is not None and time.time() > end):
                return status
            time.sleep(interval)

    # -- scheduling --

    def poll(self) -> None:
        """Reap finished processes and start queued jobs while slots are free."""
        if self._closed:
            return
        with self._lock:
            self._reap()
            while self._start_next():
                pass

    def _alive(self, job_id: str, pid: int | None) -> bool:
        """Whether the job's worker (or the manager spawning it) is alive: our own child says
        so itself; for any other process, the job's lock does."""
        owned = self._procs.get(job_id)
        if owned is not None and owned[0].pid == pid:
            return owned[0].poll() is None
        return worker_holds_lock(self.job_dir(job_id) / LOCK_NAME)

    @staticmethod
    def _signal(pid: int, sig: int, group: bool = False) -> None:
        try:
            if group:  # the worker leads its own session; take any child with it
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap(self) -> None:
        rows = self._conn.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall()
        running = {row["id"]: row["attempt"] for row in rows}
        for job_id, (proc, attempt) in list(self._procs.items()):
            # A worker that reported its own end is our child still: wait for it, or it
            # stays a zombie for as long as this manager lives.
            if running.get(job_id) != attempt and proc.poll() is not None:
                del self._procs[job_id]
        for row in rows:
            job_id, attempt = row["id"], row["attempt"]
            owned = self._procs.get(job_id)
            if owned is not None and owned[1] == attempt:
                rc = owned[0].poll()
                if rc is None:
                    continue
                del self._procs[job_id]
            elif self._alive(job_id, row["pid"]):
                continue
            else:
                rc = None  # not our child: its exit code is unknown
            self._finish(job_id, attempt, None, rc)

    def _finish(self, job_id: str, attempt: int, state: str | None, rc: int | None) -> None:
        """Record the end of a job whose worker did not (it died, or was killed)."""
        self._db(end_attempt, self.root, job_id, attempt, state, rc)

    def _start_next(self) -> bool:
        """Claim the next queued job and start its worker as our child; False when no slot or
        no job is free."""
        claim = store.claim_next(self._conn, self.root, self.max_concurrent)
        if claim is None:
            return False
        proc = launch(self._conn, self.root, claim, self.max_concurrent)
        if proc is not None:
            self._procs[claim.job_id] = (proc, claim.attempt)
        return True


# --- starting workers and ending their attempts --------------------------------------------------


def end_attempt(
    conn: sqlite3.Connection,
    root: Path,
    job_id: str,
    attempt: int,
    state: str | None = None,
    rc: int | None = None,
) -> bool:
    """Record the end of an attempt whose worker did not report it: in `state` when given
    (`cancelled`), else judged from what is known: a cancel request, the worker's exit status
    `rc` (None: not our child, unknown) and its log. False when the attempt is not running any
    more (the worker reported its own end, or it was resumed meanwhile)."""
    row = store.job_row(conn, job_id)
    if row is None or row["state"] != "running" or row["attempt"] != attempt:
        return False
    log = root / job_id / LOG_NAME
    if state is None:
        if row["cancel_requested"]:
            state, error = "cancelled", None
        elif rc is not None and rc > 0:
            state = "failed"
            error = f"worker exited with status {rc}:\n{log_tail(log)}".strip()
        elif rc is not None and rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
            state = "interrupted"
            error = (
                f"worker killed by {name} (out of memory, or killed by hand); resume "
                "continues from its last checkpoint"
            )
        elif rc == 0:
            state, error = "failed", f"worker exited without reporting:\n{log_tail(log)}"
        else:
            state = "interrupted"
            error = (
                "the job's process was gone (the app, the machine or the job was stopped); "
                f"resume continues from its last checkpoint\n{log_tail(log)}"
            ).strip()
    else:
        error = None
    return finish_attempt(conn, job_id, attempt, state, error)


def spawn_worker(
    root: Path, job_id: str, attempt: int, lock: int, threads: int
) -> subprocess.Popen:
    """Start `python -m gpt.jobs.worker ROOT JOB_ID ATTEMPT` in its own session (it outlives
    the app or CLI that starts it), logging to the job's `log.txt`, handing it the open `lock`
    fd (the job's `worker.lock`) and `threads` torch threads unless THREADS_ENV says."""
    folder = Path(root) / job_id
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env[LOCK_FD_ENV] = str(lock)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault(THREADS_ENV, str(threads))
    cmd = [sys.executable, "-u", "-m", WORKER_MODULE, str(root), job_id, str(attempt)]
    with open(folder / LOG_NAME, "ab") as log:
        header = f"--- attempt {attempt}, {time.ctime()}, started by pid {os.getpid()}\n"
        log.write(header.encode())
        log.flush()
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=(lock,),
            cwd=str(folder),
            start_new_session=True,
        )


def launch(
    conn: sqlite3.Connection, root: Path, claim: Claim, max_concurrent: int
) -> subprocess.Popen | None:
    """Start the worker of a claimed job and record its pid; None when it could not start (the
    job then ends `failed`, saying why). Our copy of the job's lock is closed either way: from
    now on the worker holds it, or nobody."""
    threads = max(1, (os.cpu_count() or 1) // max_concurrent)
    try:
        proc = spawn_worker(root, claim.job_id, claim.attempt, claim.lock, threads)
    except OSError as e:
        finish_attempt(
            conn, claim.job_id, claim.attempt, "failed", f"could not start the worker: {e}"
        )
        return None
    finally:
        store.close_lock(claim.lock)
    store.update(conn, claim.job_id, attempt=claim.attempt, pid=proc.pid)
    return proc


def start_queued(root: str | Path) -> list[str]:
    """Start queued jobs while slots are free, without a `JobManager`: what a finishing worker
    does, so a queue drains with no manager left running. Jobs whose worker died are ended
    first, to free their slots. Returns the ids started.

    While a manager's scheduler runs it does nothing: that manager starts each job as its own
    child, so it can wait for it (a job started here outlives this process, and an app running
    as PID 1 would never reap it)."""
    root = Path(root)
    if store.scheduler_running(root):
        return []
    conn = connect(root)
    try:
        for row in conn.execute("SELECT id, attempt FROM jobs WHERE state = 'running'").fetchall():
            if not worker_holds_lock(root / row["id"] / LOCK_NAME):
                end_attempt(conn, root, row["id"], row["attempt"])
        limit, started = store.max_concurrent(conn), []
        while (claim := store.claim_next(conn, root, limit)) is not None:
            if launch(conn, root, claim, limit) is not None:
                started.append(claim.job_id)
        return started
    finally:
        conn.close()


def _stage(row: sqlite3.Row) -> dict[str, Any] | None:
    if row["state"] != "running" or not row["stage"]:
        return None
    try:
        return json.loads(row["stage"])
    except ValueError:
        return None
