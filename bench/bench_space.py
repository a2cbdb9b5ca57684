"""A public Space under a flood: hostile clients on loopback against the app in multi-user mode.

    python bench/bench_space.py [--clients 20] [--seconds 60] [--budget-gb 0.05]

Starts `python app.py` (offline, multi-user mode, a small disk budget, jobs in a temporary
folder), then for `--seconds` runs `--clients` concurrent clients:

- 2 light probes: `/tokenize` (2,000 characters) and `/jobs`, timed all along;
- heavy clients: `/generate` (starter, 32 tokens), `/attention` (256 tokens), `/classify`;
- job clients, each its own visitor (browser token): submit small fine-tuning jobs over and over,
  so most submissions hit the one-job-per-visitor limit, the queue limit or the disk budget;
- hostile clients: binary and malformed uploads, absurd settings, no token, another visitor's
  job to cancel or delete.

It reports figures, not pass/fail: p50/p95 of `/tokenize` and `/jobs` during the flood, errors
by kind, whether every accepted job finished (or was pruned by the budget, as the server log
says) with a model that loads, the most disk the job folders used against the budget, and
tracebacks in the server log. Writes bench/results/space.json.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_app import TEXT_256, TEXT_2000, start  # noqa: E402
from bench.common import print_table, save  # noqa: E402
from gpt.jobs import dir_size  # noqa: E402

KINDS = [  # (what an error message says, its kind)
    (r"already have \d+ job", "per-visitor limit"),
    (r"queue is full", "queue full"),
    (r"disk quota", "disk budget"),
    (r"belongs to another visitor", "not the owner"),
    (r"no visitor token", "no visitor token"),
    (r"examples per job", "size cap"),
    (r"upload it again|is not one|Choose a file|label", "bad upload"),
    (r"must be|does not fit", "bad setting"),
    (r"no job", "unknown job"),
]


def kind_of(error: BaseException) -> str:
    text = str(error)
    for pattern, kind in KINDS:
        if re.search(pattern, text):
            return kind
    return f"other: {type(error).__name__}: {text[:80]}"


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def write_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "sms.tsv"
    rows = [
        ("spam", f"WIN a free prize number {i}, call now!") if i % 3 == 0 else ("ham", f"ok {i}")
        for i in range(60)
    ]
    good.write_text("".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    binary = folder / "blob.tsv"
    binary.write_bytes(bytes(range(256)) * 40)
    columns = folder / "columns.csv"
    columns.write_text("foo,bar\n1,2\n", encoding="utf-8")
    wrong = folder / "notes.json"
    wrong.write_text("[]", encoding="utf-8")
    return {"good": good, "binary": binary, "columns": columns, "wrong": wrong}


def form(upload, max_steps: int = 20, **over) -> list:
    from gradio_client import handle_file

    args = dict(
        kind="classify",
        base="starter-spam",
        data="upload",
        upload=handle_file(str(upload)) if upload else None,
        method="last_blocks",
        epochs=1,
        lr="1e-4",
        batch_size=8,
        max_steps=max_steps,
        eval_every=10,
    )
    args.update(over)
    return list(args.values())


def main() -> None:
    from gradio_client import Client

    from pages.visitors import new_token

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--budget-gb", type=float, default=0.05)
    ap.add_argument("--drain", type=float, default=180, help="seconds to let accepted jobs end")
    args = ap.parse_args()
    light_n, hostile_n, jobs_n = 2, 2, 4
    heavy_n = max(1, args.clients - light_n - hostile_n - jobs_n)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = write_files(tmp / "data")
        jobs_dir = tmp / "jobs"
        log_path = tmp / "server.log"
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GPT2LAB_JOBS_DIR": str(jobs_dir),
            "GPT2LAB_MULTIUSER": "1",
            "GPT2LAB_DISK_BUDGET_GB": str(args.budget_gb),
            "GPT2LAB_JOB_THREADS": "1",
        }
        budget = int(args.budget_gb * 1e9)
        log = open(log_path, "wb")  # noqa: SIM115 (the app writes it until it stops)
        proc, url, startup = start(env, log)
        stop = threading.Event()
        lock = threading.Lock()
        lat: dict[str, list[float]] = {"tokenize": [], "jobs": [], "heavy": []}
        errors: Counter[str] = Counter()
        calls: Counter[str] = Counter()
        accepted: dict[str, str] = {}  # job id -> its visitor token
        disk_max = [0]

        def timed(kind: str, fn) -> None:
            t0 = time.perf_counter()
            try:
                fn()
            except Exception as e:  # every refusal is a figure, not a failure
                with lock:
                    errors[kind_of(e)] += 1
                return
            finally:
                with lock:
                    calls[kind] += 1
            with lock:
                lat.setdefault(kind, []).append(time.perf_counter() - t0)

        def light(endpoint: str) -> None:
            c = Client(url, verbose=False)
            token = new_token()
            while not stop.is_set():
                if endpoint == "tokenize":
                    timed("tokenize", lambda: c.predict(TEXT_2000, False, api_name="/tokenize"))
                else:
                    timed("jobs", lambda: c.predict(token, api_name="/jobs"))
                time.sleep(0.2)

        def heavy(i: int) -> None:
            c = Client(url, verbose=False)
            rng = random.Random(i)
            calls_ = [
                lambda: c.predict(
                    "starter", f"User {i}", 0.8, 40, 0.95, 1.0, 32, i, api_name="/generate"
                ),
                lambda: c.predict("starter", TEXT_256, 0, 0, "Show", -1, api_name="/attention"),
                lambda: c.predict("starter-spam", "WIN a free prize now!", api_name="/classify"),
            ]
            while not stop.is_set():
                timed("heavy", rng.choice(calls_))

        def submitter(i: int) -> None:
            c = Client(url, verbose=False)
            token = new_token()
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    _, job_id = c.predict(*form(files["good"]), token, api_name="/start_job")
                    with lock:
                        accepted[job_id] = token
                        lat.setdefault("start_job", []).append(time.perf_counter() - t0)
                except Exception as e:
                    with lock:
                        errors[kind_of(e)] += 1
                with lock:
                    calls["start_job"] += 1
                time.sleep(0.5)

        def hostile(i: int) -> None:
            c = Client(url, verbose=False)
            token = new_token()
            rng = random.Random(100 + i)
            attacks = [
                lambda: c.predict(*form(files["binary"]), token, api_name="/start_job"),
                lambda: c.predict(*form(files["columns"]), token, api_name="/start_job"),
                lambda: c.predict(*form(files["wrong"]), token, api_name="/start_job"),
                lambda: c.predict(*form(files["good"], epochs=1000), token, api_name="/start_job"),
                lambda: c.predict(
                    *form(files["good"], max_steps=99_999), token, api_name="/start_job"
                ),
                lambda: c.predict(*form(files["good"]), api_name="/start_job"),  # no token
                lambda: c.predict("../../etc/passwd", token, "", api_name="/delete_job"),
            ]

            def steal():
                with lock:
                    victims = list(accepted)
                if victims:
                    c.predict(rng.choice(victims), token, "guess", api_name="/cancel_job")

            attacks.append(steal)
            while not stop.is_set():
                timed("hostile", rng.choice(attacks))

        def watch_disk() -> None:
            while not stop.is_set():
                disk_max[0] = max(disk_max[0], dir_size(jobs_dir))
                time.sleep(0.5)

        threads = [threading.Thread(target=light, args=(e,)) for e in ("tokenize", "jobs")]
        threads += [threading.Thread(target=heavy, args=(i,)) for i in range(heavy_n)]
        threads += [threading.Thread(target=submitter, args=(i,)) for i in range(jobs_n)]
        threads += [threading.Thread(target=hostile, args=(i,)) for i in range(hostile_n)]
        threads.append(threading.Thread(target=watch_disk))
        load_before = os.getloadavg()
        try:
            t0 = time.time()
            for t in threads:
                t.start()
            time.sleep(args.seconds)
            stop.set()
            for t in threads:
                t.join(timeout=120)
            flood_s = time.time() - t0
            load_after = os.getloadavg()

            # every accepted job: finished (with a model that loads) or pruned, as logged
            client = Client(url, verbose=False)
            end = time.time() + args.drain
            while time.time() < end:
                table = client.predict(new_token(), api_name="/jobs")
                states = {row[0]: row[4] for row in table["data"]}
                if not any(s in ("queued", "running") for s in states.values()):
                    break
                time.sleep(1)
            disk_end = dir_size(jobs_dir)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
        server_log = log_path.read_text(encoding="utf-8", errors="replace")

        import gpt

        pruned = set(re.findall(r"pruned job (\S+)", server_log))
        import sqlite3

        db = sqlite3.connect(jobs_dir / "jobs.db")
        reasons = dict(db.execute("SELECT id, error FROM jobs WHERE state = 'failed'").fetchall())
        db.close()
        outcome: Counter[str] = Counter()
        for job_id in accepted:
            state = states.get(job_id)
            if state is None:
                outcome["pruned (logged)" if job_id in pruned else "LOST"] += 1
                continue
            if state == "succeeded":  # its model loads: not corrupted
                try:
                    gpt.load_model(str(jobs_dir / job_id / "out" / "model"))
                except Exception as e:
                    state = f"CORRUPTED ({type(e).__name__})"
            if state == "failed":
                state = f"failed ({(reasons.get(job_id) or '?').splitlines()[0][:60]})"
            outcome[state] += 1
    tok = lat["tokenize"]
    results = {
        "clients": args.clients,
        "seconds": round(flood_s, 1),
        "heavy_clients": heavy_n,
        "load_before": load_before,
        "load_after": load_after,
        "startup_s": round(startup, 1),
        "tokenize_p50_ms": round(statistics.median(tok) * 1000) if tok else None,
        "tokenize_p95_ms": round(percentile(tok, 0.95) * 1000) if tok else None,
        "tokenize_n": len(tok),
        "jobs_p50_ms": round(statistics.median(lat["jobs"]) * 1000) if lat["jobs"] else None,
        "jobs_p95_ms": round(percentile(lat["jobs"], 0.95) * 1000) if lat["jobs"] else None,
        "heavy_p50_s": round(statistics.median(lat["heavy"]), 2) if lat["heavy"] else None,
        "heavy_n": len(lat["heavy"]),
        "calls": dict(calls),
        "errors": dict(errors.most_common()),
        "accepted_jobs": len(accepted),
        "job_outcomes": dict(outcome),
        "disk_budget_mb": budget / 1e6,
        "disk_max_mb": round(disk_max[0] / 1e6, 1),
        "disk_end_mb": round(disk_end / 1e6, 1),
        "server_tracebacks": server_log.count("Traceback"),
    }
    rows = [
        [
            "/tokenize during the flood (p50 / p95)",
            f"{results['tokenize_p50_ms']} ms / {results['tokenize_p95_ms']} ms ({len(tok)} calls)",
        ],
        [
            "/jobs during the flood (p50 / p95)",
            f"{results['jobs_p50_ms']} ms / {results['jobs_p95_ms']} ms",
        ],
        ["heavy requests served (p50)", f"{results['heavy_n']} ({results['heavy_p50_s']} s)"],
        ["errors by kind", ", ".join(f"{k}: {v}" for k, v in errors.most_common()) or "none"],
        [
            "accepted jobs and how they ended",
            f"{len(accepted)}: " + ", ".join(f"{k} {v}" for k, v in outcome.items()),
        ],
        [
            "job folders: most / at the end / budget",
            f"{results['disk_max_mb']} / {results['disk_end_mb']} / {budget / 1e6:.0f} MB",
        ],
        ["tracebacks in the server log", str(results["server_tracebacks"])],
        ["load average before / after", f"{load_before[0]:.1f} / {load_after[0]:.1f}"],
    ]
    print_table(
        f"{args.clients} clients for {args.seconds:.0f} s on loopback (multi-user mode)",
        ["What", "Measured"],
        rows,
    )
    print(f"\nwrote {save('space', results)}")


if __name__ == "__main__":
    main()
