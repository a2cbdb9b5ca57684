"""The Walk tab's core: a full trace, a knockout comparison and activation patching, on GPT-2 124M.

    python bench/bench_walk.py [--repeats 5]

GPT-2 124M with random weights (`GPT(PRESETS["gpt2"])`, no download), 2 threads. Times, as
medians: one plain forward pass of 64 tokens (the reference), `walk.trace` of the same 64 tokens
(every step recorded, sources read), `walk.compare_knockouts` with the causal mask knocked out
(loss, top-5 and 8 greedy tokens, before and after; and after only, as when the tab keeps the
intact model's side), and `inside.patch` of two 16-token prompts (13 × 16 patched variants).
Each time is also given as a multiple of the plain forward pass, which moves less with the
machine's load. Writes bench/results/walk.json; prints the load average, since the figures
depend on it.
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

from bench.common import print_table, repeat_times, save  # noqa: E402
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


if __name__ == "__main__":
    main()
