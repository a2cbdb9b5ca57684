"""The job store: `jobs.db`, the job lifecycle, job folders and locks. Standard library only.

- **`jobs.db`** (SQLite, WAL): one row per job and its metric history.
- **The lifecycle** (`LIFECYCLE`): every state change goes through `transition`, which checks
  the move; ending an attempt is `finish_attempt`; other fields go through `update`.
- **The job folder** `root/<id>/`: `out/` (what `gpt.lab.runs.run` writes), `log.txt`,
  `estimate.json`, `data/` (an uploaded file's copy) and `worker.lock`, which the manager that
  claims a job flocks before the claim commits and hands to the worker, held until its state is
  final: the kernel drops it however the process dies, so no manager need trust PIDs.

Each move to `running` starts a new attempt; ending one names it, so a late report of an old
attempt never ends a newer one:

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
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

LIFECYCLE: dict[str, tuple[str, ...]] = {  # state -> the states it may move to
    "queued": ("running", "cancelled"),  # claimed by a manager or a finishing worker
    # the worker reports succeeded or failed itself, or stops cancelled on SIGTERM (at a
    # checkpoint); a manager that finds it dead ends it interrupted or failed
    "running": ("succeeded", "failed", "cancelled", "interrupted"),
    "succeeded": (),
    "failed": ("queued",),  # resume: from the newest valid checkpoint
    "cancelled": ("queued",),
    "interrupted": ("queued",),
}
STATES = tuple(LIFECYCLE)
ACTIVE = ("queued", "running")
FINAL = tuple(s for s in STATES if s not in ACTIVE)
RESUMABLE = ("cancelled", "interrupted", "failed")  # may move back to queued, in the words' order
assert set(RESUMABLE) == {s for s, targets in LIFECYCLE.items() if "queued" in targets}

LOCK_NAME = "worker.lock"  # in the job folder: flock-ed for as long as the job's worker lives
LOG_NAME = "log.txt"  # the worker's stdout and stderr, every attempt
ESTIMATE_FILE = "estimate.json"
SCHEDULER_LOCK = "scheduler.lock"  # in root: share-locked by every manager running a scheduler
WORKER_MODULE = "gpt.jobs.worker"  # `python -m WORKER_MODULE ROOT JOB_ID ATTEMPT`, with:
THREADS_ENV = "GPT2LAB_JOB_THREADS"  # torch threads per worker (default: cores / max_concurrent)
LOCK_FD_ENV = "GPT2LAB_JOB_LOCK_FD"  # which inherited fd holds the job's lock
T = TypeVar("T")

_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL,
    base TEXT NOT NULL, method TEXT NOT NULL, data TEXT NOT NULL, spec TEXT NOT NULL,
    state TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0, max_steps INTEGER, loss REAL,
    eta_s REAL, created REAL NOT NULL, started REAL, finished REAL, error TEXT, note TEXT,
    pid INTEGER, attempt INTEGER NOT NULL DEFAULT 0, resume INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0, disk_quota INTEGER, owner TEXT, stage TEXT);
CREATE TABLE IF NOT EXISTS metrics (job_id TEXT NOT NULL, kind TEXT NOT NULL,
    step INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, kind, step));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"""
# What `transition` and `update` may write: `id`, `state` and `attempt` are the lifecycle's own,
# `created` is set once by `add_job`.
_COLUMNS = re.findall(r"(\w+) (?:TEXT|INTEGER|REAL)", _SCHEMA.split(";")[0])
FIELDS = frozenset(_COLUMNS) - {"id", "state", "attempt", "created"}


def connect(root: str | Path) -> sqlite3.Connection:
    """A connection to `root/jobs.db` (WAL, autocommit, busy timeout), schema created."""
    Path(root).mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        Path(root) / "jobs.db", timeout=30.0, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    for pragma in ("busy_timeout = 30000", "journal_mode = WAL", "synchronous = NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(_SCHEMA)
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(jobs)")}
    for name in {"owner", "stage"} - columns:  # a jobs.db from before they existed
        with contextlib.suppress(sqlite3.OperationalError):  # another process added it
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} TEXT")
    return conn


def retry_db(fn: Callable[..., T], *args: Any, timeout: float = 60.0, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, retried while SQLite says locked or busy: WAL mode can say so at
    once despite the busy timeout, and a worker's final state must not be lost to that.

    >>> retry_db(lambda x: x + 1, 1)
    2
    """
    end, delay = time.monotonic() + timeout, 0.02
    while True:
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as e:
            if not ("locked" in str(e) or "busy" in str(e)) or time.monotonic() > end:
                raise
        time.sleep(delay)
        delay = min(1.0, delay * 2)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block (or the commit) raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def job_row(conn: sqlite3.Connection, job_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


def max_concurrent(conn: sqlite3.Connection, n: int | None = None) -> int:
    """The newest manager's concurrency limit (1 before any ran), for workers that start queued
    jobs; given `n`, remember it first."""
    if n is not None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('max_concurrent', ?)", (n,))
    row = conn.execute("SELECT value FROM meta WHERE key = 'max_concurrent'").fetchone()
    return int(row["value"]) if row else 1


def add_job(conn: sqlite3.Connection, job_id: str, **fields: Any) -> None:
    """Insert a new job, `queued`; `fields` are its columns (kind, base, method, data, spec)."""
    _check_fields(fields)
    values = {"id": job_id, "state": "queued", "created": time.time(), **fields}
    conn.execute(
        f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )


def transition(
    conn: sqlite3.Connection, job_id: str, to_state: str, *, expect: str | None = None,
    attempt: int | None = None, **fields: Any,
) -> bool:  # fmt: skip
    """Move the job to `to_state` with `fields` (over the target's own, below), in one UPDATE,
    if `LIFECYCLE` allows it from its state, which is `expect` and still `attempt` when given.
    False when it did not move: how a race ends (another process reported, reaped or resumed
    it first)."""
    if to_state not in LIFECYCLE:
        raise ValueError(f"unknown job state {to_state!r}; known: {', '.join(STATES)}")
    sources = [s for s, targets in LIFECYCLE.items() if to_state in targets]
    if expect is not None:
        if expect not in sources:
            raise ValueError(f"a {expect} job never becomes {to_state}")
        sources = [expect]
    now = time.time()  # a new attempt; a final state's end; a resume forgets the last end:
    entry = {
        "running": {"started": now, "finished": None, "pid": None, "eta_s": None, "stage": None},
        "queued": {"finished": None, "pid": None, "error": None, "cancel_requested": 0},
    }.get(to_state, {"finished": now, "eta_s": None, "error": None})
    values = {**entry, **fields}
    _check_fields(values)
    sets = ["state = ?", *(f"{k} = ?" for k in values)]
    sets += ["attempt = attempt + 1"] if to_state == "running" else []
    where = f"id = ? AND state IN ({', '.join('?' * len(sources))})"
    params = [to_state, *values.values(), job_id, *sources]
    if attempt is not None:
        where += " AND attempt = ?"
        params.append(attempt)
    return conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE {where}", params).rowcount > 0


def finish_attempt(
    conn: sqlite3.Connection, job_id: str, attempt: int, state: str, error: str | None = None,
    **kw: Any,
) -> bool:  # fmt: skip
    """End a running attempt in final `state` (with `error`, and e.g. the final `step`). False
    when that attempt is not running any more (it ended already, or was resumed)."""
    if state not in FINAL:
        raise ValueError(f"an attempt ends {', '.join(FINAL)}, not {state!r}")
    return transition(conn, job_id, state, expect="running", attempt=attempt, error=error, **kw)


def update(
    conn: sqlite3.Connection, job_id: str, *, attempt: int | None = None, **fields: Any
) -> bool:
    """Write fields that are not the state; given `attempt`, only while the job is still that
    attempt. Returns whether a row was written."""
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
    if wrong := sorted(set(fields) - FIELDS):
        raise ValueError(
            f"not a job field: {', '.join(wrong)} (state and attempt change via transition)"
        )


@dataclass(frozen=True)
class Claim:
    """A job just moved to `running`: its new `attempt`, and `lock`, an fd holding its
    `worker.lock` for the worker (`close_lock` it once the worker has it)."""

    job_id: str
    attempt: int
    lock: int


def claim_next(conn: sqlite3.Connection, root: Path, max_concurrent: int) -> Claim | None:
    """Claim the oldest queued job, unless `max_concurrent` jobs run already: one write
    transaction, so the limit holds across processes. Its lock is taken before the claim
    commits, so a `running` job's lock is always held; a job whose previous worker still holds
    it (exiting) waits for the next round."""
    lock = None
    try:
        with transaction(conn):
            (running,) = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'running'"
            ).fetchone()
            if running >= max_concurrent:
                return None
            for row in conn.execute(
                "SELECT id, attempt FROM jobs WHERE state = 'queued' ORDER BY created, rowid"
            ).fetchall():
                (Path(root) / row["id"]).mkdir(parents=True, exist_ok=True)
                if (lock := take_worker_lock(Path(root) / row["id"] / LOCK_NAME)) is not None:
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


def record_metric(
    conn: sqlite3.Connection, job_id: str, kind: str, step: int, data: dict, verb: str = "REPLACE"
) -> None:
    """One metric row: a training step, an evaluation, a checkpoint, the test."""
    conn.execute(
        f"INSERT OR {verb} INTO metrics (job_id, kind, step, data) VALUES (?, ?, ?, ?)",
        (job_id, kind, step, json.dumps(data, default=str)),
    )


def rewind_metrics(
    conn: sqlite3.Connection, job_id: str, step: int, state: Mapping[str, Any] | None = None
) -> None:
    """Drop metric rows past `step` (they are redone) and restore those up to it from a
    checkpoint's state (its history and evals): a history without gaps or duplicates."""
    with transaction(conn):
        conn.execute("DELETE FROM metrics WHERE job_id = ? AND step > ?", (job_id, step))
        conn.execute("DELETE FROM metrics WHERE job_id = ? AND kind = 'test'", (job_id,))
        for kind, rows in (("step", "history"), ("eval", "evals")):
            for rec in (state or {}).get(rows, []):
                if rec.get("step", step + 1) <= step:
                    record_metric(conn, job_id, kind, rec["step"], rec, verb="IGNORE")
        update(conn, job_id, step=step)


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


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a job's log ("" when it has none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def write_estimate(
    job_dir: Path, seconds: float, text: str, busy: int = 0, start_s: float | None = None
) -> dict[str, Any]:
    """Keep a job's estimate in its folder (`read_estimate` reads it); return it. `start_s`: a
    running job's seconds from its start to the estimate (the worker's Python, the model and
    the data loaded), which the estimate itself does not count."""
    record = {"seconds": seconds, "text": text, "busy": busy, "at": time.time()}
    if start_s is not None:
        record["start_s"] = start_s
    tmp = job_dir / (ESTIMATE_FILE + ".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(job_dir / ESTIMATE_FILE)
    return record


def read_estimate(job_dir: Path) -> dict[str, Any] | None:  # None: not made yet
    try:
        return json.loads((job_dir / ESTIMATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def take_worker_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path` (created if missing), or None when another
    open file holds it. The lock goes with the last process holding the fd, however it ends.

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
    except BaseException as e:
        os.close(fd)
        if isinstance(e, BlockingIOError):
            return None
        raise
    return fd


def close_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def worker_holds_lock(path: Path) -> bool:
    """Whether a live process holds `path`'s lock, shared or exclusive."""
    if not path.exists():
        return False  # never locked: no worker was ever started for it
    with contextlib.suppress(FileNotFoundError):  # its folder went meanwhile
        fd = take_worker_lock(path)
        close_lock(fd)  # releases the lock if we just took it
        return fd is None
    return False


def hold_scheduler_lock(root: Path) -> int:
    """Share-lock `root/scheduler.lock` while the returned fd is open: a manager running a
    scheduler thread tells finishing workers to leave the queue to it."""
    fd = os.open(Path(root) / SCHEDULER_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd
