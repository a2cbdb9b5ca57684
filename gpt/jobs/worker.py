"""The worker: the process that runs one attempt of one job,
`python -m gpt.jobs.worker ROOT JOB_ID ATTEMPT` (started by `gpt.jobs.scheduler.spawn`).

Its output goes to the job's `log.txt`; it holds the job's `worker.lock` until the job's state is
final. It runs `gpt.lab.runs.run` on the spec as stored (checked and resolved at submit), records
every training event in `jobs.db`, writes its own final state, then runs a scheduler round.

SIGTERM asks it to stop: the next training callback raises `StopTraining`, so `fit` writes a
checkpoint at the end of the current step and returns; the job ends `cancelled`.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from gpt.jobs import store
from gpt.jobs.scheduler import schedule
from gpt.jobs.store import LOCK_FD_ENV, THREADS_ENV, finish_attempt, retry_db


class Cancelled(BaseException):  # noqa: N818 (a signal, not an error)
    """SIGTERM before training started: nothing to checkpoint, just stop."""


def main(argv: list[str] | None = None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    if len(argv) != 3:
        print("usage: python -m gpt.jobs.worker ROOT JOB_ID ATTEMPT", file=sys.stderr)
        return 2
    root, job_id, attempt = Path(argv[0]), argv[1], int(argv[2])
    flags = {"stop": False, "training": False, "quota": False, "staged": False}

    def on_term(signum, frame):
        flags["stop"] = flags["stop"] or time.time()
        if not flags["training"]:
            raise Cancelled()

    signal.signal(signal.SIGTERM, on_term)
    faulthandler.enable()  # a crash in native code leaves its traceback in the job's log
    lock = os.environ.pop(LOCK_FD_ENV, "")
    if lock:  # the job's lock, taken by the manager that claimed the job: held until the end
        os.set_inheritable(int(lock), False)
    conn = None
    try:
        import torch

        if (threads := int(os.environ.get(THREADS_ENV, "0") or 0)) > 0:
            torch.set_num_threads(threads)
        conn = retry_db(store.connect, root)
        return _run(conn, root, job_id, attempt, flags)
    except Cancelled:
        return 0  # SIGTERM before `_run` could record it: the cancelling manager records it
    except BaseException as e:
        # Whatever went wrong outside training (the database, an import), the job must end
        # `failed` with the reason, not look like a process that vanished.
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
        _on_db(root, "record the failure", finish_attempt, job_id, attempt, "failed", error)
        return 1
    finally:
        if conn is not None:
            conn.close()
        if lock:  # the job's state is final: let a resume claim it while we start the next
            os.close(int(lock))
        # A round of the scheduler, so a queue drains even with no manager left running.
        _on_db(root, "start the next queued job", schedule, root, retry_s=0)


def _on_db(root: Path, what: str, fn, *args, retry_s: float = 60.0) -> None:
    """`fn(conn, *args)` on a new connection, retried while busy; a failure is only printed."""
    try:
        conn = retry_db(store.connect, root, timeout=retry_s)
        try:
            retry_db(fn, conn, *args, timeout=retry_s)
        finally:
            conn.close()
    except Exception as e:
        print(f"warning: could not {what}: {e}", flush=True)


def _run(conn, root: Path, job_id: str, attempt: int, flags: dict) -> int:
    from gpt.device import choose_device, describe
    from gpt.lab.runs import RunSpec, run
    from gpt.train import state as trainstate
    from gpt.train.loop import StopTraining, TrainEvent

    row = retry_db(store.job_row, conn, job_id)
    if row is None or row["attempt"] != attempt or row["state"] != "running":
        print(f"job {job_id} attempt {attempt} is not ours to run; exiting", flush=True)
        return 0
    retry_db(store.update, conn, job_id, attempt=attempt, pid=os.getpid())
    quota, out = row["disk_quota"], root / job_id / "out"

    def finish(state: str, error: str | None = None, **fields) -> None:
        retry_db(finish_attempt, conn, job_id, attempt, state, error, **fields)

    def write(**fields) -> None:  # progress only: a busy DB skips one update
        with contextlib.suppress(Exception):
            store.update(conn, job_id, attempt=attempt, **fields)

    def on_event(event: TrainEvent) -> None:
        flags["training"] = True
        if event.kind == "stage":  # past training (the test set): shown, never stopped
            if event.metrics["done"] == 0:
                print(f"{event.metrics['stage']} on the test set", flush=True)
            write(stage=json.dumps(event.metrics), eta_s=None)
            flags["staged"] = True
            return
        if flags["staged"]:  # training (re)started after scoring the base model
            flags["staged"] = False
            write(stage=None)
        if event.kind == "note":
            print(event.metrics["message"], flush=True)
        if event.kind == "estimate":
            print(f"estimated: {event.metrics['text']}", flush=True)
            start_s = round(time.time() - row["started"], 1) if row["started"] else None
            store.write_estimate(
                root / job_id, event.metrics["seconds"], event.metrics["text"], start_s=start_s
            )
        try:
            _record(conn, job_id, attempt, event)
        except Exception as e:  # a busy DB loses one row, never the training
            print(f"warning: could not record {event.kind} {event.step}: {e}", flush=True)
        checked = event.kind == "checkpoint" and quota is not None
        if checked and (used := store.jobs_usage(root)) > quota:
            flags["quota"] = True
            print(f"disk quota exceeded ({used:,} > {quota:,} bytes): stopping")
        if flags["stop"] or flags["quota"]:
            raise StopTraining()

    try:
        spec = RunSpec.from_dict(json.loads(row["spec"]))
        resume = bool(row["resume"])
        print(f"job {job_id}: {spec.kind} from {spec.base} on {spec.data} ({spec.method})")
        # $GPT2LAB_DEVICE (inherited from the app or the CLI's --device), else CUDA, MPS, CPU:
        # the loop picks the same one; a device this machine lacks fails the job here, saying why
        print(f"training on {describe(choose_device())}", flush=True)
        if resume and trainstate.list_checkpoints(out / "checkpoints"):
            folder, state, problems = trainstate.latest_valid(out / "checkpoints")
            for p in problems:
                print(f"warning: {p}")
            print(f"resuming from {folder.name}")
            store.rewind_metrics(conn, job_id, state["step"], state)
        elif resume:
            print("no checkpoint yet: starting over")
            resume = False
            store.rewind_metrics(conn, job_id, 0)
        metrics = run(spec, out, callbacks=[on_event], resume=resume, estimate=True)
    except Cancelled:
        print("cancelled before training started", flush=True)
        finish("cancelled")
        return 0
    except Exception as e:
        traceback.print_exc()
        finish("failed", f"{type(e).__name__}: {e}")
        return 1
    if metrics["status"] == "stopped":
        if flags["quota"]:
            finish("failed", f"disk quota exceeded ({quota:,} bytes); delete jobs, then resume")
        else:
            took = time.time() - flags["stop"]
            print(f"cancelled at step {metrics['steps']}, {took:.2f} s after SIGTERM", flush=True)
            finish("cancelled")
        return 0
    test = dict(metrics.get("test", {}))
    if metrics.get("base_test"):  # the same test split scored before training
        test["base"] = metrics["base_test"]
    retry_db(store.record_metric, conn, job_id, "test", metrics["steps"], test)
    if quota is not None:  # under a disk budget a finished job keeps its model, not its
        # optimizer checkpoints (a succeeded job never resumes); running jobs keep their last 2.
        # Dropped before it reports success, so a succeeded job's folder is its final size.
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        print("disk budget: dropped the training checkpoints; the final model stays", flush=True)
    # said before it is so: a succeeded job's log is complete
    print(f"succeeded: {metrics['steps']} steps, test {metrics.get('test', {})}", flush=True)
    finish("succeeded", step=metrics["steps"], max_steps=metrics["max_steps"])
    return 0


def _record(conn, job_id: str, attempt: int, event) -> None:
    if event.kind == "estimate":
        store.update(conn, job_id, attempt=attempt, max_steps=event.max_steps, eta_s=event.eta_s)
    elif event.kind == "step":
        with store.transaction(conn):  # the step's row and the job's progress, together
            store.record_metric(conn, job_id, "step", event.step, event.metrics)
            store.update(conn, job_id, attempt=attempt, step=event.step, max_steps=event.max_steps,
                         loss=event.metrics.get("loss"), eta_s=event.eta_s)  # fmt: skip
    elif event.kind in ("eval", "checkpoint"):
        store.record_metric(conn, job_id, event.kind, event.step, event.metrics)


if __name__ == "__main__":
    try:
        code = main()
    except BaseException:  # noqa: BLE001 (main records every failure; this is a last resort)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and closed; skip the interpreter's teardown, which takes over a
    # second once torch is imported and would eat most of the 2 s a cancel may take.
    os._exit(code)
