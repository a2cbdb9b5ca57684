"""Which prompt format each chat model expects, measured: `gpt.lab.prompts.format_losses`.

    python bench/bench_prompt_formats.py [--n 100] [--models starter-chat vicgalle/gpt2-alpaca ...]

For each model and each format (alpaca, dialogpt, plain), the mean loss per token (nats) of the
reference answers to `--n` of our own held-out instructions (`data/instructions/test.json`)
after the format's prompt. The lowest names the format the model expects; the Chat tab sends
that format (`gpt.lab.hubmodels.CURATED` for hub models; ours are "alpaca"). By default: our
starter-chat, and every curated hub chat model that is on this machine or downloadable now (a
model that cannot be loaded is reported and skipped). Writes bench/results/prompt_formats.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, print_table, save  # noqa: E402
from gpt.lab import hub, hubmodels  # noqa: E402
from gpt.lab.names import load_model, load_tokenizer, resolve  # noqa: E402
from gpt.lab.prompts import FORMATS, best_format, format_losses  # noqa: E402
from gpt.train.data import read_instructions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    chat = [m.repo for m in hubmodels.CURATED if m.task == "instruct"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="held-out instructions scored")
    parser.add_argument("--models", nargs="+", default=["starter-chat", *chat])
    args = parser.parse_args()
    examples = read_instructions(REPO / "data" / "instructions" / "test.json")[: args.n]
    hub.check(timeout=5)
    results, rows = {}, []
    for name in args.models:
        t0 = time.perf_counter()
        try:
            ref = resolve(name, download=True)
            model, tok = load_model(ref).eval(), load_tokenizer(ref.tokenizer)
        except Exception as e:  # offline, or not a GPT-2: say so and go on
            print(f"{name}: skipped ({e})")
            results[name] = {"skipped": str(e)}
            continue
        losses = format_losses(model, tok, examples)
        best = best_format(losses)
        expected = hubmodels.prompt_format(name, "instruct")
        results[name] = {"losses": losses, "best": best, "used": expected,
                         "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        rows.append([name, *(f"{losses[f]:.3f}" for f in FORMATS), best, expected])
    print_table(
        f"Answer loss per token by prompt format ({len(examples)} held-out instructions)",
        ["model", *FORMATS, "lowest", "the Chat tab sends"],
        rows,
    )
    load = os.getloadavg()[0]
    save("prompt_formats", {"machine": machine(), "n": len(examples), "load": load,
                            "models": results})  # fmt: skip


if __name__ == "__main__":
    main()
