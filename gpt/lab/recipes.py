"""Recipes: `python -m gpt recipes starter` rebuilds the offline starter models.

Everything is bundled except the real SMS that `starter-spam` is tuned on: one half of the UCI
SMS Spam Collection (CC BY 4.0), read from `../shared/data/sms-spam-collection/sms-half.tsv`
beside the repository and never copied into it.

1. **Tokenizer**: our byte-level BPE (4,096 tokens) trained on the bundled stories, SMS training
   messages and training instructions, so every starter model reads all three well.
2. **`starter`**: a 4-layer, 256-wide GPT (the `mini` preset) pretrained on the story corpus for
   a time budget (20 minutes by default; the step count is calibrated from the first steps).
3. **`starter-spam`**: `starter`, adapted to SMS text as a language model, + a classification
   head, fine-tuned on the training split of the real SMS half (see `starter_spam`).
4. **`starter-chat`**: `starter` instruction-tuned (Alpaca prompts, prompt masking) on the
   training instructions; scored against the untuned `starter` on the test instructions.

Each model is saved as bfloat16 safetensors (halving the size of the repository) with a model
card, `card.json`: data, steps, wall time and test metrics measured on the saved weights.

Also here, the recipes a learner starts from: `TUNE_DEFAULTS`, the epochs and learning rate each
fine-tuning method gets for a family of base models (the Fine-tune tab and `python -m gpt jobs
submit` use them when no value is given; `bench/bench_defaults.py` measures them), and `advice`,
what to try when a finished job's result is weak.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from gpt.lab.runs import (
    BUNDLED,
    CLASSIFY_SPLIT,
    REAL_SMS,
    REPO,
    RunSpec,
    answer,
    classify_splits,
    predict_labels,
    run,
)
from gpt.tokenizer import Tokenizer
from gpt.train.loop import TrainEvent
from gpt.train.metrics import balanced_report

VOCAB_SIZE = 4096
LM_BATCH = 16
ADAPT_STEPS = 100  # starter-spam's SMS language-model adaptation
BALANCED_DRAWS = 20  # balanced versions of the test split averaged on the card


def train_tokenizer(out: Path) -> Path:
    """Train the starter BPE on all bundled training text; return the saved file."""
    from gpt.train import data as gdata

    parts = [gdata.read_text(BUNDLED["lm"]["train"])]
    parts += [ex.text for ex in gdata.read_spam(BUNDLED["classify"]["train"])]
    for ex in gdata.read_instructions(BUNDLED["instruct"]["train"]):
        parts += [gdata.format_prompt(ex), ex.output]
    tok = Tokenizer.train("\n".join(parts), VOCAB_SIZE, name=f"starter-bpe-{VOCAB_SIZE}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return tok.save(out)


def lm_steps_for(minutes: float, tokenizer: Path, work: Path) -> int:
    """Optimizer steps that fit the budget, from the speed of a short calibration run."""
    stamps: list[float] = []
    run(
        _lm_spec(tokenizer, max_steps=8),
        work / "calibrate",
        callbacks=[lambda e: stamps.append(e.elapsed_s) if e.kind == "step" else None],
    )
    per_step = (stamps[-1] - stamps[1]) / (len(stamps) - 2)  # steady state, setup excluded
    shutil.rmtree(work / "calibrate", ignore_errors=True)
    return max(50, int(minutes * 60 / (per_step * 1.05)))  # ~5% for evaluations


def _lm_spec(tokenizer: Path, max_steps: int) -> RunSpec:
    return RunSpec(
        kind="lm",
        base="preset:mini",
        tokenizer=str(tokenizer),
        data="bundled",
        max_steps=max_steps,
        batch_size=LM_BATCH,
        lr=1e-3,
        warmup_steps=min(100, max_steps // 10),
        weight_decay=0.1,
        dropout=0.1,
        eval_every=max(50, max_steps // 10),
        eval_batches=20,
        save_dtype="bfloat16",
        seed=1,
    )


def _install(run_dir: Path, dest: Path, card: dict[str, Any]) -> None:
    """Copy a run's final model into the starter folder, with its card."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(run_dir / "model", dest)
    (dest / "card.json").write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")


def lm_samples(model_dir: Path, prompts: list[str], seed: int = 0) -> list[str]:
    from gpt.lab.names import load_model, load_tokenizer
    from gpt.sampling import generate

    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    return [
        p + generate(model, tok, p, temperature=0.8, top_k=40, max_new_tokens=80, seed=seed + i)
        for i, p in enumerate(prompts)
    ]


def starter(
    out: Path,
    minutes: float = 20.0,
    work_dir: Path = Path("runs/starter"),
    quick: bool = False,
    progress: Callable[[str], Callable[[TrainEvent], None]] | None = None,
    lm_steps: int | None = None,
) -> dict:
    """Train and install `starter`, `starter-spam` and `starter-chat` under `out`.

    `quick` caps every stage at a few steps: a smoke test of the whole pipeline, not a model.
    `progress(stage_name)` makes the training callback of each stage (e.g. a progress bar).
    `lm_steps` fixes the LM's step count instead of calibrating it to `minutes` (the committed
    models used 1,200 steps: about 20 minutes on an idle 2-core machine).
    """

    def cbs(name: str) -> list:
        return [progress(name)] if progress else []

    real_sms_file()  # starter-spam needs it: say so now, not after the LM's 20 minutes
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    t0 = time.time()
    tok_file = train_tokenizer(work_dir / "tokenizer.json")
    cards: dict[str, Any] = {}

    steps = 10 if quick else lm_steps or lm_steps_for(minutes, tok_file, work_dir)
    lm = run(_lm_spec(tok_file, steps), work_dir / "lm", callbacks=cbs("starter LM"))
    samples = lm_samples(work_dir / "lm" / "model", ["Once upon a time", "Pip the fox", "One day"])
    cards["starter"] = {
        "name": "starter",
        "task": "lm",
        "architecture": "GPT-2, preset mini (4 layers, 4 heads, 256 wide, context 256)",
        "tokenizer": f"byte-level BPE, {VOCAB_SIZE} tokens, trained on the bundled training text",
        "data": lm["data"],
        "steps": lm["steps"],
        "tokens_seen": lm["steps"] * LM_BATCH * 256,
        "train_seconds": lm["train_seconds"],
        "parameters": lm["parameters"],
        "test": lm["test"],
        "samples": samples,
    }
    _install(work_dir / "lm", out / "starter", cards["starter"])

    cards["starter-spam"] = starter_spam(out, work_dir, quick, cbs("starter-spam"))

    chat_spec = RunSpec(
        kind="instruct",
        base=str(out / "starter"),
        data="bundled",
        method="full",
        epochs=6,
        batch_size=8,
        lr=5e-4,
        warmup_steps=20,
        eval_every=100,
        mask_prompt=True,
        eval_samples=200,
        max_new_tokens=64,
        save_dtype="bfloat16",
        seed=3,
    )
    if quick:
        chat_spec = dataclasses.replace(chat_spec, max_steps=5, eval_samples=3, max_new_tokens=16)
    chat = run(chat_spec, work_dir / "chat", callbacks=cbs("starter-chat"))
    baseline = untuned_score(out / "starter", chat_spec)
    cards["starter-chat"] = {
        "name": "starter-chat",
        "task": "instruct",
        "base": "starter",
        "data": chat["data"],
        "steps": chat["steps"],
        "train_seconds": chat["train_seconds"],
        "test": {k: v for k, v in chat["test"].items() if k != "test_samples"},
        "untuned_starter_test": baseline,
        "samples": chat["test"].get("test_samples", [])[:3],
        "spec": chat_spec.to_dict(),
    }
    _install(work_dir / "chat", out / "starter-chat", cards["starter-chat"])
    cards["total_seconds"] = round(time.time() - t0, 1)
    return cards


SMS_CREDIT = {
    "name": "SMS Spam Collection v.1, one half (2,637 messages: 2,326 ham, 311 spam)",
    "authors": "Tiago A. Almeida and José María Gómez Hidalgo",
    "paper": "Contributions to the Study of SMS Spam Filtering: New Collection and Results, "
    "DocEng 2011",
    "publisher": "UCI Machine Learning Repository, dataset 228",
    "doi": "10.24432/C5CC84",
    "license": "CC BY 4.0",
}


def real_sms_file() -> Path:
    """The real SMS half beside the repository; a clear error when it is not there."""
    path = REPO / REAL_SMS
    if not path.is_file():
        raise FileNotFoundError(
            f"starter-spam trains on real SMS messages, read from {REAL_SMS} (relative to the "
            f"repository root, i.e. {path.resolve()}), which is missing. Put the SMS Spam "
            "Collection half there as 'label<TAB>text' lines (ham / spam); it is not bundled."
        )
    return path


def sms_text(messages: Sequence[str], path: Path, seed: int) -> Path:
    """Write messages in a seeded random order, each ended by `<|endoftext|>`: LM data."""
    messages = list(messages)
    random.Random(seed).shuffle(messages)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(m + "<|endoftext|>" for m in messages), encoding="utf-8")
    return path


def starter_spam(
    out: Path, work_dir: Path, quick: bool = False, callbacks: Sequence = ()
) -> dict[str, Any]:
    """Tune `out/starter` into `out/starter-spam` (installed there) on real SMS; return its card.

    1. **Adapt**: `starter` (which read only stories) keeps pretraining as a language model on
       SMS text: the real training messages and our generated training messages, so its
       features fit texting (abbreviations, prices, short codes) before it learns the labels.
    2. **Classify**: the adapted model + a 2-class head is fine-tuned on the real training
       split (`CLASSIFY_SPLIT`, stratified, seed `spec.seed`); validation and test messages
       are never seen, not even as unlabelled text.

    `prefix_weight` trains the head on every prefix of each message as well, so the Spam
    tab's P(spam)-after-each-token trace rises as spammy words appear.
    """
    from gpt.lab.names import load_model, load_tokenizer
    from gpt.train import data as gdata

    real_sms_file()  # fail early, saying where the real messages should be
    spam_spec = RunSpec(
        kind="classify",
        base=str(work_dir / "spam-adapt" / "model"),
        data=str(REAL_SMS),
        method="full",
        epochs=3,
        batch_size=16,
        lr=5e-4,
        warmup_steps=20,
        eval_every=50,
        prefix_weight=0.5,
        save_dtype="bfloat16",
        seed=2,
    )
    train, val, test = classify_splits(spam_spec)
    generated = gdata.read_spam(BUNDLED["classify"]["train"])
    text = sms_text([e.text for e in train + generated], work_dir / "sms-text.txt", seed=0)
    adapt_spec = RunSpec(
        kind="lm",
        base=str(out / "starter"),
        data=str(text),
        max_steps=ADAPT_STEPS,
        batch_size=LM_BATCH,
        lr=5e-4,
        warmup_steps=10,
        dropout=0.1,
        eval_every=50,
        seed=1,
    )
    if quick:
        adapt_spec = dataclasses.replace(adapt_spec, max_steps=3)
        spam_spec = dataclasses.replace(spam_spec, max_steps=5)
    adapt = run(adapt_spec, work_dir / "spam-adapt", callbacks=list(callbacks))
    spam = run(spam_spec, work_dir / "spam", callbacks=list(callbacks))
    tuned = work_dir / "spam" / "model"
    model, tok = load_model(tuned), load_tokenizer(tuned)
    truth = [e.label for e in test]
    balanced = balanced_report(truth, predict_labels(model, tok, test), draws=BALANCED_DRAWS)
    card = {
        "name": "starter-spam",
        "task": "classify",
        "labels": ["ham", "spam"],
        "base": "starter",
        "trained_on": {
            "real_sms": {"file": str(REAL_SMS), **SMS_CREDIT},
            "split": {
                "fractions": list(CLASSIFY_SPLIT),
                "stratified": True,
                "seed": spam_spec.seed,
                **{
                    name: gdata.label_counts(part)
                    for name, part in zip(("train", "val", "test"), (train, val, test))
                },
            },
            "adaptation": {
                "what": "starter pretrained further as a language model on SMS text: the real "
                "training split's messages and our generated training messages "
                "(data/sms/train.tsv), each ended by <|endoftext|>",
                "messages": {"real_train": len(train), "generated": len(generated)},
                "steps": adapt["steps"],
                "train_seconds": adapt["train_seconds"],
                "test": adapt["test"],
                "spec": {**adapt_spec.to_dict(), "base": "starter", "data": "sms-text.txt"},
            },
        },
        "data": spam["data"],
        "steps": spam["steps"],
        "train_seconds": spam["train_seconds"],
        "test": spam["test"],
        "test_balanced": balanced,
        "spec": {**spam_spec.to_dict(), "base": "starter-adapted"},
    }
    _install(work_dir / "spam", out / "starter-spam", card)
    return card


def untuned_score(model_dir: Path, spec: RunSpec) -> dict[str, Any]:
    """The automatic response score of a model that was never instruction-tuned."""
    from gpt.lab.names import load_model, load_tokenizer
    from gpt.train import data as gdata
    from gpt.train.metrics import response_scores

    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    examples = gdata.read_instructions(BUNDLED["instruct"]["test"])[: spec.eval_samples]
    preds = [answer(model, tok, ex, spec.max_new_tokens) for ex in examples]
    return {f"test_{k}": v for k, v in response_scores(preds, [e.output for e in examples]).items()}


# --- the defaults a learner starts from, and advice when a result is weak -----------------------

CLASSIFY_PREFIX_WEIGHT = 0.5  # classify jobs learn from every prefix too (loop.ClassifyTask)
WEAK_MARGIN = 0.1  # a result within this of its trivial baseline is weak
GOAL_BALANCED = 0.90  # what the classify defaults reach on the bundled and the real SMS data
METHOD_WORDS = {"full": "full", "last_blocks": "last blocks", "lora": "LoRA", "head": "head"}


@dataclasses.dataclass(frozen=True)
class TuneDefaults:
    """Epochs and learning rate that one method gets by default, and why.

    `extra` holds any other `RunSpec` fields the recipe needs (e.g. `last_n_blocks`).
    """

    epochs: float
    lr: float
    why: str = ""
    extra: tuple[tuple[str, Any], ...] = ()

    def fields(self) -> dict[str, Any]:
        """The `RunSpec` fields this recipe sets."""
        return {"epochs": self.epochs, "lr": self.lr, **dict(self.extra)}


def base_family(base: str) -> str:
    """Which column of `TUNE_DEFAULTS` a base model reads: "gpt2" for OpenAI's GPT-2 sizes and
    hub models (pretrained at scale: small steps), "small" for everything else (the starter
    models, their jobs, presets and folders: a few MB trained here, which need larger steps).

    >>> base_family("gpt2-medium"), base_family("starter"), base_family("job:20260101-abc")
    ('gpt2', 'small', 'small')
    """
    from gpt.config import HUB_IDS
    from gpt.lab.hub import parse_hub_id

    text = str(base or "").strip()
    if text in HUB_IDS or (not text.startswith(("job:", "preset:", "/", ".")) and "/" in text
                           and parse_hub_id(text) is not None):  # fmt: skip
        return "gpt2"
    return "small"


# (family, kind, method) -> defaults. The "small" classify rows are measured by
# bench/bench_defaults.py (results in bench/results/defaults.json): each reaches balanced
# accuracy >= 0.90 on the bundled SMS data and on the real SMS half from `starter`. The "gpt2"
# rows follow LLMs-from-scratch (ch. 6 and appendix E: lr 5e-5, a few epochs) and are not
# measured here (no GPT-2 weights offline).
_SMALL_CLASSIFY = {  # every classify job also weighs the classes (rare spam counts as much as
    # ham). Last blocks keep the embeddings and three of starter's four blocks frozen: on real
    # SMS (words starter never read) the last-token head stopped near 0.87-0.89 until the
    # every-prefix loss weighed 2 (0.83 at 0, 0.87 at 0.5, 0.89 at 1, 0.91 at 2; bench_defaults)
    "full": TuneDefaults(2, 5e-4, "every weight moves, the embeddings too"),
    "last_blocks": TuneDefaults(
        4,
        1e-3,
        "a frozen trunk learns slowly: larger steps, more epochs (cheap: the trunk is cached), "
        "and the label learned from every prefix (weight 2)",
        (("prefix_weight", 2.0),),
    ),
    "lora": TuneDefaults(3, 1e-3, "adapters start at zero: a larger lr than full"),
}
_SMALL_TEXT = {  # lm and instruct from a small model (starter-chat: full, lr 5e-4)
    "full": TuneDefaults(2, 5e-4, "as starter-chat was tuned"),
    "last_blocks": TuneDefaults(2, 1e-3, "fewer weights train: a larger lr"),
    "lora": TuneDefaults(2, 2e-3, "low-rank adapters start at zero: they need a large lr"),
}
_GPT2 = {
    "full": TuneDefaults(1, 5e-5, "GPT-2 is pretrained at scale: small steps keep what it knows"),
    "last_blocks": TuneDefaults(3, 5e-5, "LLMs-from-scratch ch. 6: last block + head, lr 5e-5"),
    "lora": TuneDefaults(2, 3e-4, "LoRA on GPT-2: adapters need a larger lr than full tuning"),
}
TUNE_DEFAULTS: dict[tuple[str, str, str], TuneDefaults] = {
    **{("small", "classify", m): d for m, d in _SMALL_CLASSIFY.items()},
    **{("small", k, m): d for k in ("lm", "instruct") for m, d in _SMALL_TEXT.items()},
    **{("gpt2", k, m): d for k in ("lm", "classify", "instruct") for m, d in _GPT2.items()},
}


def tune_defaults(kind: str, method: str, base: str) -> TuneDefaults:
    """The epochs and lr a `kind` job tuning `base` with `method` starts from.

    >>> d = tune_defaults("classify", "lora", "starter"); (d.epochs, d.lr)
    (3, 0.001)
    >>> tune_defaults("classify", "full", "gpt2").lr
    5e-05
    """
    family = base_family(base)
    method = method if (family, kind, method) in TUNE_DEFAULTS else "full"
    return TUNE_DEFAULTS.get((family, kind, method), TUNE_DEFAULTS[(family, "lm", "full")])


def with_tune_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` (a job's RunSpec fields) with what it leaves out filled from `TUNE_DEFAULTS`:
    the method (full), its epochs, lr and extras, and for classify the prefix loss and the
    class weights (rare spam weighs as much as common ham).

    >>> with_tune_defaults({"kind": "classify", "method": "last_blocks", "epochs": 1})["lr"]
    0.001
    """
    out = dict(spec)
    kind, method = out.get("kind", "lm"), out.setdefault("method", "full")
    if "max_steps" in out and "epochs" not in out:
        out["epochs"] = 1.0  # max_steps decides; only the lr is the recipe's
    for key, value in tune_defaults(kind, method, out.get("base", "starter")).fields().items():
        out.setdefault(key, value)
    if kind == "classify":
        out.setdefault("prefix_weight", CLASSIFY_PREFIX_WEIGHT)
        out.setdefault("weigh_classes", True)  # spam is rare: weigh it up (bench_defaults)
    return out


def form_number(x: float) -> str:
    """A number as the form writes it.

    >>> form_number(3.0), form_number(2.5), form_number(0.0005), form_number(2e-3), form_number(0.05)
    ('3', '2.5', '5e-4', '2e-3', '0.05')
    >>> form_number(1e308), form_number(float("inf"))  # not 309 digits
    ('1e+308', 'inf')
    """
    if math.isfinite(x) and abs(x) < 1e15 and x == int(x):
        return str(int(x))
    if not math.isfinite(x) or abs(x) >= 0.01:
        return f"{x:g}"
    mantissa, exp = f"{x:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"


def _balanced(test: dict[str, Any]) -> float | None:
    """A classifier's balanced accuracy: its own metric, else from its confusion matrix."""
    value = test.get("test_balanced_accuracy")
    if isinstance(value, int | float):
        return float(value)
    cm = test.get("test_confusion_matrix")
    if isinstance(cm, list) and cm and all(isinstance(r, list) for r in cm):
        recalls = [r[i] / sum(r) for i, r in enumerate(cm) if sum(r)]
        return sum(recalls) / len(recalls) if recalls else None
    return None


@dataclasses.dataclass(frozen=True)
class Advice:
    """Why a finished job's result is weak (`problem`) and what to try next (`tries`)."""

    problem: str
    tries: list[str]

    def text(self) -> str:
        """One line: the problem, then each thing to try."""
        return f"{self.problem} Try: {'; '.join(self.tries)}."


def advice(spec: dict[str, Any], metrics: dict[str, Any]) -> Advice | None:
    """What to try when a finished job's result is weak, or None when it is not (or not known).

    A classifier is weak when its test balanced accuracy is within `WEAK_MARGIN` of always
    answering the commoner label (0.5), and short when below `GOAL_BALANCED`, which the
    defaults reach; a language or instruction model when its val loss did not fall.

    >>> spec = {"kind": "classify", "base": "starter", "method": "last_blocks", "epochs": 1,
    ...         "lr": 5e-5}
    >>> said = advice(spec, {"test": {"test_balanced_accuracy": 0.58}})
    >>> print(said.problem)
    Balanced accuracy 0.58 is within 0.1 of the 0.50 that always answering one label gets.
    >>> said.tries[:3]
    ['more epochs: 4', 'learning rate 1e-3 for last blocks', "prefix weight 2 (the recipe's)"]
    """
    kind, method = spec.get("kind", "lm"), spec.get("method", "full")
    base = str(spec.get("base", "starter"))
    recipe = tune_defaults(kind, method, base)
    epochs, lr = float(spec.get("epochs") or 0), float(spec.get("lr") or 0)
    tries: list[str] = []
    if kind == "classify":
        balanced = _balanced(metrics.get("test") or {})
        if balanced is None or balanced >= GOAL_BALANCED:
            return None
        if balanced < 0.5 + WEAK_MARGIN:
            problem = (
                f"Balanced accuracy {balanced:.2f} is within {WEAK_MARGIN:g} of the 0.50 that "
                "always answering one label gets."
            )
        else:
            problem = (
                f"Balanced accuracy {balanced:.2f} is below the {GOAL_BALANCED:.2f} the "
                "defaults reach."
            )
        if spec.get("max_steps"):
            tries.append(f"max steps 0, so the epochs decide (it stopped at {spec['max_steps']})")
        if epochs < recipe.epochs:
            tries.append(f"more epochs: {form_number(recipe.epochs)}")
        elif balanced < 0.5 + WEAK_MARGIN or lr >= recipe.lr:
            tries.append(f"more epochs: {form_number(max(epochs + 1, epochs * 2))}")
        if not 0.5 * recipe.lr <= lr <= 2 * recipe.lr:
            tries.append(f"learning rate {form_number(recipe.lr)} for {METHOD_WORDS[method]}")
        for key, value in recipe.extra:
            if spec.get(key) != value:
                tries.append(f"{key.replace('_', ' ')} {form_number(value)} (the recipe's)")
        if spec.get("weigh_classes") is False:
            tries.append("weigh the classes (--weigh-classes): rare spam counts as much as ham")
        if method != "full":
            full = tune_defaults(kind, "full", base)
            tries.append(
                f"method full ({form_number(full.epochs)} epochs, lr {form_number(full.lr)})"
            )
        if base_family(base) == "small" and base != "starter-spam":
            tries.append(
                "base starter-spam (its recipe, `starter_spam` in gpt/lab/recipes.py: starter "
                "adapted to SMS text as a language model first, then tuned with the prefix loss)"
            )
        return Advice(problem, tries)
    losses = [
        e["val_loss"]
        for e in metrics.get("evals", [])
        if isinstance(e.get("val_loss"), int | float)
    ]
    if len(losses) < 2 or losses[-1] < losses[0] - 1e-3:
        return None
    if min(losses) < losses[0] - 1e-3:  # it fell, then rose: it learned the training set by heart
        problem = (
            f"Val loss fell to {min(losses):.3f}, then rose to {losses[-1]:.3f}: the model "
            "began to memorise the training text."
        )
        tries = [f"fewer epochs: {form_number(max(0.5, epochs / 2))}"]
        if lr > recipe.lr:
            tries.append(f"learning rate {form_number(recipe.lr)} for {METHOD_WORDS[method]}")
    else:
        problem = f"Val loss did not fall ({losses[0]:.3f} → {losses[-1]:.3f})."
        if lr > 2 * recipe.lr:
            tries = [
                f"a smaller learning rate: {form_number(recipe.lr)} for {METHOD_WORDS[method]}"
            ]
        else:
            tries = [
                f"learning rate {form_number(max(recipe.lr, lr * 3))} for {METHOD_WORDS[method]}"
            ]
        if epochs < recipe.epochs:
            tries.append(f"more epochs: {form_number(recipe.epochs)}")
    return Advice(problem, tries)
