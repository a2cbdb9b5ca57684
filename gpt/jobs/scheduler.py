"""The one scheduler: the only place that starts queued jobs and ends attempts whose worker died.

`schedule` runs one round; a claim is one SQLite write transaction, so the concurrency limit
holds across the processes that run rounds:
- a `JobManager` at each `poll()` (from its scheduler thread in the app, at each call in the
  CLI), passing the workers it started as `children`: it waits for each (no zombies);
- a finishing worker, as its last act, so a queue drains while no app runs. It does nothing
  while a manager's scheduler thread holds `root/scheduler.lock`: that manager starts each job
  as its own child, to reap it (a job a worker starts outlives that worker, and an app running
  as PID 1 would never reap it).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gpt.jobs import store
from gpt.jobs.store import LOCK_NAME, LOG_NAME, finish_attempt, worker_holds_lock

REPO = Path(__file__).resolve().parents[2]
Children = dict[str, tuple[subprocess.Popen, int]]  # job id -> (its worker, the attempt)
RESUME = "resume continues from its last checkpoint"


def schedule(
    conn: sqlite3.Connection, root: Path, limit: int | None = None, children: Children | None = None
) -> list[str]:
    """One round: end the attempts whose worker died without reporting (`end_attempt`), then
    claim queued jobs while fewer than `limit` (default: the newest manager's) run, and start
    their workers. Returns the ids started."""
    limit = limit or store.max_concurrent(conn)
    if children is None:
        if worker_holds_lock(Path(root) / store.SCHEDULER_LOCK):
            return []
        children = {}
    rows = conn.execute("SELECT id, attempt FROM jobs WHERE state = 'running'").fetchall()
    running = {row["id"]: row["attempt"] for row in rows}
    for job_id, (proc, attempt) in list(children.items()):
        if running.get(job_id) != attempt and proc.poll() is not None:  # it reported its end
            del children[job_id]
    for job_id, attempt in running.items():
        child = children.get(job_id)
        if child is not None and child[1] == attempt:
            if (rc := child[0].poll()) is None:
                continue
            del children[job_id]
        elif worker_holds_lock(root / job_id / LOCK_NAME):
            continue
        else:
            rc = None  # not our child: its exit status is unknown
        end_attempt(conn, root, job_id, attempt, rc)
    started = []
    while (claim := store.claim_next(conn, root, limit)) is not None:
        if (proc := spawn(conn, root, claim, limit)) is not None:
            children[claim.job_id] = (proc, claim.attempt)
            started.append(claim.job_id)
    return started


def end_attempt(
    conn: sqlite3.Connection, root: Path, job_id: str, attempt: int, rc: int | None = None
) -> bool:
    """Record the end of an attempt whose worker did not report it, judged from a cancel
    request, the worker's exit status `rc` (None: unknown, not our child) and its log. False
    when the attempt is not running any more."""
    row = store.job_row(conn, job_id)
    if row is None or row["state"] != "running" or row["attempt"] != attempt:
        return False
    tail, error = store.log_tail(root / job_id / LOG_NAME), None
    if row["cancel_requested"]:
        state = "cancelled"
    elif rc is not None and rc > 0:
        state, error = "failed", f"worker exited with status {rc}:\n{tail}".strip()
    elif rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        state = "interrupted"
        error = f"worker killed by {name} (out of memory, or killed by hand); {RESUME}"
    elif rc == 0:
        state, error = "failed", f"worker exited without reporting:\n{tail}"
    else:
        why = "the job's process was gone (the app, the machine or the job was stopped)"
        state, error = "interrupted", f"{why}; {RESUME}\n{tail}".strip()
    return finish_attempt(conn, job_id, attempt, state, error)


def spawn(
    conn: sqlite3.Connection, root: Path, claim: store.Claim, limit: int
) -> subprocess.Popen | None:
    """Start a claimed job's worker, `python -m gpt.jobs.worker ROOT JOB_ID ATTEMPT`, in its own
    session (it outlives whoever starts it), logging to the job's `log.txt`, holding the job's
    lock (the fd is handed over; ours is closed) and `cores / limit` torch threads unless
    THREADS_ENV says. Records its pid; None when it could not start (the job ends `failed`)."""
    folder = Path(root) / claim.job_id
    env = {**os.environ, store.LOCK_FD_ENV: str(claim.lock)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault(store.THREADS_ENV, str(max(1, (os.cpu_count() or 1) // limit)))
    cmd = [sys.executable, "-u", "-m", store.WORKER_MODULE, str(root), claim.job_id]
    try:
        with open(folder / LOG_NAME, "ab") as out:
            header = f"--- attempt {claim.attempt}, {time.ctime()}, started by pid {os.getpid()}\n"
            out.write(header.encode())
            out.flush()
            proc = subprocess.Popen(
                [*cmd, str(claim.attempt)], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=env, pass_fds=(claim.lock,), cwd=str(folder),
                start_new_session=True,
            )  # fmt: skip
    except OSError as e:
        error = f"could not start the worker: {e}"
        finish_attempt(conn, claim.job_id, claim.attempt, "failed", error)
        return None
    finally:
        store.close_lock(claim.lock)
    store.update(conn, claim.job_id, attempt=claim.attempt, pid=proc.pid)
    return proc
