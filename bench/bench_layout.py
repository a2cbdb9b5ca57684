"""Which weight layout decodes faster on this CPU: `(in, out)` with `x @ W`, or `(out, in)`?

    python bench/bench_layout.py [--repeats 5]

One batch-1 decoding step multiplies a single activation row by every weight matrix of the
model once. This times exactly those products for GPT-2 124M's shapes (12 blocks of c_attn,
attn.c_proj, c_fc, mlp.c_proj, plus the 50257-row tied head), stored both ways, and prints the
tokens/s each layout allows. `gpt/model.py` stores `(in, out)` because of this measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, machine, print_table, save  # noqa: E402

C, V, LAYERS = 768, 50257, 12
SHAPES = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * LAYERS + [(C, V)]  # (in, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=20, help="decoding steps per timing")
    args = ap.parse_args()
    torch.manual_seed(0)
    in_out = [torch.randn(i, o) * 0.02 for i, o in SHAPES]
    out_in = [w.t().contiguous() for w in in_out]
    xs = {i: torch.randn(1, i) for i, _ in SHAPES}

    def step_in_out():
        with torch.inference_mode():
            for _ in range(args.tokens):
                for w in in_out:
                    xs[w.shape[0]] @ w  # (1, in) @ (in, out)

    def step_out_in():
        with torch.inference_mode():
            for _ in range(args.tokens):
                for w in out_in:
                    torch.nn.functional.linear(xs[w.shape[1]], w)  # (1, in) @ (out, in)^T

    t = interleaved({"in_out": step_in_out, "out_in": step_out_in}, args.repeats)
    rate = {k: args.tokens / v for k, v in t.items()}
    print_table(
        f"Batch-1 products over GPT-2 124M's weights ({machine()}; medians of {args.repeats})",
        ["Layout", "tok/s allowed", "vs (out, in)"],
        [
            [
                "(in, out), x @ W (GPT-2 Conv1D; ours)",
                f"{rate['in_out']:.1f}",
                f"{rate['in_out'] / rate['out_in']:.2f}x",
            ],
            ["(out, in), x @ W.T (nn.Linear)", f"{rate['out_in']:.1f}", "1.00x"],
        ],
    )
    print(f"\nwrote {save('layout', {'tok_s': rate})}")


if __name__ == "__main__":
    main()
