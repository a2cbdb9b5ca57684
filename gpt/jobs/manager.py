"""The job manager: submit a `RunSpec`, watch it, cancel it, resume it, use its model.

Training takes minutes to hours, so it never runs inside a web request: a `JobManager` keeps a
queue in `root/jobs.db` and trains each job in its own process, so a crash or a `kill -9` of a
job never takes the app down, and a restart of the app never loses a job.

`submit` validates a job, once: its spec parsed, its base model resolved (and stored by its
portable name, so the worker loads exactly that), its data checked, the `JobPolicy` asked.
`resume` continues a job from its newest valid checkpoint: at most one checkpoint interval is
redone, and the metric history stays continuous.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gpt.checkpoint import CheckpointError
from gpt.jobs import store
from gpt.jobs.policy import (
    BASE_TASKS,
    NOBODY,
    JobError,
    JobPolicy,
    Visitor,
    a_job,
)
from gpt.jobs.scheduler import Children, end_attempt, schedule
from gpt.jobs.store import ACTIVE, RESUMABLE, dir_size, transaction, transition
from gpt.lab.cards import JOBS_POLICY_FILE
from gpt.lab.names import EXPECTED, ModelNameError, ModelRef, is_name, resolve
from gpt.lab.runs import MIN_EXAMPLES, RunSpec, expected_bytes
from gpt.train import state as trainstate

CANCEL_GRACE_S = 1.5  # SIGTERM, then SIGKILL after this long
log = logging.getLogger("gpt2lab.jobs")
T = TypeVar("T")
_COLUMNS = ("id", "kind", "base", "method", "data", "state", "step", "max_steps", "loss", "created",
            "started", "finished", "error", "note", "pid", "attempt", "owner")  # fmt: skip


@dataclass(frozen=True)
class JobStatus:
    """One job's state and progress, plain values only: what a page or the CLI polls."""

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
        return self.state in ACTIVE


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
    owner: str | None = None  # who started it (`JobStatus.owner`)

    @property
    def name(self) -> str:
        return f"job:{self.id}"


class JobManager:
    """Queue, run, watch, cancel and resume training jobs stored under `root_dir`, as `policy`
    allows (default: one user, no limits but 20 queued jobs).

    `max_concurrent` jobs run at once (1 suits a CPU: a job uses every core). `background` runs
    a scheduler thread (else each public method runs a round via `poll()`). Commands take the
    `Visitor` asking (default: nobody in particular, who in multi-user mode may change and
    start no job).
    """

    def __init__(
        self, root_dir: str | Path, max_concurrent: int = 1, policy: JobPolicy | None = None,
        *, background: bool = True, poll_interval: float = 0.2,
    ) -> None:  # fmt: skip
        self.policy = policy or JobPolicy()
        if max_concurrent < 1 or self.policy.max_queued < 0:
            raise ValueError(f"need max_concurrent >= 1 and max_queued >= 0, got {max_concurrent}"
                             f" and {self.policy.max_queued}")  # fmt: skip
        self.root = Path(root_dir).resolve()
        self.max_concurrent, self.poll_interval = max_concurrent, poll_interval
        self.last_pruned: list[str] = []  # jobs the last `make_room` removed
        self._conn = store.connect(self.root)
        self._lock = threading.RLock()
        self._children: Children = {}
        self._closed = False
        self._stop = threading.Event()
        store.max_concurrent(self._conn, max_concurrent)
        self._publish_policy()
        self.poll()  # recovery: jobs whose process died while no manager watched
        self._thread = self._scheduler_fd = None
        if background:  # the lock tells finishing workers to leave the queue to us
            self._scheduler_fd = store.hold_scheduler_lock(self.root)
            self._thread = threading.Thread(target=self._loop, name="job-scheduler", daemon=True)
            self._thread.start()

    @property
    def multiuser(self) -> bool:
        return self.policy.multiuser

    def close(self) -> None:
        """Stop the scheduler thread. Running jobs go on; a later manager on the same root picks
        them up (or marks them interrupted if they died)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
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
        last = None
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll()
                last = None
            except Exception as e:  # a locked or vanished DB must not kill the scheduler
                if (error := f"{type(e).__name__}: {e}") != last:  # logged once, not each round
                    log.warning("job scheduler: %s", error)
                last = error

    def poll(self) -> None:
        """One round of the scheduler (`schedule`), with this manager's workers as children."""
        if self._closed:
            return
        with self._lock:
            schedule(self._conn, self.root, self.max_concurrent, self._children)

    def _execute(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._db(lambda conn: conn.execute(sql, params).fetchall())

    def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(conn, *args, **kwargs)` on our connection, under our lock."""
        with self._lock:
            if self._closed:
                raise JobError("the job manager is closed")
            return fn(self._conn, *args, **kwargs)

    def _row(self, job_id: str) -> sqlite3.Row:
        if (row := self._db(store.job_row, job_id)) is None:
            raise JobError(f"no job {job_id!r}")  # the folder is the server's business
        return row

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def model_dir(self, job_id: str) -> Path:
        return self.root / job_id / "out" / "model"

    def _status(self, row: sqlite3.Row) -> JobStatus:
        model, state, max_steps = self.model_dir(row["id"]), row["state"], row["max_steps"]
        stage = None
        if state == "running" and row["stage"]:
            with contextlib.suppress(ValueError):
                stage = json.loads(row["stage"])
        done = state == "succeeded"
        return JobStatus(
            **{k: row[k] for k in _COLUMNS},
            progress=1.0 if done else min(1.0, row["step"] / max_steps) if max_steps else 0.0,
            eta_s=row["eta_s"] if state == "running" else None,
            model_path=str(model) if done and (model / "config.json").is_file() else None,
            spec=json.loads(row["spec"]),
            estimate=store.read_estimate(self.job_dir(row["id"])),
            stage=stage,
        )

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
            if r["kind"] == "test":
                out["test"] = json.loads(r["data"])
            else:  # a checkpoint's row says only its step
                data = r["step"] if r["kind"] == "checkpoint" else json.loads(r["data"])
                out[r["kind"] + "s"].append(data)
        return out

    def estimate(self, job_id: str) -> dict[str, Any]:
        """How long the job should take here (`gpt.lab.runs.estimate_run`), kept for
        `JobStatus.estimate`: `seconds`, `text` ("about 4 min on this machine"), `busy` (jobs
        running while it was measured)."""
        from gpt.lab.runs import estimate_run

        row = self._row(job_id)
        sql = "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND id != ?"
        busy = self._execute(sql, (job_id,))[0][0]
        est = estimate_run(RunSpec.from_dict(json.loads(row["spec"])))
        return store.write_estimate(self.job_dir(job_id), est.seconds, est.describe(), busy)

    def log(self, job_id: str, lines: int = 40) -> str:
        """The last `lines` lines of the job's log (attempts, resumes, warnings, tracebacks)."""
        self._row(job_id)
        return store.log_tail(self.job_dir(job_id) / store.LOG_NAME, lines)

    def models(self) -> list[JobModel]:
        """The models of succeeded jobs, newest first."""
        out = []
        for s in self.list():
            if s.state == "succeeded" and s.model_path is not None:
                test = self.metrics(s.id)["test"]
                test = {k: v for k, v in test.items() if k not in ("test_samples", "base")}
                out.append(JobModel(s.id, s.kind, s.base, s.method, s.model_path, s.finished,
                                    test, s.owner))  # fmt: skip
        return out

    def has_checkpoint(self, job_id: str) -> bool:
        """Whether the job has a checkpoint to resume from (else resume starts over)."""
        return bool(trainstate.list_checkpoints(self.job_dir(job_id) / "out" / "checkpoints"))

    def disk_usage(self) -> int:
        return store.jobs_usage(self.root)

    def submit(
        self, spec: Mapping[str, Any] | RunSpec, by: Visitor = NOBODY, upload: str | None = None
    ) -> str:
        """Validate `spec` (RunSpec fields as a form or the CLI sends them, or a RunSpec) and
        queue it for `by`; return its id. `upload`: the file for `data="upload"`, copied into
        the job. The one place a job is checked: JobError for a bad key, a number out of its
        range (`JobPolicy.numbers`), a base model that is missing or does not fit the kind,
        data that does not fit or parse, no owner (multi-user mode), a limit or the disk budget."""
        owner = self.policy.owner(by)
        fields = self.policy.numbers(spec.to_dict() if isinstance(spec, RunSpec) else spec)
        try:
            run_spec = RunSpec.from_dict(fields)
        except (TypeError, ValueError) as e:
            raise JobError(f"invalid job spec: {e}") from e
        self.policy.check_size(run_spec)
        ref = self.resolve_base(run_spec.base, run_spec.kind)
        tokenizer = run_spec.tokenizer
        if tokenizer not in (None, "gpt2"):
            if not (tok_path := Path(tokenizer).expanduser()).exists():
                raise JobError(f"tokenizer {tokenizer!r} not found")
            tokenizer = str(tok_path.resolve())
        file = self._check_data(run_spec.kind, run_spec.data, upload)
        self._db(self.policy.admit, owner)  # refused before anything is pruned
        need = expected_bytes(run_spec.to_dict(), ref)
        self.make_room(need + (file.stat().st_size if file else 0), owner=owner)
        while True:  # a new folder: its name is the job's id
            job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            folder = self.job_dir(job_id)
            with contextlib.suppress(FileExistsError):
                folder.mkdir(parents=True)
                break
        try:
            data = run_spec.data
            if file is not None:
                (folder / "data").mkdir()
                data = str(shutil.copy2(file, folder / "data" / file.name))
            stored = {**run_spec.to_dict(), "base": ref.portable, "data": data,
                      "tokenizer": tokenizer}  # fmt: skip
            with self._lock, transaction(self._conn) as conn:
                self.policy.admit(conn, owner)
                store.add_job(
                    conn, job_id, kind=run_spec.kind, base=run_spec.base, method=run_spec.method,
                    data=data, max_steps=run_spec.max_steps, spec=json.dumps(stored),
                    owner=owner, disk_quota=self.policy.disk_quota,
                )  # fmt: skip
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.poll()
        return job_id

    def cancel(self, job_id: str, by: Visitor = NOBODY) -> JobStatus:
        """Cancel a queued job, or stop a running one (SIGTERM: it checkpoints at the end of its
        step; SIGKILL after CANCEL_GRACE_S), within about 2 s. NotOwnerError if `by` may not."""
        row = self._row(job_id)
        self.policy.authorize(by, row, "cancel")
        if row["state"] == "queued":
            self._db(transition, job_id, "cancelled", expect="queued")
            row = self._row(job_id)
        if row["state"] != "running":
            if row["state"] == "cancelled":
                return self._status(row)
            raise JobError(f"job {job_id} is {row['state']}; only queued or running jobs cancel")
        self._db(store.update, job_id, cancel_requested=1)  # how the attempt ends: cancelled
        _until(lambda: self._row(job_id)["pid"] is not None, 1.0)  # claimed, not yet spawned
        row = self._row(job_id)
        pid = row["pid"]
        for sig, wait in ((signal.SIGTERM, CANCEL_GRACE_S), (signal.SIGKILL, 0.4)):
            if pid is None or not self._alive(job_id, pid):
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):  # SIGKILL: the
                (os.killpg if sig == signal.SIGKILL else os.kill)(pid, sig)  # worker's session
            _until(lambda: not self._alive(job_id, pid), wait)  # noqa: B023 (called at once)
        self._db(end_attempt, self.root, job_id, row["attempt"])
        self.poll()
        return self._status(self._row(job_id))

    def resume(self, job_id: str, by: Visitor = NOBODY) -> str:
        """Queue a cancelled, interrupted or failed job again, to continue from its newest valid
        checkpoint (or the start). JobError when every checkpoint is corrupted or a limit is
        reached; NotOwnerError as `cancel`."""
        row = self._row(job_id)
        self.policy.authorize(by, row, "resume")
        if row["state"] not in RESUMABLE:
            raise JobError(
                f"job {job_id} is {row['state']}; only {', '.join(RESUMABLE)} jobs resume"
            )
        self.make_room(0, keep=job_id, owner=row["owner"], pruner=by.owner)
        ckpts = self.job_dir(job_id) / "out" / "checkpoints"
        note = "no checkpoint yet: starting over"
        if trainstate.list_checkpoints(ckpts):
            try:
                folder, _, problems = trainstate.latest_valid(ckpts)
            except trainstate.TrainStateError as e:
                msg = f"cannot resume: {e}"
                self._db(store.update, job_id, note=msg)
                raise JobError(f"job {job_id}: {msg}") from e
            skipped = f"skipped {'; '.join(problems)}; resuming from {folder.name}"
            note = skipped if problems else None
        with self._lock, transaction(self._conn) as conn:
            self.policy.admit(conn, row["owner"])
            moved = transition(conn, job_id, "queued", expect=row["state"], resume=1, note=note,
                               disk_quota=self.policy.disk_quota)  # fmt: skip
        if not moved:
            raise JobError(f"job {job_id} changed state meanwhile; try again")
        self.poll()
        return job_id

    def delete(self, job_id: str, by: Visitor = NOBODY) -> None:
        """Remove a job, its files and its history (cancelling it first). NotOwnerError as above."""
        row = self._row(job_id)
        self.policy.authorize(by, row, "delete")
        if row["state"] in ACTIVE:
            self.cancel(job_id, by)
        self._remove(job_id)

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 0.1) -> JobStatus:
        """Block until the job leaves queued/running (or `timeout` seconds pass)."""
        _until(lambda: not self.get(job_id).active, timeout or float("inf"), interval)
        return self.get(job_id)

    def resolve_base(self, base: str, kind: str | None = None) -> ModelRef:
        """What a spec's base means (`gpt.lab.names.resolve`, asking us about `job:<id>`), or
        JobError when it does not exist or does not fit a `kind` job. A name the app lists for
        `kind` (`gpt.lab.registry`) means its model; without the policy's `local_paths`, only
        such a name is taken."""
        if kind is not None:
            from gpt.lab.registry import default_registry

            listed = {e.name: e for e in default_registry().entries(BASE_TASKS[kind])}
            if base in listed and not is_name(base):  # e.g. an extra model, by its folder's name
                base = listed[base].location
            elif base not in listed and not self.policy.local_paths:
                known = ", ".join(listed) or "none"
                raise JobError(
                    f"base model {base!r} does not fit {a_job(kind)}; pick one of: {known}"
                )
        try:
            ref = resolve(base, jobs=self)
        except ModelNameError as e:
            if e.reason == "unknown":
                raise JobError(f"unknown base model {base!r}: expected {EXPECTED}") from e
            raise JobError(str(e)) from e
        except CheckpointError as e:  # a folder whose config.json is broken
            raise JobError(f"base model {base!r}: {e}") from e
        if kind is not None and ref.task not in BASE_TASKS[kind]:
            fit = f"it does not fit {a_job(kind)}"
            raise JobError(f"base model {base!r} is a {ref.task} model: {fit}")
        return ref

    def _check_data(self, kind: str, data: str, upload: str | None) -> Path | None:
        """The file to copy into the job (None for bundled or online data), parsed now so a
        bad one fails with the parser's message."""
        from gpt.lab.sources import SOURCES, availability
        from gpt.train.data import DataError, validate_file

        if data == "upload":
            if not upload:
                raise JobError("data 'upload' needs the uploaded file")
            data = upload
        elif data in SOURCES and SOURCES[data].kind == kind:
            if (why := availability(data)) is not None:  # offline, and it is not cached
                raise JobError(f"data {data!r} {why}; use bundled data or a file instead")
            return None
        elif data == "bundled":
            return None
        elif data in SOURCES or not self.policy.local_paths:
            fits = [s for s, src in SOURCES.items() if src.kind == kind]
            raise JobError(
                f"data {data!r} does not fit {a_job(kind)}; choose one of: "
                + ", ".join(["bundled", "upload", *fits])
            )
        elif data.startswith(("http://", "https://")):
            return None
        path = Path(data).expanduser()
        if not path.is_file():
            raise JobError(
                f"data {data!r} is neither 'bundled', an existing file, a known source "
                f"({', '.join(SOURCES)}) nor an http(s) URL"
            )
        try:
            n = validate_file(kind, path).get("examples", MIN_EXAMPLES)
        except DataError as e:
            raise JobError(str(e)) from e
        except OSError as e:
            raise JobError(f"cannot read data file {path}: {e}") from e
        if n < MIN_EXAMPLES:  # some held out for validation and testing, some to train on
            raise JobError(
                f"{path} has {n} example{'s' * (n != 1)}; {a_job(kind)} needs at least "
                f"{MIN_EXAMPLES}, to train on most and still test on some"
            )
        return path.resolve()

    def make_room(
        self, extra: int = 0, keep: str | None = None, owner: str | None = None,
        pruner: str | None = None,
    ) -> list[str]:  # fmt: skip
        """Free disk for `extra` more bytes of `owner`'s within the budgets (in all, and
        `owner`'s share), deleting what `JobPolicy.prunable` lets `pruner` (default `owner`)
        prune; for someone else's resume, only what is past its retention age. JobError, with
        nothing deleted, when even that would not make room. Returns the removed ids (also
        `last_pruned`); each removal is logged.

        >>> import tempfile
        >>> JobManager(tempfile.mkdtemp(), 1, JobPolicy(disk_quota=1), background=False).make_room()
        []
        """
        self.last_pruned = []
        policy = self.policy
        if policy.disk_quota is None and (policy.owner_quota is None or owner is None):
            return []
        with self._lock:  # this process's submissions plan and prune one at a time
            used, owner_used = self.usage(), 0 if owner is None else self.usage(owner)
            if policy.plan_room([], {}, used, extra, owner, owner_used)[1] is None:
                return []  # it fits already
            rows = {  # someone else's resume may prune only what is past its retention age
                r["id"]: r
                for r in self._db(policy.prunable, owner if pruner is None else pruner, keep)
                if r["expired"] or pruner in (None, owner)
            }
            sizes = {job_id: dir_size(self.job_dir(job_id)) for job_id in rows}
            plan, error = policy.plan_room([*rows.values()], sizes, used, extra, owner, owner_used)
            if error is not None:
                raise error
            quota = "no limit" if policy.disk_quota is None else f"{policy.disk_quota / 1e6:.1f} MB"
            for job_id in plan:
                self._remove(job_id)
                self.last_pruned.append(job_id)
                used -= sizes[job_id]
                row = rows[job_id]
                why = "past its retention age" if row["expired"] else "the requester's own"
                log.warning(
                    "disk budget: pruned job %s (%s, %s, %s, %.1f MB) to make room; jobs use "
                    "%.1f MB of %s", job_id, row["state"], row["owner"], why,
                    sizes[job_id] / 1e6, used / 1e6, quota,
                )  # fmt: skip
        return self.last_pruned

    def usage(self, owner: str | None = None) -> int:
        """Bytes the job folders use plus what the queued and running jobs should still write
        (`expected_bytes` less what each has written): room for the jobs already accepted. With
        `owner`: that owner's jobs only."""
        mine, params = ("", ()) if owner is None else (" AND owner = ?", (owner,))
        rows = self._execute(f"SELECT id, spec FROM jobs WHERE state IN {ACTIVE!r}{mine}", params)
        if owner is None:
            used = self.disk_usage()
        else:
            owned = self._execute("SELECT id FROM jobs WHERE owner = ?", params)
            used = sum(dir_size(self.job_dir(r["id"])) for r in owned)
        return used + sum(
            max(0, expected_bytes(json.loads(r["spec"])) - dir_size(self.job_dir(r["id"])))
            for r in rows
        )

    def _publish_policy(self) -> None:
        """Write what visitors may know of the policy (`gpt.lab.cards.JOBS_POLICY_FILE`, read
        by job models' cards): multi-user mode and the retention age. Never a secret."""
        hours = None if self.policy.retention_s is None else self.policy.retention_s / 3600
        public = {"multiuser": self.policy.multiuser, "retention_hours": hours}
        with contextlib.suppress(OSError):  # a read-only folder: cards then say less
            tmp = self.root / (JOBS_POLICY_FILE + ".tmp")
            tmp.write_text(json.dumps(public), encoding="utf-8")
            os.replace(tmp, self.root / JOBS_POLICY_FILE)

    def _remove(self, job_id: str) -> None:
        with self._lock:
            store.delete_job(self._conn, job_id)
            self._children.pop(job_id, None)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def _alive(self, job_id: str, pid: int | None) -> bool:
        """Whether the job's worker (or the manager spawning it) is alive: our own child says
        so itself; for any other process, the job's lock does."""
        child = self._children.get(job_id)
        if child is not None and child[0].pid == pid:
            return child[0].poll() is None
        return store.worker_holds_lock(self.job_dir(job_id) / store.LOCK_NAME)


def _until(done: Callable[[], bool], seconds: float, interval: float = 0.02) -> None:
    """Wait until `done()` or `seconds` pass."""
    end = time.time() + seconds
    while not done() and time.time() < end:
        time.sleep(interval)
