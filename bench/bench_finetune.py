"""Fine-tuning speed on 2 cores: the frozen-trunk cache and length bucketing against the old path.

    python bench/bench_finetune.py [--messages 2000] [--epochs 3] [--old-epochs 1] [--lora-steps 12]

The model is a randomly initialised GPT-2 124M in the Hugging Face layout
(`transformers.GPT2LMHeadModel(GPT2Config())` written with `save_pretrained` to a temporary
folder) loaded through `gpt.load_model`, so the timings are those of `gpt2` itself.

1. Spam classifier, last_blocks (the last block) + final LayerNorm + head, batch 8, over the first
   `--messages` messages of data/sms/train.tsv (the project's own generated SMS):
   - new: frozen-trunk cache + bucketing (what `python -m gpt train` does now);
   - old: no cache, every batch padded to the longest message (a fixed max), timed for
     `--old-epochs` epochs and projected to `--epochs` (its epochs all cost the same);
   - main: no cache, no bucketing, each batch padded to its own longest (the code before).
   - cli: the user's command end to end (`python -m gpt train classify ... --method last_blocks`
     on the first `--messages` real SMS from ../shared/data), in its own process: model
     loading, validation every 50 steps, the test set and saving included (`--no-cli`: skip).
2. Instruction tuning with LoRA (rank 8) on data/instructions/train.json: tokens/s over a short
   run, and the projected time for 1,100 instructions x 2 epochs in the batches `fit` draws
   (bucketed, `gpt.train.loop.BUCKET_CHUNKS`), from `--lora-strata` of its own steps timed
   (`sampled_projection`: long batches cost more a token); then the same in float32
   (`GPT2LAB_BF16=0`) for comparison, where the CPU has fast bf16. Quality: each run's
   validation loss after its steps (the first 64 instructions of data/instructions/val.json,
   evaluated in float32), and `--quality-steps` steps of LoRA on the small pretrained `starter`
   in both precisions, for a loss that moves.

Beside each figure: the 1-minute load average before and after (other processes share the CPU),
and what `gpt.train.estimate` predicted before the run. Writes bench/results/finetune.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.common import machine, print_table, save  # noqa: E402
from gpt.classifier import GPTClassifier  # noqa: E402
from gpt.device import BF16_ENV, bf16_enabled  # noqa: E402
from gpt.lab.names import (
    load_model,  # noqa: E402
    load_tokenizer,  # noqa: E402
)
from gpt.train import data as gdata  # noqa: E402
from gpt.train.loop import (  # noqa: E402
    BUCKET_CHUNKS,
    ClassifyTask,
    InstructTask,
    TrainConfig,
    _epoch_batches,
    example_lengths,
    fit,
    prepare_model,
    step_schedule,
)

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def save_random_gpt2(folder: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GPT2LMHeadModel(GPT2Config()).save_pretrained(folder, safe_serialization=True)


def pad_to(collate, length: int, pad_id: int):
    """The old path: every batch padded to one fixed length (the data set's longest)."""

    def padded(batch):
        ids, *rest = collate(batch)
        return (F.pad(ids, (0, length - ids.shape[1]), value=pad_id), *rest)

    return padded


def timed_fit(model, task, data, cfg, collate) -> dict:
    """Train; wall seconds of `fit`, seconds per epoch, the loads before and after."""
    marks, epoch_ends = [time.perf_counter()], []

    def on_event(event):
        if event.kind == "step":
            marks.append(time.perf_counter())
            if abs(event.epoch - round(event.epoch)) < 1e-9:
                epoch_ends.append(marks[-1])

    before = load()
    t0 = time.perf_counter()
    result = fit(model, task, data, None, cfg, collate=collate, callbacks=[on_event])
    wall = time.perf_counter() - t0
    epochs = [b - a for a, b in zip([marks[0], *epoch_ends], epoch_ends)]
    steps = [b - a for a, b in zip(marks, marks[1:])]
    return {
        "wall_s": wall,
        "epoch_s": epochs,
        "step_s": steps,
        "steps": result.step,
        "final_loss": result.history[-1]["loss"],
        "load": f"{before} -> {load()}",
    }


def spam_runs(folder: Path, args) -> dict:
    from gpt.train.estimate import estimate_fit

    tok = load_tokenizer("gpt2")
    examples = gdata.read_spam(REPO / "data" / "sms" / "train.tsv")[: args.messages]
    ds = gdata.SpamDataset(examples, tok, 1024)
    out = {}
    for mode in [m for m in args.paths.split(",") if m]:
        epochs = args.epochs if mode == "new" else args.old_epochs
        cfg = TrainConfig(
            task="classify",
            method="last_blocks",
            last_n_blocks=1,
            epochs=epochs,
            batch_size=8,
            lr=5e-4,
            eval_every=10**6,
            cache_trunk=mode == "new",
            bucket=mode == "new",
        )
        torch.manual_seed(0)
        model = GPTClassifier(load_model(folder), 2)
        prepare_model(model, cfg)
        collate = ds.collate if mode != "old" else pad_to(ds.collate, ds.longest, ds.pad_id)
        estimate = estimate_fit(model, ClassifyTask(), ds, None, cfg, collate=collate)
        print(f"{mode}: estimated {estimate.seconds:.0f} s ({estimate.describe()})", flush=True)
        r = timed_fit(model, ClassifyTask(), ds, cfg, collate)
        r["estimate_s"] = estimate.seconds
        r["epochs"] = epochs
        r["projected_s"] = r["wall_s"] * args.epochs / epochs
        print(f"{mode}: {r['wall_s']:.1f} s for {epochs} epoch(s), load {r['load']}", flush=True)
        out[mode] = r
    lengths = [len(t) for t in ds.ids]
    out["tokens"] = {"messages": len(ds), "mean": sum(lengths) / len(ds), "max": max(lengths)}
    return out


def cli_run(folder: Path, args, tmp: Path) -> dict:
    """The user's command, end to end, in its own process: `python -m gpt train classify --base
    FOLDER --method last_blocks --epochs 3 --data FILE` on the first `--messages` real SMS
    (../shared/data, split 70/10/20 by the run as every classify file is; the project's own
    generated SMS when the real ones are absent), with every other setting its default: the
    tab's lr, evaluation every 50 steps, the base model's score and the test set. Wall seconds
    of the process and the stages its metrics.json reports."""
    import subprocess

    from gpt.lab.runs import REAL_SMS

    source = REAL_SMS if REAL_SMS.is_file() else REPO / "data" / "sms" / "train.tsv"
    examples = gdata.read_spam(source)[: args.messages]
    data = tmp / "messages.tsv"
    data.write_text(
        "".join(f"{'spam' if e.label else 'ham'}\t{e.text}\n" for e in examples), encoding="utf-8"
    )
    out = tmp / "cli-run"
    cmd = [sys.executable, "-m", "gpt", "train", "classify", "--base", str(folder),
           "--method", "last_blocks", "--epochs", f"{args.epochs:g}", "--data", str(data),
           "--out", str(out)]  # fmt: skip (not --quiet: the user sees the estimate and progress)
    before = load()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "command": " ".join(["python", *cmd[1:]]).replace(str(tmp), "TMP"),
        "data": "real SMS" if source == REAL_SMS else "generated SMS",
        "messages": len(examples),
        "wall_s": wall,
        "train_s": metrics["train_seconds"],
        "run_s": metrics.get("wall_seconds"),
        "evals": len(metrics["evals"]),
        "steps": metrics["steps"],
        "balanced_accuracy": metrics["test"]["test_balanced_accuracy"],
        "load": f"{before} -> {load()}",
    }


def precision(flag: str | None):
    """`$GPT2LAB_BF16` set to `flag` (None: as it was) inside the block."""
    import contextlib

    @contextlib.contextmanager
    def block():
        old = os.environ.get(BF16_ENV)
        if flag is not None:
            os.environ[BF16_ENV] = flag
        try:
            yield
        finally:
            os.environ.pop(BF16_ENV, None)
            if old is not None:
                os.environ[BF16_ENV] = old

    return block()


def val_loss(model, tok) -> float:
    """Float32 validation loss on the first 64 instructions of data/instructions/val.json."""
    records = gdata.read_instructions(REPO / "data" / "instructions" / "val.json")[:64]
    ds = gdata.InstructionDataset(records, tok, model.config.block_size, mask_prompt=True)
    batches = (ds.collate([ds[j] for j in range(i, min(i + 8, len(ds)))]) for i in range(0, len(ds), 8))
    with precision("0"):
        return InstructTask().evaluate(model.eval(), batches)["val_loss"]


def lora_quality(args) -> dict:
    """`--quality-steps` LoRA steps on `starter` (a small pretrained model, whose loss moves),
    in float32 and in bf16: each one's final training loss and float32 validation loss."""
    from gpt.lab.runs import set_dropout

    tok = load_tokenizer("starter")
    records = gdata.read_instructions(REPO / "data" / "instructions" / "train.json")
    context = load_model("starter").config.block_size
    ds = gdata.InstructionDataset(records, tok, context, mask_prompt=True)
    out = {}
    for name, flag in (("float32", "0"), ("bf16", "1")):
        cfg = TrainConfig(task="instruct", method="lora", max_steps=args.quality_steps,
                          batch_size=8, lr=1e-3, eval_every=10**6)  # fmt: skip
        torch.manual_seed(0)
        model = load_model("starter")
        set_dropout(model, 0.0)  # as a run spec's default: the attention kernels users run
        prepare_model(model, cfg)
        before = load()
        t0 = time.perf_counter()
        with precision(flag):
            result = fit(model, InstructTask(), ds, None, cfg, collate=ds.collate)
        out[name] = {
            "steps": result.step,
            "final_loss": result.history[-1]["loss"],
            "mean_last_10": sum(h["loss"] for h in result.history[-10:]) / 10,
            "val_loss": val_loss(model, tok),
            "wall_s": time.perf_counter() - t0,
            "load": f"{before} -> {load()}",
        }
        print(f"quality {name}: {out[name]}", flush=True)
    return out


def lora_run(folder: Path, args, flag: str | None = None) -> dict:
    """The LoRA instruct speed and projection (`flag`: `$GPT2LAB_BF16` for the run)."""
    with precision(flag):
        return _lora_run(folder, args)


def _lora_run(folder: Path, args) -> dict:
    from gpt.train.estimate import estimate_fit

    tok = load_tokenizer("gpt2")
    records = gdata.read_instructions(REPO / "data" / "instructions" / "train.json")
    ds = gdata.InstructionDataset(records, tok, 1024, mask_prompt=True)
    cfg = TrainConfig(
        task="instruct", method="lora", max_steps=args.lora_steps, batch_size=8, eval_every=10**6
    )
    torch.manual_seed(0)
    model = load_model(folder)
    prepare_model(model, cfg)
    lengths = example_lengths(InstructTask(), ds, ds.collate)
    padded = [sum(len(b) * max(lengths[i] for i in b) for b in group)
              for group in step_schedule(len(ds), cfg, lengths)]  # fmt: skip
    estimate = estimate_fit(model, InstructTask(), ds, None, cfg, collate=ds.collate)
    r = timed_fit(model, InstructTask(), ds, cfg, ds.collate)
    steps = r["step_s"][1:]  # the first step also pays for fit's setup
    tokens_per_s = sum(padded[1:]) / sum(steps)
    # 1,100 instructions x 2 epochs, in the batches bucketing makes of their lengths
    lengths = lengths[:1100]
    chunk = BUCKET_CHUNKS.get("instruct")
    total = sum(
        len(b) * max(lengths[i] for i in b)
        for e in range(2)
        for b in _epoch_batches(len(lengths), 8, e, cfg.seed, lengths, chunk)
    )
    full_cfg = TrainConfig(task="instruct", method="lora", epochs=2, batch_size=8, eval_every=10**6)
    subset = torch.utils.data.Subset(ds, range(1100))
    full_estimate = estimate_fit(
        model, InstructTask(), subset, None, full_cfg, collate=ds.collate, costs=estimate.costs,
    )  # fmt: skip
    after = val_loss(model, tok)  # after the short run (the sampled steps train on)
    sampled = sampled_projection(model, subset, full_cfg, ds.collate, lengths, args.lora_strata)
    r.update(
        tokens_per_s=tokens_per_s,
        steps_timed=len(steps),
        total_tokens=total,
        first_steps_projected_s=total / tokens_per_s,
        projected_s=sampled["projected_s"],
        sampled=sampled,
        projected_steps=2 * math.ceil(1100 / 8),
        estimate_s=full_estimate.seconds,
        short_estimate_s=estimate.seconds,
        real_tokens=sum(lengths) * 2,
        bf16=bf16_enabled(torch.device("cpu")),
        val_loss=after,
    )
    return r


def sampled_projection(model, data, cfg, collate, lengths, strata: int) -> dict:
    """The run's time from a sample of its own steps: `cfg`'s steps over `data` (the batches
    `fit` draws) sorted by padded tokens and cut into `strata` equal strata; the median step of
    each is run (forward, backward, clipping, AdamW, as `fit` runs it) and timed, and stands for
    its stratum in proportion to tokens. Long batches cost more a token (attention grows with
    length), so timing only the first steps of a run misjudges it."""
    from gpt.train.loop import Trainer

    schedule = step_schedule(len(data), cfg, lengths)
    tokens = [sum(len(b) * max(lengths[i] for i in b) for b in step) for step in schedule]
    starts = [0]
    for step in schedule:
        starts.append(starts[-1] + len(step))
    order = sorted(range(len(schedule)), key=lambda k: tokens[k])
    trainer = Trainer(model, InstructTask(), data, None, cfg, collate=collate)
    trainer.train_mode()

    def timed(k: int) -> float:
        trainer.state.micro, trainer.state.step = starts[k], k
        t0 = time.perf_counter()
        trainer.train_step()
        return time.perf_counter() - t0

    timed(order[len(order) // 2])  # warm-up
    projected, timed_tokens, timed_s = 0.0, 0, 0.0
    for g in range(strata):
        stratum = order[g * len(order) // strata : (g + 1) * len(order) // strata]
        k = stratum[len(stratum) // 2]
        seconds = timed(k)
        projected += seconds * sum(tokens[j] for j in stratum) / tokens[k]
        timed_tokens, timed_s = timed_tokens + tokens[k], timed_s + seconds
    return {
        "projected_s": projected,
        "steps": len(schedule),
        "strata": strata,
        "timed_tokens": timed_tokens,
        "timed_s": timed_s,
        "tokens_per_s": sum(tokens) / projected,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--old-epochs", type=float, default=1)
    ap.add_argument("--lora-steps", type=int, default=12, help="0: no LoRA run")
    ap.add_argument("--quality-steps", type=int, default=100, help="0: no starter LoRA runs")
    ap.add_argument("--lora-strata", type=int, default=12, help="steps timed for the projection")
    ap.add_argument("--paths", default="new,old,main", help="which spam paths to time")
    ap.add_argument("--no-cli", dest="cli", action="store_false", help="skip the CLI command")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gpt2-random"
        save_random_gpt2(folder)
        spam = spam_runs(folder, args)
        cli = cli_run(folder, args, Path(tmp)) if args.cli else None
        lora = lora_run(folder, args) if args.lora_steps else None
        if lora and lora["bf16"]:  # the same run in float32, for comparison
            lora["float32"] = lora_run(folder, args, "0")
        if lora and args.quality_steps:
            lora["quality"] = lora_quality(args)
    tok = spam["tokens"]

    def row(name: str, r: dict) -> list[str]:
        timed = f"{r['wall_s']:.0f} s ({r['epochs']:g} ep.)"
        return [
            name,
            timed,
            f"{r['projected_s']:.0f} s",
            ", ".join(f"{s:.0f}" for s in r["epoch_s"]),
            f"{r['estimate_s'] * args.epochs / r['epochs']:.0f} s",
            r["load"],
        ]

    names = {
        "new": "new: trunk cache + bucketing",
        "old": "old: no cache, padded to the longest message",
        "main": "main before: no cache, padded to each batch's longest",
    }
    if any(k in spam for k in names):
        print_table(
            f"Spam fine-tune, GPT-2 124M (random), last block + ln_f + head, "
            f"{tok['messages']:,} messages ({tok['mean']:.1f} tokens on average, longest "
            f"{tok['max']}), batch 8, {args.epochs:g} epochs ({machine()})",
            ["Path", "Timed", f"{args.epochs:g} epochs", "Per epoch (s)", "Estimated", "Load"],
            [row(names[k], spam[k]) for k in names if k in spam],
        )
    for k in ("old", "main"):
        if k in spam and "new" in spam:
            print(f"\n{k} / new: {spam[k]['projected_s'] / spam['new']['wall_s']:.1f}x faster")
    if cli:
        loop = spam.get("new")
        print_table(
            f"The user's command end to end: {cli['command']} ({cli['messages']:,} {cli['data']})",
            ["What", "Seconds"],
            [
                ["the command, wall (load, base score, training, evaluations, test, save)",
                 f"{cli['wall_s']:.0f}"],
                [f"of which training with {cli['evals']} evaluations ({cli['steps']} steps)",
                 f"{cli['train_s']:.0f}"],
                ["the loop alone (new path above)", f"{loop['wall_s']:.0f}" if loop else "-"],
                ["test balanced accuracy", f"{cli['balanced_accuracy']:.3f}"],
                ["load 1 min", cli["load"]],
            ],
        )  # fmt: skip
    if lora:
        print_lora(lora)
    results = {"spam": spam, "cli": cli, "lora": lora, "args": vars(args)}
    print(f"\nwrote {save('finetune', results)}")


def print_lora(lora: dict) -> None:
    print_table(
        "Instruction tuning, GPT-2 124M (random), LoRA rank 8, batch 8, bucketed",
        ["What", "Value"],
        [
            ["Padded tokens/s (steps 2..)", f"{lora['tokens_per_s']:.0f}"],
            ["Padded tokens/s over the whole run (its steps sampled by size)",
             f"{lora['sampled']['tokens_per_s']:.0f} ({lora['sampled']['strata']} of "
             f"{lora['sampled']['steps']} steps timed)"],
            ["Estimated before the short run", f"{lora['short_estimate_s']:.0f} s"],
            ["Short run took", f"{lora['wall_s']:.0f} s"],
            ["Steps timed", str(lora["steps_timed"])],
            ["1,100 instructions x 2 epochs", f"{lora['total_tokens']:,} padded tokens"],
            ["Projected (sampled steps)", f"{lora['projected_s'] / 60:.1f} min "
             f"(from the first steps' tokens/s: {lora['first_steps_projected_s'] / 60:.1f} min)"],
            ["bf16 autocast", "on" if lora["bf16"] else "off (no fast bf16 here)"],
            ["Validation loss after the run (float32)", f"{lora['val_loss']:.4f}"],
            *([["float32 (GPT2LAB_BF16=0): tokens/s, projected, validation loss",
                f"{b['tokens_per_s']:.0f}, {b['projected_s'] / 60:.1f} min "
                f"({b['projected_s'] / lora['projected_s']:.2f}x the bf16 time), "
                f"{b['val_loss']:.4f}"]]
              if (b := lora.get("float32")) else []),
            *([[f"starter, {q['bf16']['steps']} LoRA steps: val loss bf16 / float32",
                f"{q['bf16']['val_loss']:.4f} / {q['float32']['val_loss']:.4f}"]]
              if (q := lora.get("quality")) else []),
            ["gpt.train.estimate says", f"{lora['estimate_s'] / 60:.1f} min"],
            ["Load 1 min", lora["load"]],
        ],
    )


if __name__ == "__main__":
    main()
