"""The Fine-tune tab's defaults, measured: balanced accuracy and seconds per method and dataset.

    python bench/bench_defaults.py [--methods full last_blocks lora] [--data bundled real]
                                   [--base starter] [--repeat-lr]

Each run is the job the Fine-tune tab starts when only the method is picked: kind classify,
base `starter`, the epochs, learning rate and other fields of `gpt.lab.recipes.TUNE_DEFAULTS`
(`with_tune_defaults`), the form's batch size (8) and evaluation interval (50), the base scored
first (`score_base`, as every job from the tab). Datasets:

- `bundled`: the project's own generated SMS (data/sms/{train,val,test}.tsv);
- `real`: the real SMS half, read from ../shared/data/sms-spam-collection/sms-half.tsv (UCI SMS
  Spam Collection, CC BY 4.0, Almeida and Gómez Hidalgo; never copied into the repository),
  split 70/10/20 by label as every classify file is.

Reports test balanced accuracy (the mean of the per-label recalls, so always answering ham
scores 0.5), training seconds, wall seconds (model load, base scoring, training and test) and
the 1-minute load average before and after each run, since other processes share the CPU.
The goal (issue 21): each method >= 0.90 on both datasets in about a minute on 2 cores.
Writes bench/results/defaults.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, machine, print_table, save  # noqa: E402
from gpt.lab.recipes import GOAL_BALANCED, with_tune_defaults  # noqa: E402
from gpt.lab.runs import REAL_SMS, RunSpec, run  # noqa: E402

DATASETS = {"bundled": "bundled", "real": str(REAL_SMS)}
FORM = {"batch_size": 8, "eval_every": 50, "score_base": True}  # the tab's other fields


def tab_spec(method: str, data: str, base: str = "starter") -> RunSpec:
    """The spec the Fine-tune tab submits for `method` on `data` with every other default."""
    fields = with_tune_defaults({"kind": "classify", "base": base, "method": method})
    return RunSpec(**{**fields, **FORM, "data": data})


def measure(spec: RunSpec) -> dict:
    """Train `spec` in a temporary folder; its test scores and times."""
    load = os.getloadavg()[0]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-defaults-") as out:
        metrics = run(spec, out)
    test = metrics["test"]
    return {
        "epochs": spec.epochs,
        "lr": spec.lr,
        "steps": metrics["steps"],
        "balanced_accuracy": round(test["test_balanced_accuracy"], 4),
        "accuracy": round(test["test_accuracy"], 4),
        "confusion_matrix": test["test_confusion_matrix"],
        "base_balanced_accuracy": round(metrics["base_test"]["test_balanced_accuracy"], 4),
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": round(time.time() - t0, 1),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=["full", "last_blocks", "lora"])
    ap.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--base", default="starter")
    args = ap.parse_args()
    results = []
    for method in args.methods:
        for data in args.data:
            row = {
                "method": method,
                "data": data,
                **measure(tab_spec(method, DATASETS[data], args.base)),
            }
            row["goal_met"] = row["balanced_accuracy"] >= GOAL_BALANCED
            results.append(row)
            print(row, flush=True)
    print_table(
        f"Fine-tune tab defaults, classify from {args.base} ({machine()})",
        ["method", "data", "epochs", "lr", "balanced acc.", "train s", "wall s", "load"],
        [
            [r["method"], r["data"], f"{r['epochs']:g}", f"{r['lr']:g}",
             f"{r['balanced_accuracy']:.3f}", f"{r['train_seconds']:.0f}",
             f"{r['wall_seconds']:.0f}", f"{r['load_before']:.1f}→{r['load_after']:.1f}"]
            for r in results
        ],
    )  # fmt: skip
    runs = merged(results, args.base)
    save("defaults", {"base": args.base, "goal": GOAL_BALANCED, "runs": runs})


def merged(results: list[dict], base: str) -> list[dict]:
    """These runs, and the earlier file's runs of the other methods or datasets that still use
    today's defaults (so methods and datasets can be measured in separate invocations)."""
    path = RESULTS / "defaults.json"
    old = json.loads(path.read_text())["runs"] if path.is_file() else []
    done = {(r["method"], r["data"]) for r in results}
    kept = []
    for r in old:
        spec = tab_spec(r["method"], DATASETS[r["data"]], base)
        same = (r["epochs"], r["lr"]) == (spec.epochs, spec.lr)
        if (r["method"], r["data"]) not in done and same:
            kept.append(r)
    order = {m: i for i, m in enumerate(["full", "last_blocks", "lora"])}
    return sorted(kept + results, key=lambda r: (order.get(r["method"], 9), r["data"]))


if __name__ == "__main__":
    main()
