"""The app as a user meets it: start-up time, tab latencies, memory, and 8 users at once.

    python bench/bench_app.py [--skip-gpt2]

Starts `python app.py` on a free port (offline: the starter models are the defaults), then
through gradio_client measures the tokenizer tab on 2,000 characters, the attention tab on
256 tokens, the first streamed token of /generate, and 8 concurrent /generate users. With a
randomly initialised GPT-2 124M folder (Hugging Face layout, made here) it measures the app's
resident memory once that model is loaded. Writes bench/results/app.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import print_table, save  # noqa: E402

TEXT_2000 = ("The quick brown fox jumps over the lazy dog, café 日本 🙂 1234. " * 40)[:2000]
TEXT_256 = " ".join(f"word{i % 50}" for i in range(200))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(env: dict, log: Any = subprocess.DEVNULL) -> tuple[subprocess.Popen, str, float]:
    """`python app.py` on a free port, its output to `log`; (process, url, seconds to start)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**env, "GRADIO_SERVER_PORT": str(port)},
    )
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the app exited during start-up") from None
            time.sleep(0.1)


def median_time(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from gradio_client import Client

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-gpt2", action="store_true", help="skip the 124M memory measurement")
    args = ap.parse_args()
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GPT2LAB_JOBS_DIR": str(Path(tmp) / "jobs"),
        }
        if not args.skip_gpt2:
            from transformers import GPT2Config, GPT2LMHeadModel

            GPT2LMHeadModel(GPT2Config()).save_pretrained(Path(tmp) / "models" / "gpt2")
            env["GPT2LAB_MODELS_DIR"] = str(Path(tmp) / "models")
        proc, url, startup = start(env)
        try:
            rows.append(["`python app.py` to first page served", f"{startup:.1f} s", "< 15 s"])
            results["startup_s"] = startup
            client = Client(url, verbose=False)
            time.sleep(5)  # let the background warm-up load the default models
            tok = median_time(lambda: client.predict(TEXT_2000, False, api_name="/tokenize"), 5)
            rows.append(["Tokenizer tab, 2,000 characters", f"{tok * 1000:.0f} ms", "< 200 ms"])
            model = "starter"
            att = median_time(
                lambda: client.predict(model, TEXT_256, 0, 0, "Show", -1, api_name="/attention"), 3
            )
            rows.append(
                [f"Attention heatmaps, 256 tokens, {model}", f"{att * 1000:.0f} ms", "< 1 s"]
            )

            def first_token() -> float:
                t0 = time.perf_counter()
                job = client.submit(
                    model, "Once upon a time", 0.8, 40, 0.95, 1.0, 32, 1, api_name="/generate"
                )
                while job.status().code.name != "FINISHED" and not job.outputs():
                    time.sleep(0.005)
                first = time.perf_counter() - t0
                job.result()
                return first

            ft = statistics.median(first_token() for _ in range(5))
            rows.append([f"First streamed token, {model}", f"{ft * 1000:.0f} ms", "< 0.5 s"])

            def user(i: int) -> float:
                c = Client(url, verbose=False)
                t0 = time.perf_counter()
                c.predict(model, f"User {i} says", 0.8, 40, 0.95, 1.0, 32, i, api_name="/generate")
                return time.perf_counter() - t0

            with ThreadPoolExecutor(8) as pool:
                lat = sorted(pool.map(user, range(8)))
            p50, p95 = (
                statistics.median(lat),
                lat[-1] if len(lat) < 20 else lat[int(0.95 * len(lat))],
            )
            rows.append(
                [
                    "8 concurrent users, 32 tokens each (p50 / p95)",
                    f"{p50:.2f} s / {p95:.2f} s",
                    "all served",
                ]
            )
            results.update(
                tokenizer_ms=tok * 1000,
                attention_ms=att * 1000,
                first_token_ms=ft * 1000,
                users8_p50_s=p50,
                users8_p95_s=p95,
            )
            if not args.skip_gpt2:
                client.predict("gpt2", "Hello", 0.8, 40, 0.95, 1.0, 8, 1, api_name="/generate")
                mem = rss_mb(proc.pid)
                rows.append(["Resident memory with GPT-2 124M loaded", f"{mem:.0f} MB", "< 1.5 GB"])
                results["rss_gpt2_mb"] = mem
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print_table(
        "The app, measured through its API (2-core CPU, offline)",
        ["What", "Measured", "Goal"],
        rows,
    )
    print(f"\nwrote {save('app', results)}")


if __name__ == "__main__":
    main()
