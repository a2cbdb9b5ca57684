"""The Walk tab's core: a full trace, a knockout comparison and activation patching, on GPT-2 124M.

    python bench/bench_walk.py [--repeats 5]

GPT-2 124M with random weights (`GPT(PRESETS["gpt2"])`, no download), 2 threads. Times, as
medians: one plain forward pass of 64 tokens (the reference), `walk.trace` of the same 64 tokens
(every step recorded, sources read), `walk.compare_knockouts` with the causal mask knocked out
(loss, top-5 and 8 greedy tokens, before and after; and after only, as when the tab keeps the
intact model's side), and `inside.patch` of two 16-token prompts (13 × 16 patched variants).
Each time is also given as a multiple of the plain forward pass, which moves less with the
machine's load.

Then the Walk tab through Gradio's HTTP API (`POST /gradio_api/call/<name>` and its event stream,
as `bench/bench_inside.py` times the Inside tab): `python app.py` serves the same random GPT-2
124M (saved in the Hugging Face layout, `GPT2LAB_MODELS_DIR`, no download; `OMP_NUM_THREADS` set
to --threads) and we time `/walk` on a new 64-token text (the trace included), `/walk` moving to
another step of a kept trace (what Previous / Next and the slider cost: no model run, the step's
code, numbers and chart drawn and sent), `/knockout` (causal mask) and the Inside tab's `/patch`
of two 16-token prompts. `--no-app` skips this part. Writes bench/results/walk.json; prints the
load average, since the figures depend on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import print_table, repeat_times, save, time_once  # noqa: E402
from gpt import inside, walk  # noqa: E402
from gpt.config import PRESETS  # noqa: E402
from gpt.model import GPT  # noqa: E402


def median(fn, repeats: int) -> float:
    fn()  # warm: caches filled, kernels picked
    return statistics.median(repeat_times(fn, repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-app", action="store_true", help="time the core only, not the HTTP API")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT(PRESETS["gpt2"]).eval()
    ids64 = torch.randint(0, 50257, (64,))
    clean = torch.randint(0, 50257, (16,))
    corrupt = clean.clone()
    corrupt[3:6] = torch.randint(0, 50257, (3,))
    target = int(torch.randint(0, 50257, ()))
    before = walk.outcome(model, ids64)

    def forward():
        with torch.inference_mode():
            model(ids64[None])

    load_before = os.getloadavg()
    r = args.repeats
    tr = walk.trace(model, ids64)
    cases = [
        ("forward_s", "Plain forward pass, 64 tokens (reference)", "–", forward),
        ("trace_s", "Full trace, 64 tokens", "< 1 s", lambda: walk.trace(model, ids64)),
        (
            "knockout_s",
            "Knockout comparison (no causal mask; loss, top-5, 8 greedy tokens; both sides)",
            "< 1.5 s",
            lambda: walk.compare_knockouts(model, ids64, ["causal_mask"]),
        ),
        (
            "knockout_after_s",
            "… the knocked-out side only (intact side kept)",
            "–",
            lambda: walk.compare_knockouts(model, ids64, ["causal_mask"], before=before),
        ),
        (
            "patch_s",
            "Patching 13 × 16 positions",
            "< 5 s",
            lambda: inside.patch(model, clean, corrupt, target),
        ),
    ]
    results: dict = {"load_before": load_before, "steps": len(tr), "trace_mb": tr.nbytes / 1e6}
    rows = []
    for key, what, goal, fn in cases:
        results[key] = median(fn, r)
        ratio = results[key] / results["forward_s"]
        rows.append([what, f"{results[key] * 1000:,.0f} ms", f"{ratio:.1f}", goal])
    if not args.no_app:
        rows += through_the_api(results, r, args.threads)
    load_after = os.getloadavg()
    results["load_after"] = load_after
    print_table(
        f"Walk core, GPT-2 124M (random weights), {torch.get_num_threads()} threads, medians of "
        f"{r}; a trace has {len(tr)} steps, {tr.nbytes / 1e6:.0f} MB; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after",
        ["What", "Median", "× a forward pass", "Goal"],
        rows,
    )
    print(f"\nwrote {save('walk', results)}")


def through_the_api(results: dict, repeats: int, threads: int) -> list[list[str]]:
    """The Walk tab's endpoints timed through Gradio's HTTP API, on `python app.py` serving a
    random GPT-2 124M; table rows, and `results` filled."""
    import tempfile

    from transformers import GPT2Config, GPT2LMHeadModel

    from bench.bench_app import start
    from bench.bench_inside import HttpApi
    from gpt.lab.names import load_tokenizer

    tok = load_tokenizer("gpt2")
    words = " ".join(f"word{i % 50}" for i in range(80))
    text64 = tok.decode(tok.encode(words)[:64])
    clean = tok.decode(tok.encode(words)[:16])
    corrupt = tok.decode(tok.encode(words)[1:17])
    assert len(tok.encode(text64)) == 64 and len(tok.encode(corrupt)) == 16
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        GPT2LMHeadModel(GPT2Config()).save_pretrained(Path(tmp) / "models" / "gpt2")
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "OMP_NUM_THREADS": str(threads),
            "GPT2LAB_JOBS_DIR": str(Path(tmp) / "jobs"),
            "GPT2LAB_MODELS_DIR": str(Path(tmp) / "models"),
        }
        proc, url, _ = start(env)
        try:
            api = HttpApi(url)
            fresh = iter(range(10**6))  # a new first word each time: nothing kept
            steps = iter(list(range(1, 299)) * 10)  # moving along a kept trace

            def new_text(i: int) -> str:
                return tok.decode(tok.encode(f"{i} {words}")[:64])

            cases = [
                ("http_walk_trace_s", "/walk on a new 64-token text (trace + step 0 drawn)",
                 "–", lambda: api.predict("gpt2", new_text(next(fresh)), 0, -1, 0,
                                          api_name="/walk")),
                ("http_walk_move_s", "/walk to another step of a kept trace (Previous / Next)",
                 "< 150 ms", lambda: api.predict("gpt2", text64, next(steps), -1, 3,
                                                 api_name="/walk")),
                ("http_knockout_s", "/knockout, causal mask, 64 tokens (intact side kept)",
                 "< 1.5 s", lambda: api.predict("gpt2", text64, ["causal_mask"], -1,
                                                api_name="/knockout")),
                ("http_patch_s", "/patch, 13 × 16 positions, heatmap", "< 5 s",
                 lambda: api.predict("gpt2", clean, corrupt, "", api_name="/patch")),
            ]  # fmt: skip
            api.predict("gpt2", text64, 0, -1, 0, api_name="/walk")  # the trace, kept
            for key, what, goal, fn in cases:
                n = 4 * repeats if key == "http_walk_move_s" else repeats
                results[key] = median(fn, n)
                rows.append([f"HTTP API: {what}", f"{results[key] * 1000:,.0f} ms", "–", goal])
            # every kind of step once: the slowest move
            each = [time_once(lambda i=i: api.predict("gpt2", text64, i, -1, 3, api_name="/walk"))
                    for i in range(0, 299)]  # fmt: skip
            results["http_walk_move_max_s"] = max(each)
            results["http_walk_move_p95_s"] = statistics.quantiles(each, n=20)[-1]
            rows.append(["HTTP API: /walk over all 299 steps, p95 / slowest",
                         f"{results['http_walk_move_p95_s'] * 1000:,.0f} / "
                         f"{results['http_walk_move_max_s'] * 1000:,.0f} ms", "–", "< 150 ms"])  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return rows


if __name__ == "__main__":
    main()
