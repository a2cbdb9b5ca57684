"""Fine-tuning speed: a spam classifier from the starter LM on a 1,500-message TSV, on 2 cores.

    python bench/bench_finetune.py [--base starter] [--epochs 3] [--method full]

The TSV is generated fresh (our own SMS generator, a seed the bundled data does not use): SMS
Spam Collection format, 750 ham + 750 spam, split 70/10/20 (stratified) by the run itself.
Prints the wall time (goal: < 5 minutes) and the test metrics; writes
bench/results/finetune.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, print_table, save  # noqa: E402
from datagen.sms import generate_messages, to_tsv  # noqa: E402
from gpt.runs import RunSpec, run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="starter")
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--method", default="full")
    args = ap.parse_args()
    rows = generate_messages(seed=777, n=4000, spam_fraction=0.5)
    ham = [r for r in rows if r[0] == "ham"][:750]
    spam = [r for r in rows if r[0] == "spam"][:750]
    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "sms1500.tsv"
        tsv.write_text(to_tsv(ham + spam), encoding="utf-8")
        spec = RunSpec(
            kind="classify",
            base=args.base,
            data=str(tsv),
            method=args.method,
            epochs=args.epochs,
            batch_size=16,
            lr=5e-4,
            warmup_steps=20,
            eval_every=50,
            seed=2,
        )
        t0 = time.time()
        metrics = run(spec, Path(tmp) / "run")
        wall = time.time() - t0
    test = metrics["test"]
    print_table(
        f"Spam fine-tuning from {args.base}, 1,500 balanced messages ({machine()})",
        ["What", "Value"],
        [
            ["Wall time (load, train, evaluate, save)", f"{wall:.1f} s"],
            ["Optimizer steps", str(metrics["steps"])],
            ["Test accuracy / F1", f"{test['test_accuracy']:.4f} / {test['test_f1']:.4f}"],
            ["Test examples", str(test["test_n"])],
        ],
    )
    print(f"\nwrote {save('finetune', {'wall_s': wall, 'steps': metrics['steps'], 'test': test})}")


if __name__ == "__main__":
    main()
