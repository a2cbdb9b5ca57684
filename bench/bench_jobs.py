"""Background jobs as a user meets them: how soon a job starts training, and how soon Cancel stops it.

    python bench/bench_jobs.py [--repeats 3]

Each repeat submits a classify job (`preset:tiny`, a byte tokenizer, 40 made-up messages written
here, one thread, as in tests/test_jobs.py) that would run for 100,000 steps, times submit() to
the first step reported by the worker process, lets it reach step 2, and times cancel() until it
returns with the job cancelled and its worker gone. The test suite checks that cancel stops the
job and keeps a checkpoint; the time it takes is measured here, not asserted on a shared
machine. Writes bench/results/jobs.json; prints the load average (`os.getloadavg`), since the
figures depend on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import print_table, save  # noqa: E402


def write_files(folder: Path) -> dict:
    """A byte tokenizer and 40 SMS-like lines; the spec of a job that never ends by itself."""
    import gpt

    tok = gpt.Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256})
    tok.save(folder / "tok.json")
    lines = [
        f"spam\tWIN a free prize now, call {i}" if i % 3 == 0 else f"ham\tsee you at lunch {i}"
        for i in range(40)
    ]
    (folder / "sms.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "kind": "classify",
        "base": "preset:tiny",
        "tokenizer": str(folder / "tok.json"),
        "data": str(folder / "sms.tsv"),
        "method": "full",
        "max_steps": 100_000,
        "batch_size": 4,
        "eval_every": 100_000,
        "checkpoint_every": 2,
    }


def wait_for(pred, timeout: float = 120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := pred():
            return value
        time.sleep(0.01)
    raise TimeoutError("the job did not get there in time")


def one_run(root: Path, spec: dict) -> tuple[float, float]:
    """(seconds from submit to the first step, seconds cancel() takes) for one job."""
    from gpt.jobs import JobManager

    with JobManager(root) as jobs:
        t0 = time.perf_counter()
        job_id = jobs.submit(spec)
        wait_for(lambda: jobs.get(job_id).step >= 1)
        first = time.perf_counter() - t0
        wait_for(lambda: jobs.get(job_id).step >= 2)
        t0 = time.perf_counter()
        status = jobs.cancel(job_id)
        cancel = time.perf_counter() - t0
        if status.state != "cancelled":
            raise RuntimeError(f"cancel left the job {status.state}")
    return first, cancel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ["GPT2LAB_JOB_THREADS"] = "1"
    load_before = os.getloadavg()
    firsts, cancels = [], []
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_files(Path(tmp))
        for i in range(args.repeats):
            first, cancel = one_run(Path(tmp) / f"jobs-{i}", spec)
            firsts.append(first)
            cancels.append(cancel)
    first, cancel = statistics.median(firsts), statistics.median(cancels)
    rows = [
        ["Submit to first training step (a new worker process)", f"{first:.2f} s", ""],
        ["cancel() of a running job, until it returns cancelled", f"{cancel:.2f} s", "< 2 s"],
    ]
    print_table(
        f"Background jobs, median of {args.repeats} (load average {load_before[0]:.1f})",
        ["What", "Measured", "Goal"],
        rows,
    )
    path = save(
        "jobs",
        {
            "load_before": load_before,
            "first_step_s": first,
            "cancel_s": cancel,
            "cancel_max_s": max(cancels),
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
