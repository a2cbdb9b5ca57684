"""A public Space under attack: hostile clients on loopback against the app in multi-user mode.

    python bench/bench_space.py [--app DIR] [--seconds 15]   # the attacks of issue 20, a table
    python bench/bench_space.py --flood [--clients 20] [--seconds 60] [--budget-gb 0.05]

Starts `python app.py` (offline, multi-user mode, jobs in a temporary folder; `--app` runs the
app.py of another checkout, e.g. an earlier commit unpacked with `git archive`, for a before/
after table), then runs each attack of the issue's Goals table, each bounded in count and time:

- made-up visitors from one address: 8 visitors (tokens from `/visitor`, or made up where the
  app has no such endpoint) each submit a small job: how many are accepted; and a made-up token;
- a 5-token `/generate` of one visitor while another client has 40 queued: its wait;
- a 20 MB request to `/token_bytes`: the answer, its time, how much it echoes, the log's growth;
- `/tokenize` p50/p95 while 100 connections loop `/jobs` for `--seconds`;
- secrets or paths in `/config`; 30 admin-token guesses;
- `/tokenize` and `/jobs` idle, before the attacks.

Then a second app with a tiny disk budget (room for one job beside a finished model, not two)
and a short retention age (`--retention-s`, 60 s), for the jobs rows:

- uploads after their job is deleted: a visitor uploads a file as the browser does
  (`/gradio_api/upload`), starts a job with it, then deletes the job: whether the upload's
  `/gradio_api/file=` URL still answers and whether its copies are still on disk;
- a finished model under others' submissions: visitor A's job (on an upload) succeeds, then 6
  made-up visitors submit jobs that would fit only if A's model went: whether it is kept, and
  whether it (and its data) goes once past the retention age, to the next submission.

`--flood` runs the earlier mixed flood:
light probes, heavy clients, job submitters and hostile clients for `--seconds`. Writes
bench/results/space.json (`--flood`: space-flood.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_app import TEXT_256, TEXT_2000, free_port, start  # noqa: E402
from bench.common import print_table, save  # noqa: E402
from gpt.jobs import dir_size  # noqa: E402

KINDS = [  # (what an error message says, its kind)
    (r"already have \d+ job", "per-visitor limit"),
    (r"from your network address", "per-address share"),
    (r"not issued by this server", "unsigned token"),
    (r"already have \d+ runs", "per-session heavy cap"),
    (r"server is busy", "queue group full"),
    (r"queue is full", "queue full"),
    (r"(?i)disk quota", "disk budget"),
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


def visitor_token(client) -> str:
    """A visitor token for `client`: from the app's `/visitor` endpoint, or made up (32 random
    URL-safe characters) where the app has none (an earlier version)."""
    try:
        return client.predict(api_name="/visitor")
    except Exception:  # noqa: BLE001 (no such endpoint)
        return secrets.token_urlsafe(32)


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


def flood(args: argparse.Namespace) -> None:
    from gradio_client import Client
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
            token = visitor_token(c)
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
            token = visitor_token(c)
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
            token = visitor_token(c)
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
                table = client.predict("", api_name="/jobs")
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
    print(f"\nwrote {save('space-flood', results)}")


def stop_app(proc: subprocess.Popen, log) -> None:
    """Stop an app `start_app` started (killed after 20 s) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def start_app(env: dict, log, app_dir: Path) -> tuple[subprocess.Popen, str]:
    """`python app.py` of `app_dir` on a free loopback port, its output to `log`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=app_dir, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the app exited during start-up") from None
            time.sleep(0.2)
    raise RuntimeError("the app did not start in 180 s")


def stats(xs: list[float]) -> str:
    if not xs:
        return "no answers"
    return (
        f"p50 {statistics.median(xs) * 1000:.0f} ms, p95 {percentile(xs, 0.95) * 1000:.0f} ms "
        f"({len(xs)} calls)"
    )


def raw_jobs_loop(url: str, stop: threading.Event, done: list) -> None:
    """One connection looping `/jobs` through Gradio's plain HTTP API (POST, then its stream)."""
    body = json.dumps({"data": [""]}).encode()
    while not stop.is_set():
        try:
            post = urllib.request.Request(
                f"{url}gradio_api/call/jobs", body, {"Content-Type": "application/json"}
            )
            event = json.loads(urllib.request.urlopen(post, timeout=30).read())["event_id"]
            urllib.request.urlopen(f"{url}gradio_api/call/jobs/{event}", timeout=60).read()
            done[0] += 1
        except Exception:  # noqa: BLE001 (refused or overloaded: counted by the probe)
            done[1] += 1
            time.sleep(0.2)


def big_request(url: str, size: int) -> dict:
    """POST a `size`-byte JSON body to /token_bytes, 1 MB at a time, reading any early answer;
    its status, seconds, how much of the body was sent before the answer, and (when the app
    took it) how many characters of the value its answer echoes."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    payload = json.dumps({"data": ["A" * size, "x"]}).encode()
    head = (
        f"POST /gradio_api/call/token_bytes HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
        f"application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    sent, answer = 0, b""
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        while sent < len(payload):
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break  # answered before the body was sent
            try:
                sent += sock.send(payload[sent : sent + 2**20])
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                break
        sock.settimeout(120)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    text = answer.decode("utf-8", "replace")
    status = text.split(" ", 2)[1] if text.startswith("HTTP/") else "no answer"
    seconds = time.perf_counter() - t0
    echoed = 0
    if status == "200":
        event = json.loads(text.split("\r\n\r\n", 1)[1])["event_id"]
        result = urllib.request.urlopen(
            f"{url}gradio_api/call/token_bytes/{event}", timeout=120
        ).read().decode("utf-8", "replace")
        seconds = time.perf_counter() - t0
        echoed = max((len(m) for m in re.findall(r"A+", result)), default=0)
    return {
        "status": status, "seconds": round(seconds, 2), "sent_mb": round(sent / 1e6, 1),
        "echoed_chars": echoed,
    }  # fmt: skip


def attacks(args: argparse.Namespace) -> None:
    from gradio_client import Client

    app_dir = Path(args.app).resolve() if args.app else ROOT
    results: dict = {"app": str(app_dir)}
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = write_files(tmp / "data")
        jobs_dir = tmp / "jobs"
        log_path = tmp / "server.log"
        admin = secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GPT2LAB_JOBS_DIR": str(jobs_dir),
            "GPT2LAB_MULTIUSER": "1",
            "GPT2LAB_JOB_THREADS": "1",
            "GPT2LAB_ADMIN_TOKEN": admin,
        }
        env.pop("SPACE_ID", None)
        log = open(log_path, "wb")  # noqa: SIM115 (the app writes it until it stops)
        t0 = time.perf_counter()
        proc, url = start_app(env, log, app_dir)
        results["startup_s"] = round(time.perf_counter() - t0, 1)

        def log_state() -> tuple[int, int]:
            log.flush()
            text = log_path.read_text(encoding="utf-8", errors="replace")
            return len(text.encode()), text.count("Traceback")

        try:
            probe = Client(url, verbose=False)
            token = visitor_token(probe)

            # light endpoints, idle
            idle = {"tokenize": [], "jobs": []}
            for _ in range(10):
                for name, call in (
                    ("tokenize", lambda: probe.predict(TEXT_2000, False, api_name="/tokenize")),
                    ("jobs", lambda: probe.predict(token, api_name="/jobs")),
                ):
                    t = time.perf_counter()
                    call()
                    idle[name].append(time.perf_counter() - t)
            results["idle"] = {k: stats(v) for k, v in idle.items()}
            rows.append(["/tokenize idle (2,000 characters)", results["idle"]["tokenize"]])
            rows.append(["/jobs idle", results["idle"]["jobs"]])

            # made-up visitors from one address
            accepted, refusals, mine = 0, Counter(), []
            for _ in range(8):
                c = Client(url, verbose=False)
                t = visitor_token(c)
                try:
                    _, job_id = c.predict(*form(files["good"]), t, api_name="/start_job")
                    accepted += 1
                    mine.append((c, job_id, t))
                except Exception as e:  # noqa: BLE001
                    refusals[kind_of(e)] += 1
            try:
                made_up = secrets.token_urlsafe(32) + "." + secrets.token_urlsafe(32)[:43]
                probe.predict(*form(files["good"]), made_up, api_name="/start_job")
                forged = "accepted"
            except Exception as e:  # noqa: BLE001
                forged = "refused: " + str(e)[:70]
            for c, job_id, t in mine:
                with contextlib.suppress(Exception):
                    c.predict(job_id, t, "", api_name="/cancel_job")
            results["made_up_visitors"] = {
                "accepted": accepted, "of": 8, "refusals": dict(refusals), "forged": forged
            }
            rows.append([
                "made-up visitors' submissions from one address",
                f"{accepted} of 8 accepted ({', '.join(f'{k} {v}' for k, v in refusals.items())})",
            ])  # fmt: skip
            rows.append(["a token the server did not issue", forged])
            retention_row = len(rows)
            rows.append(["a finished model, under others' submissions at a tiny budget", "-"])

            # a visitor's 5-token /generate while one client has 40 queued
            flooder = Client(url, verbose=False)
            gen = ("starter", "Once upon a time", 0.8, 40, 0.95, 1.0, 32, 1)
            flood_jobs = [flooder.submit(*gen, api_name="/generate") for _ in range(40)]
            time.sleep(1.0)
            victim = Client(url, verbose=False)
            t = time.perf_counter()
            try:
                victim.predict("starter", "Hello", 0.8, 40, 0.95, 1.0, 5, 2, api_name="/generate")
                wait = f"{time.perf_counter() - t:.1f} s"
            except Exception as e:  # noqa: BLE001
                wait = f"failed after {time.perf_counter() - t:.1f} s: {str(e)[:60]}"
            refused_flood = 0
            for job in flood_jobs:
                try:
                    job.result(timeout=0.1 if refused_flood else 5)
                except Exception as e:  # noqa: BLE001
                    refused_flood += "already have" in str(e)
                    with contextlib.suppress(Exception):
                        job.cancel()
            results["generate_wait"] = wait
            rows.append([
                "a visitor's 5-token /generate while one client has 40 queued",
                f"{wait} (the flood: {refused_flood} of 40 refused at once)",
            ])  # fmt: skip
            time.sleep(3)

            # a 20 MB request
            size0, tb0 = log_state()
            big = big_request(url, 20_000_000)
            time.sleep(1)
            size1, tb1 = log_state()
            big.update(log_growth_bytes=size1 - size0, tracebacks=tb1 - tb0)
            results["big_request"] = big
            rows.append([
                "20 MB request to /token_bytes",
                f"HTTP {big['status']} in {big['seconds']} s ({big['sent_mb']} MB sent), echoes "
                f"{big['echoed_chars']:,} "
                f"characters, log +{big['log_growth_bytes']:,} bytes, "
                f"{big['tracebacks']} traceback(s)",
            ])  # fmt: skip
            uploads_row = len(rows)
            rows.append(["uploads after their job is deleted", "-"])

            # /tokenize while 100 connections loop /jobs
            stop, done = threading.Event(), [0, 0]
            loops = [
                threading.Thread(target=raw_jobs_loop, args=(url, stop, done), daemon=True)
                for _ in range(100)
            ]
            for th in loops:
                th.start()
            time.sleep(2)
            lat, failed = [], 0
            end = time.time() + args.seconds
            while time.time() < end:
                t = time.perf_counter()
                try:
                    probe.predict(TEXT_2000, False, api_name="/tokenize")
                    lat.append(time.perf_counter() - t)
                except Exception:  # noqa: BLE001
                    failed += 1
                time.sleep(0.1)
            stop.set()
            for th in loops:
                th.join(timeout=70)
            results["tokenize_under_jobs_flood"] = {
                "stats": stats(lat), "failed": failed, "jobs_answered": done[0],
                "jobs_failed": done[1],
            }  # fmt: skip
            rows.append([
                "/tokenize while 100 connections loop /jobs",
                f"{stats(lat)}; {failed} failed; /jobs answered {done[0]}, refused {done[1]}",
            ])  # fmt: skip

            # secrets and paths in what every visitor gets
            config = urllib.request.urlopen(url + "config", timeout=30).read().decode()
            seen = []
            for name in (".visitor-key", ".browser-state-secret"):
                path = jobs_dir / name
                if path.exists() and path.read_text().strip() in config:
                    seen.append(f"{name} content")
            if str(jobs_dir) in config or str(tmp) in config:
                seen.append("the jobs folder's path")
            results["config_secrets"] = seen
            rows.append(["secrets or paths in /config", ", ".join(seen) or "none"])

            # admin-token guesses
            answers = Counter()
            t = time.perf_counter()
            for i in range(30):
                try:
                    probe.predict("20260101-000000-abcdef", token, f"guess-{i}",
                                  api_name="/cancel_job")  # fmt: skip
                    answers["answered"] += 1
                except Exception as e:  # noqa: BLE001
                    answers["locked" if "locked" in str(e) else "checked"] += 1
            rows.append([
                "30 admin-token guesses",
                f"{answers['checked'] + answers['answered']} checked, {answers['locked']} locked "
                f"out ({30 / (time.perf_counter() - t):.0f}/s)",
            ])  # fmt: skip
            results["admin_guesses"] = dict(answers)
            size, tracebacks = log_state()
            results["log"] = {"bytes": size, "tracebacks": tracebacks}
            rows.append(["server log at the end", f"{size:,} bytes, {tracebacks} traceback(s)"])
        finally:
            stop_app(proc, log)
        try:
            uploads, kept = job_attacks(args, app_dir, files, tmp / "jobs-app")
        except Exception as e:  # noqa: BLE001 (an earlier app without the endpoints)
            uploads = kept = {"said": f"could not run: {type(e).__name__}: {str(e)[:80]}"}
        results["uploads_after_delete"], results["kept_under_submissions"] = uploads, kept
        rows[uploads_row][1], rows[retention_row][1] = uploads["said"], kept["said"]
    print_table(
        f"Attacks on the app in multi-user mode, loopback ({app_dir.name}, "
        f"{os.cpu_count()} cores)",
        ["Attack", "What happened"],
        rows,
    )
    print(f"\nwrote {save('space', results)}")


def file_answers(url: str, path: str | Path) -> int:
    """The HTTP status of `path` at the app's `/gradio_api/file=` URL (anyone's way to it)."""
    try:
        with urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_job(client, token: str, job_id: str, timeout: float) -> str:
    """The job's state once it has left queued/running (or `timeout` s passed)."""
    end, state = time.time() + timeout, "?"
    while time.time() < end:
        table = client.predict(token, api_name="/jobs")
        state = next((row[4] for row in table["data"] if row[0] == job_id), "gone")
        if state not in ("queued", "running"):
            return state
        time.sleep(0.5)
    return state


def job_attacks(args: argparse.Namespace, app_dir: Path, files: dict, tmp: Path) -> tuple:
    """The jobs rows, on an app of their own: a disk budget with room for one job beside a
    finished starter-spam model but not two, finished jobs kept `args.retention_s`, Gradio's
    cache in `tmp` (to look at the disk). ({uploads row}, {kept row}), each with "said"."""
    import httpx
    from gradio_client import Client

    from gpt.lab.names import resolve
    from gpt.lab.runs import expected_bytes

    spec = {"base": "starter-spam", "method": "last_blocks"}
    weights = sum(p.stat().st_size for p in resolve("starter-spam").folder.glob("*.safetensors"))
    need = expected_bytes(spec) + files["good"].stat().st_size
    budget = need + weights // 2  # a finished model (>= its weights) plus a new job: over it
    jobs_dir, cache = tmp / "jobs", tmp / "gradio"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(cache),
        "GPT2LAB_JOBS_DIR": str(jobs_dir),
        "GPT2LAB_MULTIUSER": "1",
        "GPT2LAB_JOB_THREADS": "1",
        "GPT2LAB_DISK_BUDGET_GB": f"{budget / 1e9:.9f}",
        "GPT2LAB_RETENTION_HOURS": f"{args.retention_s / 3600:.6f}",
    }
    env.pop("SPACE_ID", None)
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 (the app writes it until it stops)
    proc, url = start_app(env, log, app_dir)
    uploads: dict = {}
    kept: dict = {"budget_mb": round(budget / 1e6, 2), "retention_s": args.retention_s}
    try:
        client = Client(url, verbose=False)

        # uploads after their job is deleted
        owner = visitor_token(client)
        with files["good"].open("rb") as f:  # as the browser sends it, before Start
            (cached,) = httpx.post(f"{url}gradio_api/upload", files={"files": f}, timeout=30).json()
        before = file_answers(url, cached)
        _, job_id = client.predict(*form(files["good"], 4, eval_every=2), owner,
                                   api_name="/start_job")  # fmt: skip
        copy = jobs_dir / job_id / "data" / files["good"].name
        at_start = (file_answers(url, cached), Path(cached).exists(), copy.is_file())
        copy_served = file_answers(url, copy)
        said = client.predict(job_id, owner, "", api_name="/delete_job")
        left = [p for p in (Path(cached), copy, jobs_dir / job_id) if p.exists()]
        left += [p for p in cache.rglob(files["good"].name)]
        uploads.update(
            upload_url_before=before, upload_url_after_start=at_start[0],
            upload_on_disk_after_start=at_start[1], job_copy_made=at_start[2],
            job_copy_url=copy_served, delete=said[:60], upload_url_after_delete=file_answers(
                url, cached), job_copy_url_after_delete=file_answers(url, copy),
            left_on_disk=[str(p) for p in left],
        )  # fmt: skip
        gone = (
            not left and uploads["upload_url_after_delete"] != 200
            and uploads["job_copy_url_after_delete"] != 200
        )  # fmt: skip
        uploads["said"] = (
            f"{'gone' if gone else 'NOT GONE'}: its file= URL {before} after the upload, "
            f"{at_start[0]} once its job copied it; the job's copy {copy_served} (never served);"
            f" after the delete: URLs {uploads['upload_url_after_delete']} / "
            f"{uploads['job_copy_url_after_delete']}, {len(left)} file(s) left on disk"
        )

        # a finished model, under others' submissions at a tiny budget
        a = visitor_token(client)
        _, a_job = client.predict(*form(files["good"], 4, eval_every=2), a, api_name="/start_job")
        state = wait_job(client, a, a_job, args.drain)
        finished = time.time()
        model = jobs_dir / a_job / "out" / "model"
        a_copy = jobs_dir / a_job / "data" / files["good"].name
        kept.update(a_state=state, a_mb=round(dir_size(jobs_dir / a_job) / 1e6, 2))
        refusals: Counter[str] = Counter()
        others = 6
        for _ in range(others):
            token = visitor_token(client)
            try:
                _, other = client.predict(*form(None, 4, data="bundled"), token,
                                          api_name="/start_job")  # fmt: skip
                refusals["accepted"] += 1
                with contextlib.suppress(Exception):
                    client.predict(other, token, "", api_name="/delete_job")
            except Exception as e:  # noqa: BLE001
                refusals[kind_of(e)] += 1
        survived = model.is_dir() and (model / "config.json").is_file()
        listed = wait_job(client, a, a_job, 1)
        kept.update(others=others, refusals=dict(refusals), survived=survived, listed=listed,
                    seconds_after_success=round(time.time() - finished, 1))  # fmt: skip
        time.sleep(max(0.0, finished + args.retention_s + 2 - time.time()))
        late = visitor_token(client)
        try:
            _, other = client.predict(*form(None, 4, data="bundled"), late,
                                      api_name="/start_job")  # fmt: skip
            after_age = "accepted"
            with contextlib.suppress(Exception):
                client.predict(other, late, "", api_name="/delete_job")
        except Exception as e:  # noqa: BLE001
            after_age = kind_of(e)
        log.flush()
        pruned = f"pruned job {a_job}" in log_path.read_text(encoding="utf-8", errors="replace")
        kept.update(after_age=after_age, pruned_after_age=pruned,
                    gone_after_age=not (jobs_dir / a_job).exists() and not a_copy.exists())  # fmt: skip
        ok = state == "succeeded" and survived and listed == "succeeded" and not refusals["accepted"]
        kept["said"] = (
            f"{'kept' if ok else 'NOT KEPT'}: A's model ({state}, {kept['a_mb']} MB, budget "
            f"{kept['budget_mb']} MB) through {others} others' submissions "
            f"({', '.join(f'{k} {v}' for k, v in refusals.items())}); past its "
            f"{args.retention_s:.0f} s retention age the next one was {after_age} and A's job "
            f"{'was pruned with its data (logged)' if pruned and kept['gone_after_age'] else 'stayed'}"
        )
    finally:
        stop_app(proc, log)
    return uploads, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flood", action="store_true", help="the mixed flood instead of the attacks")
    ap.add_argument("--app", help="the checkout whose app.py to run (default: this one)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=None, help="attacks: 15; flood: 60")
    ap.add_argument("--budget-gb", type=float, default=0.05)
    ap.add_argument("--drain", type=float, default=180, help="seconds to let accepted jobs end")
    ap.add_argument("--retention-s", type=float, default=60,
                    help="attacks: the jobs app's retention age (GPT2LAB_RETENTION_HOURS)")
    args = ap.parse_args()
    if args.flood:
        args.seconds = args.seconds or 60
        flood(args)
    else:
        args.seconds = args.seconds or 15
        attacks(args)


if __name__ == "__main__":
    main()
