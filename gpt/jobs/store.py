"""The job store: what the job manager and its worker processes share. Standard library only.

It owns four things, and nothing else touches them directly:

- **`jobs.db`** (SQLite, WAL): one row per job (spec, state, progress, times, error) and its
  metric history; `connect`, `transaction`, `retry_db`.
- **The job lifecycle** (`LIFECYCLE`, below): every state change of a job goes through
  `transition`, which checks that the job's current state may move to the new one; ending an
  attempt is `finish_attempt`; fields that are not the state go through `update`.
- **The job folder** `root/<id>/`: `out/` (what `gpt.lab.runs.run` writes), `log.txt` (the
  worker's stdout and stderr), `estimate.json`, `data/` (a copy of an uploaded file) and
  `worker.lock`.
- **Locks** (`flock`, so Linux or macOS): whether a running job's worker is alive is read from
  `<id>/worker.lock`. The manager that claims a job takes an exclusive flock on it before the
  claim commits (`claim_next`) and hands that open file to the worker, which holds it until its
  state is final. The kernel drops the lock when the process dies, however it dies, so any
  manager can tell a live worker from a dead one without trusting PIDs (which are reused).
  `root/scheduler.lock` is share-locked by every manager that runs a scheduler thread.

The job lifecycle, as `LIFECYCLE` says it (state -> the states it may move to):

    (submit) -> queued
    queued      -> running                  claimed: a manager, or a finishing worker, starts it
    queued      -> cancelled                cancelled before it started
    running     -> succeeded | failed       the worker reports its own end
    running     -> cancelled                SIGTERM: the worker checkpoints and stops
    running     -> interrupted | failed     a manager finds the worker dead (killed, crashed)
    failed | cancelled | interrupted -> queued    resume (from the newest valid checkpoint)

Each move to `running` starts a new attempt (`attempt` + 1); a worker or a manager ending an
attempt names it, so a late report of an old attempt never ends a newer one:

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> conn = connect(root)
>>> add_job(conn, "j1", kind="lm", base="preset:tiny", method="full", data="bundled", spec="{}")
>>> transition(conn, "j1", "succeeded")  # not from queued
False
>>> claim = claim_next(conn, root, max_concurrent=1)
>>> claim.job_id, claim.attempt, job_row(conn, "j1")["state"]
('j1', 1, 'running')
>>> close_lock(claim.lock)
>>> finish_attempt(conn, "j1", 1, "succeeded"), finish_attempt(conn, "j1", 1, "failed", "late")
(True, False)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

# The job lifecycle: each state -> the states a job in it may move to (see the module docstring).
LIFECYCLE: dict[str, tuple[str, ...]] = {
    "queued": ("running", "cancelled"),
    "running": ("succeeded", "failed", "cancelled", "interrupted"),
    "succeeded": (),
    "failed": ("queued",),
    "cancelled": ("queued",),
    "interrupted": ("queued",),
}
STATES = tuple(LIFECYCLE)
ACTIVE = ("queued", "running")
FINAL = tuple(s for s in STATES if s not in ACTIVE)
RESUMABLE = ("cancelled", "interrupted", "failed")  # the states that may move back to queued
assert set(RESUMABLE) == {s for s, targets in LIFECYCLE.items() if "queued" in targets}

# The job folder, root/<id>/.
LOCK_NAME = "worker.lock"  # flock-ed for as long as the job's worker lives
LOG_NAME = "log.txt"  # the worker's stdout and stderr, every attempt
ESTIMATE_FILE = "estimate.json"  # how long it should take, said up front
SCHEDULER_LOCK = "scheduler.lock"  # in root: shared-locked by every manager running a scheduler
LOG_TAIL_LINES = 15

# How a manager starts a worker: `python -m WORKER_MODULE ROOT JOB_ID ATTEMPT`, with these set.
WORKER_MODULE = "gpt.jobs.worker"
THREADS_ENV = "GPT2LAB_JOB_THREADS"  # torch threads per worker (default: cores / max_concurrent)
LOCK_FD_ENV = "GPT2LAB_JOB_LOCK_FD"  # which inherited fd holds the job's lock

DB_RETRY_S = 60.0  # how long a worker retries a write SQLite reports busy
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    base TEXT NOT NULL,
    method TEXT NOT NULL,
    data TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    max_steps INTEGER,
    loss REAL,
    eta_s REAL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    error TEXT,
    note TEXT,
    pid INTEGER,
    attempt INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    disk_quota INTEGER,
    owner TEXT,
    stage TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    step INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, kind, step)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# The columns `transition` and `update` may write (`id`, `state` and `attempt` are the
# lifecycle's own; `created` is set once by `add_job`).
FIELDS = frozenset(
    ("kind", "base", "method", "data", "spec", "step", "max_steps", "loss", "eta_s", "started",
     "finished", "error", "note", "pid", "resume", "cancel_requested", "disk_quota", "owner",
     "stage")
)  # fmt: skip


# --- the database ---------------------------------------------------------------------------------


def connect(root: str | Path) -> sqlite3.Connection:
    """A connection to `root/jobs.db` (WAL, autocommit, busy timeout), schema created."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        root / "jobs.db",
        timeout=30.0,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_SCHEMA)
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(jobs)")}
    for name in ("owner", "stage"):  # a jobs.db from before they existed: NULL in old rows
        if name not in columns:
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} TEXT")
    return conn


def retry_db(fn: Callable[..., T], *args: Any, timeout: float = DB_RETRY_S, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, retried with backoff while SQLite reports the database locked or
    busy.

    The busy timeout covers most contention, but WAL mode can return SQLITE_BUSY at once
    (e.g. while another process recovers or checkpoints the log); a worker's final state
    must not be lost to that.

    >>> retry_db(lambda x: x + 1, 1)
    2
    """
    end, delay = time.monotonic() + timeout, 0.02
    while True:
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as e:
            transient = "locked" in str(e) or "busy" in str(e)
            if not transient or time.monotonic() > end:
                raise
        time.sleep(delay)
        delay = min(1.0, delay * 2)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`with transaction(conn):` one short write transaction (BEGIN IMMEDIATE ... COMMIT, or
    ROLLBACK when the block raises)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:  # e.g. busy or disk full: leave no transaction open on `conn`
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def job_row(conn: sqlite3.Connection, job_id: str) -> sqlite3.Row | None:
    """The job's row, None when there is no such job."""
    return conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


def set_max_concurrent(conn: sqlite3.Connection, n: int) -> None:
    """Remember the newest manager's concurrency limit, for workers that start queued jobs."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('max_concurrent', ?)", (str(n),))


def max_concurrent(conn: sqlite3.Connection) -> int:
    """The limit `set_max_concurrent` stored (1 before any manager ran)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'max_concurrent'").fetchone()
    return int(row["value"]) if row else 1


# --- the job lifecycle ------------------------------------------------------------------------------


def add_job(conn: sqlite3.Connection, job_id: str, **fields: Any) -> None:
    """Insert a new job, `queued` (the lifecycle's entry); `fields` are its columns (kind, base,
    method, data and spec are required)."""
    _check_fields(fields)
    values = {"id": job_id, "state": "queued", "created": time.time(), **fields}
    conn.execute(
        f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )


def transition(
    conn: sqlite3.Connection,
    job_id: str,
    to_state: str,
    *,
    expect: str | None = None,
    attempt: int | None = None,
    **fields: Any,
) -> bool:
    """Move job `job_id` to `to_state` and write `fields` with it, in one UPDATE, if its current
    state may move there (`LIFECYCLE`), is `expect` when given, and (given `attempt`) it is still
    that attempt. Returns whether the job moved; False means it was not in such a state, which
    is how a race ends (another process reported, reaped or resumed the job first).

    Each target state brings its own fields, which `fields` may override: `running` starts a
    new attempt (`attempt` + 1, `started` now, pid/eta/stage/finished cleared); a final state
    sets `finished` now and clears `eta_s` and `error` (pass `error=` to give one); `queued`
    clears `finished`, `pid`, `error` and a cancel request.
    """
    if to_state not in LIFECYCLE:
        raise ValueError(f"unknown job state {to_state!r}; known: {', '.join(STATES)}")
    sources = [s for s, targets in LIFECYCLE.items() if to_state in targets]
    if expect is not None:
        if expect not in sources:
            raise ValueError(f"a {expect} job never becomes {to_state}")
        sources = [expect]
    now = time.time()
    if to_state == "running":
        entry = {"started": now, "finished": None, "pid": None, "eta_s": None, "stage": None}
    elif to_state == "queued":
        entry = {"finished": None, "pid": None, "error": None, "cancel_requested": 0}
    else:
        entry = {"finished": now, "eta_s": None, "error": None}
    values = {**entry, **fields}
    _check_fields(values)
    sets = ["state = ?", *(f"{k} = ?" for k in values)]
    if to_state == "running":
        sets.append("attempt = attempt + 1")
    where = f"id = ? AND state IN ({', '.join('?' * len(sources))})"
    params = [to_state, *values.values(), job_id, *sources]
    if attempt is not None:
        where += " AND attempt = ?"
        params.append(attempt)
    return conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE {where}", params).rowcount > 0


def finish_attempt(
    conn: sqlite3.Connection,
    job_id: str,
    attempt: int,
    state: str,
    error: str | None = None,
    **fields: Any,
) -> bool:
    """End a running attempt in final `state` (with `error`, and e.g. the final `step`): what a
    worker reports, or what a manager records for a worker that died. False when that attempt
    is not running any more (it ended already, or was resumed)."""
    if state not in FINAL:
        raise ValueError(f"an attempt ends {', '.join(FINAL)}, not {state!r}")
    return transition(conn, job_id, state, expect="running", attempt=attempt, error=error, **fields)


def update(
    conn: sqlite3.Connection, job_id: str, *, attempt: int | None = None, **fields: Any
) -> bool:
    """Write fields of a job that are not its state: progress, pid, stage, note, a cancel
    request. Given `attempt`, only while the job is still that attempt (a late report of an
    old one writes nothing). Returns whether a row was written."""
    _check_fields(fields)
    if not fields:
        return False
    where, params = "id = ?", [*fields.values(), job_id]
    if attempt is not None:
        where += " AND attempt = ?"
        params.append(attempt)
    sets = ", ".join(f"{k} = ?" for k in fields)
    return conn.execute(f"UPDATE jobs SET {sets} WHERE {where}", params).rowcount > 0


def _check_fields(fields: Mapping[str, Any]) -> None:
    wrong = sorted(set(fields) - FIELDS)
    if wrong:
        raise ValueError(
            f"not a job field: {', '.join(wrong)} (state and attempt change via transition)"
        )


@dataclass(frozen=True)
class Claim:
    """A queued job just moved to `running`: its new `attempt`, and `lock`, an fd holding its
    `worker.lock`, to hand to the worker (`close_lock` it once the worker has it)."""

    job_id: str
    attempt: int
    lock: int


def claim_next(conn: sqlite3.Connection, root: Path, max_concurrent: int) -> Claim | None:
    """Claim the oldest queued job, unless `max_concurrent` jobs run already. One write
    transaction, so the limit holds across processes sharing `root`.

    The job's lock is taken before the claim commits, so from `running` on a live process
    always holds it. A job whose previous worker is still exiting (its lock still held) waits
    for the next round."""
    lock = None
    try:
        with transaction(conn):
            (running,) = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'running'"
            ).fetchone()
            if running >= max_concurrent:
                return None
            queued = conn.execute(
                "SELECT id, attempt FROM jobs WHERE state = 'queued' ORDER BY created, rowid"
            ).fetchall()
            for row in queued:
                folder = Path(root) / row["id"]
                folder.mkdir(parents=True, exist_ok=True)
                lock = take_worker_lock(folder / LOCK_NAME)
                if lock is not None:
                    break
            else:
                return None
            transition(conn, row["id"], "running")
    except BaseException:
        close_lock(lock)  # not claimed (the commit failed): nobody may keep its lock
        raise
    return Claim(row["id"], row["attempt"] + 1, lock)


def delete_job(conn: sqlite3.Connection, job_id: str) -> None:
    """Remove the job's row and its metric history (its folder is the caller's)."""
    with transaction(conn):
        conn.execute("DELETE FROM metrics WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


# --- metrics ----------------------------------------------------------------------------------------


def record_metric(conn: sqlite3.Connection, job_id: str, kind: str, step: int, data: dict) -> None:
    """Store one metric row (a training step, an evaluation, a checkpoint, the test)."""
    conn.execute(
        "INSERT OR REPLACE INTO metrics (job_id, kind, step, data) VALUES (?, ?, ?, ?)",
        (job_id, kind, step, json.dumps(data, default=str)),
    )


def rewind_metrics(
    conn: sqlite3.Connection, job_id: str, step: int, state: Mapping[str, Any] | None = None
) -> None:
    """Drop metric rows past `step` (they are redone) and restore rows up to it from a
    checkpoint's state (its history and evals), so the history has neither gaps nor duplicates."""
    with transaction(conn):
        conn.execute("DELETE FROM metrics WHERE job_id = ? AND step > ?", (job_id, step))
        conn.execute("DELETE FROM metrics WHERE job_id = ? AND kind = 'test'", (job_id,))
        for kind, rows in (("step", "history"), ("eval", "evals")):
            for rec in (state or {}).get(rows, []):
                if rec.get("step", step + 1) <= step:
                    conn.execute(
                        "INSERT OR IGNORE INTO metrics (job_id, kind, step, data) "
                        "VALUES (?, ?, ?, ?)",
                        (job_id, kind, rec["step"], json.dumps(rec, default=str)),
                    )
        update(conn, job_id, step=step)


# --- the job folder -----------------------------------------------------------------------------------


def dir_size(path: Path) -> int:
    """Bytes of every file under `path` (0 when it does not exist)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # deleted while we walk
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def jobs_usage(root: Path) -> int:
    """Bytes used by the job folders under `root`."""
    return sum(dir_size(p) for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a job's log ("" when it has none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def write_estimate(job_dir: Path, seconds: float, text: str, busy: int = 0) -> dict[str, Any]:
    """Keep a job's estimate in its folder (`JobStatus.estimate` reads it); return it."""
    record = {"seconds": seconds, "text": text, "busy": busy, "at": time.time()}
    path = job_dir / ESTIMATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(path)
    return record


def read_estimate(job_dir: Path) -> dict[str, Any] | None:
    """What `write_estimate` kept, None when there is none (or it is unreadable)."""
    try:
        return json.loads((job_dir / ESTIMATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- locks --------------------------------------------------------------------------------------------


def take_worker_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path` (created if missing), or None when another
    open file holds it. Closing the fd, or the exit of every process that inherited it,
    releases the lock, whatever way the process ends (SIGKILL included).

    >>> import tempfile
    >>> lock = Path(tempfile.mkdtemp()) / LOCK_NAME
    >>> fd = take_worker_lock(lock)
    >>> take_worker_lock(lock) is None, worker_holds_lock(lock)
    (True, True)
    >>> os.close(fd); worker_holds_lock(lock)
    False
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def close_lock(fd: int | None) -> None:
    """Close a lock fd from `take_worker_lock` or `hold_scheduler_lock` (None: nothing)."""
    if fd is not None:
        os.close(fd)


def worker_holds_lock(path: Path) -> bool:
    """Whether a live process holds `path`'s lock, shared or exclusive (a worker, the manager
    spawning it, or for SCHEDULER_LOCK a manager's scheduler)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False  # never locked: no worker was ever started for it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we just took it
    return False


def hold_scheduler_lock(root: Path) -> int:
    """Share-lock `root/scheduler.lock` for as long as the returned fd is open: a manager with a
    scheduler thread says so to finishing workers (`scheduler_running`)."""
    fd = os.open(Path(root) / SCHEDULER_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def scheduler_running(root: Path) -> bool:
    """Whether a manager with a scheduler thread (`background=True`, as in the app) watches
    `root`: it then starts queued jobs itself, as its own children, so it can wait for them."""
    return worker_holds_lock(Path(root) / SCHEDULER_LOCK)


def is_worker_alive(pid: int | None, job_id: str) -> bool:
    """Whether `pid` is a live (not zombie) worker process of `job_id`: a check for tests and
    people. Managers judge liveness by the job's lock, never by a PID.

    On Linux the command line must name `gpt.jobs.worker` and the job, so a PID reused by
    another process after a reboot is not mistaken for the job.
    """
    if not pid:
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self/stat").exists():
        try:
            stat = (proc / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        return WORKER_MODULE.encode() in argv and job_id.encode() in argv
    try:  # macOS: no /proc
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
