"""A crowd on the Generate tab: 1, 4, 8 and 16 visitors generating at once, through the app's API.

    python bench/bench_crowd.py [--clients 1 4 8 16] [--tokens 64] [--modes multi single]
    python bench/bench_crowd.py --page-work [--tokens 64]   # in-process, no app
    python bench/bench_crowd.py --app DIR --name crowd-before  # another checkout's app.py

Starts `python app.py` (offline, a random GPT-2 124M saved with `save_pretrained` in a
temporary models folder, jobs in a temporary folder) in multi-user mode and in single-user
mode. For each crowd size, that many clients call `/generate` at the same moment over Gradio's
HTTP API (`POST /gradio_api/call/generate` and its event stream, as the browser's queue does),
each a prompt of its own, 64 new tokens, greedy; meanwhile one client loops `/tokenize`. (Before
the sizes: one call loads the model, then two at once let the batcher pack its weights.) It
reports total tokens/s (all tokens over the time from the start to the last visitor's end),
each visitor's tokens/s (its tokens over its own wall time, median), time to first token
(first streamed text) p50 / p95, `/tokenize` p95, and the 1-minute load average at the end of
the run. Writes bench/results/crowd.json and prints a table.

`--long-prompt` (in-process, no app) measures what chunked prefill buys: `--others` runs decode
together (greedy, short prompts, the app's batch settings: one thread, packed weights) and, once
each has 16 tokens, a run with a 1,000-token prompt joins. For a prompt prefilled in one go and
in chunks of `gpt.batching.PREFILL_TOKENS` (and 128), it reports the others' longest wait
between two tokens while the long prompt joins, the long run's time to its first token, and
the total time; medians of `--repeats`.

`--page-work` runs the Generate tab's own generator (`pages.generation._generate`, no Gradio
server) for one visitor and splits its time per token: the model's forward passes and the
waits for the shared batch, against everything else the visitor's thread does (sampling when
it is there, candidates, text, charts, bookkeeping): the page's work.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_space import start_app  # noqa: E402
from bench.common import print_table, save  # noqa: E402

PROMPTS = [
    "The weather in town today",
    "Once upon a time, in a small village by the sea, there lived",
    "A recipe for bread:",
    "The history of the railway in Britain began when",
    "Dear friend,",
    "In the beginning of the twentieth century, scientists in Europe",
    "My favourite book is",
    "Here are three reasons to learn to play the piano:",
]


def save_random_gpt2(folder: Path) -> Path:
    """A random GPT-2 124M written with `save_pretrained` under `folder`/gpt2 (no download)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if not (folder / "gpt2" / "config.json").exists():
        GPT2LMHeadModel(GPT2Config()).save_pretrained(folder / "gpt2")
    return folder


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (nearest rank) of `values`."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))]


# --- in-process: the page's own work per token ------------------------------------------------


def page_work(tokens: int, repeats: int) -> dict:
    """The Generate tab's generator for one visitor, greedy, `tokens` new tokens: per token, the
    wall time, the model's time in the visitor's thread (its forward passes, or its waits for
    the batch's steps) and the rest (the page's work), medians of `repeats` runs."""
    import pages.generation as gen
    from gpt.lab.registry import default_registry

    model, _ = default_registry().get("gpt2")
    spent = {"model": 0.0}
    forward = model.forward

    visitor = threading.get_ident()  # only this thread's time counts (not the batcher's)

    def timed_forward(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return forward(*args, **kwargs)
        finally:
            if threading.get_ident() == visitor:
                spent["model"] += time.perf_counter() - t0

    model.forward = timed_forward
    try:
        import gpt.batching as batching
    except ImportError:  # before batched decoding
        batching = None
    if batching is not None:
        join = batching.Batcher._join

        class TimedQueue(queue.SimpleQueue):
            def get(self, *args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return super().get(*args, **kwargs)
                finally:
                    spent["model"] += time.perf_counter() - t0

        def timed_join(self, row):
            row.out = TimedQueue()  # the visitor's waits for the batch's next step
            return join(self, row)

        batching.Batcher._join = timed_join
    settings = (0, 0, 1.0, 1.0, tokens, 0)  # greedy, as the crowd runs
    runs = []
    try:
        for _ in range(repeats + 1):  # the first warms up
            spent["model"] = 0.0
            t0 = time.perf_counter()
            for _ in gen._generate(threading.Event(), "gpt2", PROMPTS[1], settings):
                pass
            wall = time.perf_counter() - t0
            runs.append((wall, spent["model"]))
    finally:
        del model.forward
        if batching is not None:
            batching.Batcher._join = join
    wall, in_model = (statistics.median(x) for x in zip(*runs[1:]))
    page = wall - in_model
    return {
        "tokens": tokens,
        "ms_per_token": 1000 * wall / tokens,
        "model_ms_per_token": 1000 * in_model / tokens,
        "page_ms_per_token": 1000 * page / tokens,
        "page_share": page / wall,
        "load_1min": os.getloadavg()[0],
    }


def long_prompt(others: int, repeats: int, prompt_len: int = 1000) -> dict:
    """See the module docstring (`--long-prompt`)."""
    import torch

    import gpt.batching as batching
    from gpt.batching import Batcher, BatchLimits
    from gpt.config import PRESETS
    from gpt.model import GPT, PackedWeights
    from gpt.sampling import SamplingConfig

    torch.manual_seed(0)
    model = GPT(PRESETS["gpt2"]).eval()
    pack = PackedWeights.nbytes_of(model) + 1
    limits = BatchLimits(threads=max(1, torch.get_num_threads() - 1), pack_bytes=pack)
    long_ids = torch.randint(0, 50257, (prompt_len,)).tolist()
    cfg = SamplingConfig(temperature=0, max_new_tokens=96, stop_at_eot=False)

    def once(chunk: int) -> dict:
        batching.PREFILL_TOKENS = chunk
        batcher = Batcher(model, limits)
        stamps = [[] for _ in range(others)]
        first: dict = {}

        def other(i: int) -> None:
            for _ in batcher.steps(model, [100 + i, 200 + i, 300 + i], cfg):
                stamps[i].append(time.perf_counter())

        def newcomer() -> None:
            while min(len(s) for s in stamps) < 16:
                time.sleep(0.005)
            first["t0"] = time.perf_counter()
            for _ in batcher.steps(model, long_ids, SamplingConfig(temperature=0, max_new_tokens=1)):
                first["t1"] = time.perf_counter()

        t0 = time.perf_counter()
        threads = [threading.Thread(target=other, args=(i,)) for i in range(others)]
        threads.append(threading.Thread(target=newcomer))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        join_start = first["t0"]
        gaps = [b - a for s in stamps for a, b in zip(s, s[1:]) if b > join_start]
        return {
            "others_longest_gap_s": max(gaps),
            "newcomer_first_token_s": first["t1"] - join_start,
            "total_s": time.perf_counter() - t0,
        }

    saved = batching.PREFILL_TOKENS
    chunks = {"one go": 10**6, f"chunks of {saved}": saved, "chunks of 128": 128}
    runs: dict[str, list[dict]] = {name: [] for name in chunks}
    try:
        once(saved)  # warm-up: packing, allocations
        for _ in range(repeats):
            for name, chunk in chunks.items():
                runs[name].append(once(chunk))
    finally:
        batching.PREFILL_TOKENS = saved
    out = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    out.update(others=others, prompt_tokens=prompt_len, load_1min=os.getloadavg()[0])
    return out


# --- through the app --------------------------------------------------------------------------


def call(url: str, api: str, data: list, on_first=None) -> list:
    """One call of `/api` over Gradio's HTTP API; `on_first()` when the first streamed data
    arrives; the last data."""
    body = json.dumps({"data": data}).encode()
    post = urllib.request.Request(
        f"{url}gradio_api/call/{api}", body, {"Content-Type": "application/json"}
    )
    event_id = json.loads(urllib.request.urlopen(post, timeout=60).read())["event_id"]
    last, event = None, None
    with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=600) as r:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("generating", "complete"):
                last = json.loads(line[5:])
                if on_first is not None and last and last[0]:
                    on_first()
                    on_first = None
                if event == "complete":
                    return last
            elif event == "error":
                raise RuntimeError(f"/{api} failed: {line}")
    raise RuntimeError(f"/{api}: the stream ended without a result")


def crowd(url: str, n: int, tokens: int) -> dict:
    """`n` visitors call /generate at once; one client loops /tokenize meanwhile."""
    barrier = threading.Barrier(n + 1)
    first, done, made = [0.0] * n, [0.0] * n, [0] * n
    errors: list[str] = []

    def visitor(i: int) -> None:
        prompt = f"{PROMPTS[i % len(PROMPTS)]}"
        barrier.wait()
        t0 = time.perf_counter()
        try:
            out = call(
                url, "generate", ["gpt2", prompt, 0, 0, 1.0, 1.0, tokens, i],
                on_first=lambda: first.__setitem__(i, time.perf_counter() - t0),
            )  # fmt: skip
            status = out[2]
            made[i] = int(status.split(" / ")[0].split()[-1])
        except Exception as e:  # noqa: BLE001
            errors.append(str(e)[:200])
        done[i] = time.perf_counter() - t0

    stop = threading.Event()
    tok_lat: list[float] = []

    def tokenize_loop() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            call(url, "tokenize", ["The quick brown fox jumps over the lazy dog. " * 20, False])
            tok_lat.append(time.perf_counter() - t0)
            time.sleep(0.05)

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    prober = threading.Thread(target=tokenize_loop)
    barrier.wait()
    t0 = time.perf_counter()
    prober.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - t0
    stop.set()
    prober.join()
    return {
        "visitors": n,
        "tokens": sum(made),
        "total_tok_s": sum(made) / total,
        "visitor_tok_s_median": statistics.median(m / d for m, d in zip(made, done)),
        "ttft_p50_s": percentile(first, 0.5),
        "ttft_p95_s": percentile(first, 0.95),
        "ttft_max_s": max(first),
        "tokenize_p95_s": percentile(tok_lat, 0.95) if tok_lat else float("nan"),
        "tokenize_calls": len(tok_lat),
        "seconds": total,
        "load_1min": os.getloadavg()[0],
        "errors": errors,
    }


def run_mode(
    models: Path, multiuser: bool, sizes: list[int], tokens: int, app_dir: Path = ROOT
) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GPT2LAB_JOBS_DIR": str(Path(tmp) / "jobs"),
            "GPT2LAB_MODELS_DIR": str(models),
            "GPT2LAB_MULTIUSER": "1" if multiuser else "0",
        }
        with open(Path(tmp) / "app.log", "w") as log:
            proc, url = start_app(env, log, app_dir)
        try:
            call(url, "generate", ["gpt2", "Hello", 0, 0, 1.0, 1.0, 8, 0])  # loads the model
            crowd(url, 2, 16)  # a first batched step: the batcher packs its weights meanwhile
            time.sleep(8)
            out = []
            for n in sizes:
                time.sleep(2)
                row = crowd(url, n, tokens)
                row["mode"] = "multi-user" if multiuser else "single-user"
                print(json.dumps(row), flush=True)
                out.append(row)
            return out
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--modes", nargs="+", default=["multi", "single"])
    ap.add_argument("--models", type=Path, help="a folder holding gpt2/ (else a temporary one)")
    ap.add_argument("--page-work", action="store_true")
    ap.add_argument("--long-prompt", action="store_true")
    ap.add_argument("--others", type=int, default=7, help="--long-prompt: runs already decoding")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="crowd", help="results file: bench/results/<name>.json")
    ap.add_argument("--app", type=Path, default=ROOT, help="the checkout whose app.py to run")
    args = ap.parse_args()
    if args.long_prompt:
        result = long_prompt(args.others, args.repeats)
        print_table(
            f"A 1,000-token prompt joins {args.others} runs decoding (GPT-2 124M, random; "
            f"medians of {args.repeats}; load {result['load_1min']:.1f})",
            ["Prefill", "Others' longest wait (s)", "Its first token (s)", "Total (s)"],
            [[name, f"{r['others_longest_gap_s']:.2f}", f"{r['newcomer_first_token_s']:.2f}",
              f"{r['total_s']:.1f}"] for name, r in result.items() if isinstance(r, dict)],
        )  # fmt: skip
        print(f"\nwrote {save(args.name, {'long_prompt': result})}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        models = save_random_gpt2(args.models or Path(tmp) / "models")
        if args.page_work:
            os.environ["GPT2LAB_MODELS_DIR"] = str(models)
            os.environ["HF_HUB_OFFLINE"] = "1"
            result = page_work(args.tokens, args.repeats)
            print(json.dumps(result, indent=1))
            print(f"\nwrote {save(args.name, {'page_work': result})}")
            return
        rows = []
        for mode in args.modes:
            rows += run_mode(models, mode == "multi", args.clients, args.tokens, args.app.resolve())
    alone = {r["mode"]: r["total_tok_s"] for r in rows if r["visitors"] == 1}
    table = [
        [
            r["mode"],
            str(r["visitors"]),
            f"{r['total_tok_s']:.1f}",
            f"{r['total_tok_s'] / alone[r['mode']]:.1f}x" if r["mode"] in alone else "",
            f"{r['visitor_tok_s_median']:.1f}",
            f"{r['ttft_p50_s']:.2f} / {r['ttft_p95_s']:.2f}",
            f"{r['tokenize_p95_s'] * 1000:.0f}",
            f"{r['load_1min']:.1f}",
            str(len(r["errors"])),
        ]
        for r in rows
    ]
    print_table(
        f"Crowd on /generate: GPT-2 124M (random), {args.tokens} tokens greedy, loopback",
        ["Mode", "Visitors", "Total tok/s", "vs 1", "Per visitor tok/s (median)",
         "First token p50 / p95 (s)", "/tokenize p95 (ms)", "Load (1 min)", "Errors"],
        table,
    )  # fmt: skip
    print(f"\nwrote {save(args.name, {'tokens': args.tokens, 'app': str(args.app), 'runs': rows})}")


if __name__ == "__main__":
    main()
