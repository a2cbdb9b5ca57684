"""A training run from one plain description: data, model, training, final model and metrics.

`RunSpec` is what the CLI (`python -m gpt train`), the starter recipes and background jobs all
pass around (it round-trips through a dict / JSON). `run(spec, out_dir)`:

1. loads the base model and its tokenizer (a model name or folder, or `preset:NAME` for a fresh
   randomly initialised model);
2. reads the data (`bundled`, a file, a named online source or a URL) into train / val / test;
3. freezes what the method says (full / last_blocks / head / lora) and runs `gpt.train.loop.fit`,
   with training checkpoints in `out_dir/checkpoints/`;
4. evaluates on the test split and writes the final model to `out_dir/model/` (LoRA merged; the
   adapters alone in `out_dir/adapters.safetensors`) and every metric to `out_dir/metrics.json`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from gpt.checkpoint import CheckpointError, read_json, save_checkpoint
from gpt.classifier import GPTClassifier
from gpt.config import GPTConfig, unknown_fields
from gpt.device import choose_device
from gpt.model import GPT
from gpt.sampling import generate
from gpt.train import data as gdata
from gpt.train.estimate import Estimate, estimate_fit
from gpt.train.loop import (
    TASKS,
    ClassifyTask,
    Task,
    TaskName,
    TrainConfig,
    TrainEvent,
    TrainSettings,
    eval_cache,
    example_lengths,
    fit,
    gpt_body,
    prepare_model,
    run_length,
)
from gpt.train.trunk import TrunkCache, frozen_split

if TYPE_CHECKING:
    from gpt.lab.names import ModelRef

REPO = Path(__file__).resolve().parents[2]
BUNDLED: dict[str, dict[str, Path]] = {
    "lm": {"train": REPO / "data" / "corpus" / "stories.txt"},
    "classify": {s: REPO / "data" / "sms" / f"{s}.tsv" for s in ("train", "val", "test")},
    "instruct": {s: REPO / "data" / "instructions" / f"{s}.json" for s in ("train", "val", "test")},
}
SPAM_LABELS = ("ham", "spam")
# Real SMS (half of the UCI SMS Spam Collection, CC BY 4.0), kept beside the repository, never in it.
REAL_SMS = Path("../shared/data/sms-spam-collection/sms-half.tsv")
CLASSIFY_SPLIT = (0.7, 0.1, 0.2)  # train / val / test of a classify file, stratified by label
INSTRUCT_SPLIT = (0.85, 0.05, 0.1)  # ... and of an instruction file
MIN_EXAMPLES = 20  # a classify or instruct file's fewest: each split gets some


@dataclass(frozen=True)
class RunSpec(TrainSettings):
    """What to train, on what, from what, and how.

    The training settings (method, epochs, lr, batch_size, seed, ...) and their defaults are
    `gpt.train.loop.TrainSettings`, shared with `TrainConfig`; the rest says what the run reads
    and writes.

    Attributes:
        kind: "lm", "classify" or "instruct".
        base: a model name (`gpt2`, `starter`, ...), a model folder, or `preset:NAME` for a new
            random model of that preset (with `tokenizer`).
        data: "bundled", a file path, a named online source (`sms-spam`, `instruction-data`,
            `alpaca`) or an http(s) URL of plain text (lm).
        context: tokens per example (default: the model's context length).
        eval_samples: instruct only: test examples answered to compute the response score.
        save_dtype: dtype of the saved final weights ("float32" or "bfloat16").
        prefix_weight: classify only: also train the head on every prefix of each message, with
            this weight (see `gpt.train.loop.ClassifyTask`); 0 trains on the last token alone.
        weigh_classes: classify only: weigh each class's training loss by the inverse of its
            count in the training split (`gpt.train.data.class_weights`), so rare spam counts
            as much as common ham: more spam caught, a higher balanced accuracy.
        score_base: before training, also score the model as it starts on the same test split
            (`metrics["base_test"]`, kept in `out_dir/base_test.json` across resumes, and in
            the model card as its baseline), so the result says what fine-tuning changed.

    >>> spec = RunSpec(kind="classify", epochs=2)
    >>> spec.train_config().epochs, spec.train_config().lr == RunSpec(kind="lm").lr
    (2, True)
    """

    kind: TaskName
    base: str = "starter"
    data: str = "bundled"
    tokenizer: str | None = None
    prefix_weight: float = 0.0
    weigh_classes: bool = False
    dropout: float = 0.0
    context: int | None = None
    stride: int | None = None
    balance: bool = False
    eval_samples: int = 50
    max_new_tokens: int = 64
    save_dtype: str = "float32"
    score_base: bool = False

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise ValueError(f"kind must be one of {', '.join(TASKS)}, got {self.kind!r}")
        if self.save_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"save_dtype must be float32 or bfloat16, got {self.save_dtype!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.prefix_weight < 0:
            raise ValueError(f"prefix_weight must be >= 0, got {self.prefix_weight!r}")
        if self.context is not None and self.context < 2:
            raise ValueError(f"context must be at least 2, got {self.context!r}")
        self.train_config()  # validates the training fields with TrainConfig's own messages

    def train_config(self) -> TrainConfig:
        """The loop's config: this spec's training settings, for its kind of task."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainSettings)}
        return TrainConfig(task=self.kind, **shared)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}  # kind first, for the reader

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        if unknown := unknown_fields(cls, d):
            raise ValueError(f"unknown run settings: {', '.join(unknown)}")
        return cls(**d)


# --- model --------------------------------------------------------------------------------------


def load_base(spec: RunSpec) -> tuple[nn.Module, Any]:
    """The model to train (a GPTClassifier for classify) and its tokenizer; `spec.base` is
    resolved by `gpt.lab.names.resolve` (`preset:NAME` is a new random model)."""
    from gpt.lab.names import load_model, load_tokenizer, resolve

    ref = resolve(spec.base)
    if ref.kind == "hub" and ref.needs_download:  # first the repo: its own tokenizer files
        ref = resolve(spec.base, download=True)  # (added_tokens.json) are in its folder
    tok = load_tokenizer(spec.tokenizer or ref.tokenizer)
    if ref.kind == "preset":  # seeded: a resumed run rebuilds the same frozen weights
        torch.manual_seed(spec.seed)
        model: nn.Module = GPT(ref.config.replace(vocab_size=tok.n_vocab, dropout=spec.dropout))
    else:
        model = load_model(ref)
        set_dropout(model, spec.dropout)
    body = gpt_body(model)
    if tok.n_vocab > body.config.vocab_size:
        raise ValueError(
            f"tokenizer has {tok.n_vocab} tokens but {spec.base} has only "
            f"{body.config.vocab_size} embeddings"
        )
    if spec.kind == "classify" and not isinstance(model, GPTClassifier):
        torch.manual_seed(spec.seed)
        model = GPTClassifier(body, 2, labels=SPAM_LABELS)
    elif spec.kind != "classify" and isinstance(model, GPTClassifier):
        model = model.gpt  # a classifier's body can be tuned as a language model again
    return model, tok


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout probability of a loaded model (its config is fixed at build time)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
        if hasattr(m, "dropout") and isinstance(m.dropout, float):
            m.dropout = p


# --- data ---------------------------------------------------------------------------------------


@dataclass
class RunData:
    train: Sequence
    val: Sequence | None
    test: Sequence | None
    collate: Callable[[list], Any] | None
    summary: dict[str, Any]
    test_examples: list | None = None  # raw examples (instruct), for the response score


def _source_path(spec: RunSpec) -> Path:
    from gpt.lab.sources import SOURCES, fetch

    if spec.data in SOURCES or spec.data.startswith(("http://", "https://")):
        return fetch(spec.data)
    path = Path(spec.data)
    if not path.is_file() and not path.is_absolute() and (REPO / path).is_file():
        path = REPO / path  # a relative path not found here is read from the repository root
    if not path.is_file():
        raise gdata.DataError(
            f"data {spec.data!r} is neither 'bundled', an existing file, a known source "
            f"({', '.join(SOURCES)}) nor an http(s) URL"
        )
    return path


def _split(items: list, fractions: tuple[float, ...], seed: int) -> list[list]:
    items = list(items)
    random.Random(seed).shuffle(items)
    cuts, acc = [], 0.0
    for f in fractions[:-1]:
        acc += f
        cuts.append(round(acc * len(items)))
    bounds = [0, *cuts, len(items)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:])]


def classify_splits(spec: RunSpec) -> list[list[gdata.SpamExample]]:
    """The train / val / test messages of a classify spec: the bundled files, or the spec's file
    split `CLASSIFY_SPLIT` by label with `spec.seed` (the same seed, the same split)."""
    if spec.data == "bundled":
        return [gdata.read_spam(BUNDLED["classify"][s]) for s in ("train", "val", "test")]
    examples = gdata.read_spam(_source_path(spec))
    return gdata.stratified_split(examples, CLASSIFY_SPLIT, seed=spec.seed)


def _check_splits(spec: RunSpec, splits: list[list]) -> None:
    """DataError unless train, val and test each hold an example (a tiny file's split)."""
    if not all(splits):
        sizes = ", ".join(f"{n} {len(s)}" for n, s in zip(("train", "val", "test"), splits))
        raise gdata.DataError(
            f"data {spec.data!r} splits into {sizes} examples: too few to train and still "
            f"hold some out for validation and testing; give at least {MIN_EXAMPLES}"
        )


def load_run_data(spec: RunSpec, tok: Any, context: int) -> RunData:
    """Train / val / test datasets for the spec's kind, read and validated up front."""
    bundled = spec.data == "bundled"
    if spec.kind == "lm":
        path = BUNDLED["lm"]["train"] if bundled else _source_path(spec)
        train, val = gdata.lm_datasets(path, tok, context, spec.stride, val_fraction=0.05)
        if len(train) == 0:
            raise gdata.DataError(f"{path}: too little text for one window of {context} tokens")
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        summary = {"file": str(shown), "train_windows": len(train), "val_windows": len(val or [])}
        return RunData(train, val, val, None, summary)
    if spec.kind == "classify":
        splits = classify_splits(spec)
        if spec.balance:
            splits = [gdata.balance(s, seed=spec.seed) for s in splits]
        _check_splits(spec, splits)
        sets = [gdata.SpamDataset(s, tok, context) for s in splits]
        summary = {
            "data": spec.data,
            **{f"{n}_examples": len(s) for n, s in zip(("train", "val", "test"), splits)},
            "train_labels": gdata.label_counts(splits[0]),
        }
        return RunData(sets[0], sets[1], sets[2], sets[0].collate, summary)
    # instruct
    if bundled:
        splits = [gdata.read_instructions(BUNDLED["instruct"][s]) for s in ("train", "val", "test")]
    else:
        from gpt.lab.sources import SOURCES

        skip = spec.data in SOURCES and SOURCES[spec.data].skip_empty
        examples = gdata.read_instructions(_source_path(spec), skip_empty=skip)
        splits = _split(examples, INSTRUCT_SPLIT, spec.seed)
    _check_splits(spec, splits)
    sets = [gdata.InstructionDataset(s, tok, context, mask_prompt=spec.mask_prompt) for s in splits]
    summary = {
        "data": spec.data,
        **{f"{n}_examples": len(s) for n, s in zip(("train", "val", "test"), splits)},
        "train_truncated": sets[0].truncated,
        "train_dropped": sets[0].dropped,
    }
    return RunData(sets[0], sets[1], sets[2], sets[0].collate, summary, test_examples=splits[2])


# --- evaluation ---------------------------------------------------------------------------------


def answer(model: GPT, tok: Any, example: gdata.Instruction, max_new_tokens: int = 64) -> str:
    """The model's response to an instruction, greedy, stopping at end-of-text."""

    prompt = gdata.format_prompt(example)
    ids = tok.encode(prompt, allowed_special="none")
    room = gpt_body(model).config.block_size - max_new_tokens
    if len(ids) > room:  # keep the end of the prompt, where "### Response:" is
        prompt = tok.decode(ids[-room:])
    text = generate(model, tok, prompt, temperature=0, max_new_tokens=max_new_tokens)
    return text.split("###")[0].strip()


@torch.no_grad()
def predict_labels(
    model: GPTClassifier, tok: Any, examples: Sequence[gdata.SpamExample], batch_size: int = 32
) -> list[int]:
    """The class a classifier gives each message (read as in training: cut to the context)."""
    model.eval()
    ds = gdata.SpamDataset(examples, tok, model.config.block_size)
    preds: list[int] = []
    for i in range(0, len(ds), batch_size):
        ids, last, _ = ds.collate([ds[j] for j in range(i, min(i + batch_size, len(ds)))])
        preds += model(ids.to(model.gpt.device), last.to(model.gpt.device)).argmax(-1).tolist()
    return preds


def make_task(
    spec: RunSpec,
    collate: Callable[[list], Any] | None = None,
    label_counts: dict[str, int] | None = None,
) -> Task:
    """The training task for `spec.kind`, with its settings and the data's `collate`; for
    classify with `weigh_classes`, its class weights from the training split's `label_counts`."""
    if spec.kind == "classify":
        weights = None
        if spec.weigh_classes and label_counts:
            weights = gdata.class_weights([label_counts.get(n, 0) for n in SPAM_LABELS])
        return ClassifyTask(spec.prefix_weight, collate, weights)
    return TASKS[spec.kind](collate=collate)


def evaluate_run(
    spec: RunSpec,
    model: nn.Module,
    tok: Any,
    data: RunData,
    progress: Callable[[int, int], None] | None = None,
    cache: TrunkCache | None = None,
) -> dict[str, Any]:
    """Final metrics on the test split, named `test_*`. `progress(done, total)` hears of each
    batch of test examples (and, for instruct, each sampled answer) as it is scored. With
    `cache` (`gpt.train.loop.eval_cache` over `data.test`, for this very model's frozen trunk)
    the test set's batches run through it: the trunk computed once for the base model's score
    and the trained model's."""
    task = make_task(spec, data.collate)
    model.eval()
    out: dict[str, Any] = {}
    n_answers = spec.eval_samples if spec.kind == "instruct" and data.test_examples else 0
    n_answers = min(n_answers or 0, len(data.test_examples or []))
    total = len(data.test or []) + n_answers
    tell = progress or (lambda done, total: None)
    if data.test:
        rows = list(range(len(data.test)))
        chunks = [rows[i : i + spec.batch_size] for i in range(0, len(rows), spec.batch_size)]
        if cache is not None:  # its larger batches of similar lengths: the same metrics, faster
            chunks = cache.eval_chunks(rows)
            net, each = cache, cache.batches(chunks)
        else:
            net, each = model, (task.collate([data.test[j] for j in c]) for c in chunks)

        def batches():
            done = 0
            for chunk, batch in zip(chunks, each):
                yield batch
                done += len(chunk)
                tell(done, total)

        metrics = task.evaluate(net, batches())
        out.update({k.replace("val_", "test_", 1): v for k, v in metrics.items()})
    if spec.kind == "instruct" and data.test_examples and spec.eval_samples:
        from gpt.train.metrics import response_scores

        sample = data.test_examples[: spec.eval_samples]
        preds = []
        for ex in sample:
            preds.append(answer(model, tok, ex, spec.max_new_tokens))
            tell(len(data.test or []) + len(preds), total)
        scores = response_scores(preds, [ex.output for ex in sample])
        out.update({f"test_{k}": v for k, v in scores.items()})
        out["test_samples"] = [
            {"instruction": ex.instruction, "input": ex.input, "reference": ex.output, "answer": p}
            for ex, p in zip(sample, preds)
        ]
    return out


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """Everything a run needs before its first step, built by `prepare(spec)` for both `run` and
    `estimate_run`: the base model (frozen as the method says), its tokenizer, the data, the
    loop's config and the task."""

    model: nn.Module
    tok: Any
    data: RunData
    cfg: TrainConfig
    task: Task
    trainable: list[str]


def prepare(spec: RunSpec) -> Prepared:
    """Load the base and the data as `spec` says and freeze what its method says."""
    model, tok = load_base(spec)
    body = gpt_body(model)
    context = min(spec.context or body.config.block_size, body.config.block_size)
    data = load_run_data(spec, tok, context)
    cfg = spec.train_config()
    trainable = prepare_model(model, cfg)
    # on the device training will use, before the time estimate and the base model's score
    model.to(choose_device())
    task = make_task(spec, data.collate, data.summary.get("train_labels"))
    return Prepared(model, tok, data, cfg, task, list(trainable))


def estimate_run(spec: RunSpec) -> Estimate:
    """How long `run(spec, ...)` will train and evaluate on this machine: it prepares the run as
    `run` does (`prepare`), plans it and times a few steps (`estimate_prepared`)."""
    return estimate_prepared(spec, prepare(spec))


def estimate_prepared(spec: RunSpec, prep: Prepared) -> Estimate:
    """How long a prepared run will take: training and its evaluations (`estimate_fit`), the
    test set (twice with `score_base`) and, for instruct, the answers scored. A queued job's
    estimate and the one a run announces at its start are this one."""
    model, tok, data, cfg, task = prep.model, prep.tok, prep.data, prep.cfg, prep.task
    est = estimate_fit(model, task, data.train, data.val, cfg)
    test = example_lengths(task, data.test, task.collate) if data.test else []
    test_tokens = sum(
        len(test[i : i + cfg.batch_size]) * max(test[i : i + cfg.batch_size])
        for i in range(0, len(test), cfg.batch_size)
    ) * (2 if spec.score_base else 1)  # the base model scored on the same test set first
    decode_tokens, decode = 0, 0.0
    if spec.kind == "instruct" and data.test_examples and spec.eval_samples:
        decode_tokens = min(spec.eval_samples, len(data.test_examples)) * spec.max_new_tokens
        with torch.no_grad():
            t0 = time.perf_counter()
            generate(model.eval(), tok, "Hello", temperature=0, max_new_tokens=8)
            decode = (time.perf_counter() - t0) / 8
    work = dataclasses.replace(
        est.work, eval_tokens=est.work.eval_tokens + test_tokens, decode_tokens=decode_tokens
    )
    return Estimate(work, dataclasses.replace(est.costs, decode=decode))


def expected_bytes(spec: Mapping[str, Any], ref: ModelRef | None = None) -> int:
    """How much disk a run (`spec` as a dict) should need at most, as `estimate_run` says how
    long: its final model plus the two checkpoints it keeps. A checkpoint holds the trained
    weights and Adam's two moments for them: the whole model for full fine-tuning; for head,
    last_blocks and LoRA only the trained part (the frozen rest is a fingerprint). Weights are
    measured in the base model's folder (`ref`, else resolved from the spec) or counted from a
    config.

    >>> full = expected_bytes({"base": "gpt2", "method": "full"})
    >>> last = expected_bytes({"base": "gpt2", "method": "last_blocks", "save_dtype": "bfloat16"})
    >>> round(full / 1e9, 2), round(last / 1e9, 2)  # GB: 3 x 498 MB per checkpoint, or 3 x 28 MB
    (3.49, 0.42)
    """
    from gpt.lab.names import resolve

    if ref is None:
        try:
            ref = resolve(str(spec.get("base", "")), weights=False)  # no download needed
        except CheckpointError:
            return 0
    if ref.kind in ("preset", "gpt2"):  # counted: a new model, or one maybe not downloaded yet
        weights = ref.config.n_params() * 4
    else:
        weights = sum(p.stat().st_size for p in ref.folder.glob("*.safetensors"))
    trained = weights * _trained_share(ref.config, spec)
    final = weights / 2 if spec.get("save_dtype") == "bfloat16" else weights
    if spec.get("method") == "lora":
        final += trained  # the adapters, beside the merged model
    other = 2**20  # a checkpoint's state.json (the metric history), metrics, logs, tokenizer
    return int(final + 2 * (3 * trained + other) + other)


def _trained_share(config: GPTConfig, spec: Mapping[str, Any]) -> float:
    """The share of a model's parameters that `spec`'s method trains (at most 1)."""
    method, c = spec.get("method", "full"), config.n_embd
    if method == "full":
        return 1.0
    trained = 4 * c + 2  # the final LayerNorm, and a classifier's 2-class head
    if method == "last_blocks":
        trained += min(int(spec.get("last_n_blocks", 1)), config.n_layer) * config.block_params()
    elif method == "lora":
        trained += config.n_layer * int(spec.get("lora_rank", 8)) * 16 * c  # A and B, 4 layers
    return min(1.0, trained / config.n_params())


def run(
    spec: RunSpec,
    out_dir: str | Path,
    callbacks: Sequence[Callable[[TrainEvent], None]] = (),
    resume: bool = False,
    estimate: bool = False,
) -> dict[str, Any]:
    """Train as `spec` says; write `out_dir/{spec.json, checkpoints/, model/, metrics.json}`.

    With `estimate` (and not `resume`), callbacks first get an "estimate" event: how long
    training and evaluation should take on this machine (`gpt.train.estimate`: the run's work
    counted, a few steps of its model timed), metrics `{"seconds", "text"}`, with `eta_s` set
    too; should the estimate fail, a "note" event says why and training goes on.
    Returns the metrics dict that is also written to metrics.json.
    """
    from gpt.train.loop import setup_distributed

    rank, _ = setup_distributed()  # under torchrun: join the group; only rank 0 writes files
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2), encoding="utf-8")
    t0 = time.time()
    prep = prepare(spec)
    model, tok, data, cfg, task = prep.model, prep.tok, prep.data, prep.cfg, prep.task
    body = gpt_body(model)
    if estimate and rank == 0 and not resume:
        _announce_estimate(spec, prep, callbacks)
    # the test set's frozen-trunk activations, shared by the base model's score and the final
    # test (method head / last_blocks; the trunk is the same before and after training)
    split = frozen_split(model, cfg.method, cfg.last_n_blocks)
    test_cache = eval_cache(model, split, cfg, task, data.test, data.collate)
    base_test = None
    if spec.score_base and rank == 0:
        base_test = read_json(out / "base_test.json", None) if resume else None
        if base_test is None:
            report = _stage_reporter(0, cfg.max_steps or 0, callbacks, "scoring the base model")
            base_test = evaluate_run(spec, model, tok, data, report, test_cache)
            base_test.pop("test_samples", None)
            _write_json(out / "base_test.json", base_test)
    result = fit(
        model, task, data.train, data.val, cfg, out_dir=out, callbacks=callbacks, resume=resume
    )
    metrics: dict[str, Any] = {
        "status": result.status,
        "steps": result.step,
        "max_steps": result.max_steps,
        "train_seconds": round(result.elapsed_s, 1),
        "final": result.final,
        "best": result.best,
        "evals": result.evals,
        "history": result.history,
        "data": data.summary,
        "resumed": result.resumed,
        "trainable_parameters": sum(
            p.numel() for n, p in model.named_parameters() if n in set(prep.trainable)
        ),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if base_test is not None:
        metrics["base_test"] = base_test
    if result.status == "stopped" or rank != 0:
        if rank == 0:
            _write_json(out / "metrics.json", metrics)
        return metrics
    if spec.method == "lora":
        from gpt.train.lora import merge_lora, save_adapters

        save_adapters(
            body, out / "adapters.safetensors", meta={"base": spec.base, "kind": spec.kind}
        )
        merge_lora(body)
    if spec.save_dtype == "bfloat16":  # evaluate exactly the weights that will be loaded
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).float())
        test_cache = eval_cache(model, split, cfg, task, data.test, data.collate)  # new trunk
    report = _stage_reporter(result.step, result.max_steps, callbacks)
    metrics["test"] = evaluate_run(spec, model, tok, data, report, test_cache)
    save_final(out / "model", model, tok, spec, metrics)
    metrics["wall_seconds"] = round(time.time() - t0, 1)
    _write_json(out / "metrics.json", metrics)
    return metrics


def _stage_reporter(
    step: int,
    max_steps: int,
    callbacks: Sequence[Callable[[TrainEvent], None]],
    stage: str = "evaluating",
    every_s: float = 0.5,
) -> Callable[[int, int], None]:
    """`progress(done, total)` for a test-set evaluation, as "stage" events (at most one per
    `every_s`, and the last), metrics `{"stage": stage, "done", "total"}`."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.time()
        if now - last[0] < every_s and done < total:
            return
        last[0] = now
        info = {"stage": stage, "done": done, "total": total}
        event = TrainEvent("stage", step, max_steps, 0.0, info, 0.0)
        for cb in callbacks:
            cb(event)

    progress(0, 1)  # the stage starts now, before its first batch is scored
    return progress


def _announce_estimate(spec: RunSpec, prep: Prepared, callbacks: Sequence) -> None:
    _, max_steps = run_length(len(prep.data.train), prep.cfg)
    try:
        est = estimate_prepared(spec, prep)
    except Exception as e:  # an estimate is a courtesy: it never stops a run
        note = {"message": f"no time estimate: {type(e).__name__}: {e}"}
        event = TrainEvent("note", 0, max_steps, 0.0, note, 0.0)
    else:
        info = {"seconds": est.seconds, "text": est.describe()}
        event = TrainEvent("estimate", 0, max_steps, 0.0, info, 0.0, est.seconds)
    for cb in callbacks:
        cb(event)


def save_final(folder: Path, model: nn.Module, tok: Any, spec: RunSpec, metrics: dict) -> Path:
    """Write the trained model as a checkpoint whose metadata is its model card."""
    dtype = torch.bfloat16 if spec.save_dtype == "bfloat16" else torch.float32
    body = gpt_body(model)
    original = body.dtype
    body.to(dtype)
    head, head_state = None, None
    if isinstance(model, GPTClassifier):
        head = {"num_classes": model.num_classes, "labels": list(model.labels)}
        head_state = {k: v.to(dtype) for k, v in model.head.state_dict().items()}
    card = {
        "kind": spec.kind,
        "base": spec.base,
        "data": metrics.get("data"),
        "steps": metrics.get("steps"),
        "train_seconds": metrics.get("train_seconds"),
        "test": {k: v for k, v in metrics.get("test", {}).items() if k != "test_samples"},
        "spec": spec.to_dict(),
    }
    if metrics.get("base_test"):  # the card's baseline: the same test split before tuning
        card[f"untuned_{Path(spec.base).name}_test"] = metrics["base_test"]
    tokenizer = "gpt2" if getattr(tok, "name", "") == "gpt2" else tok
    save_checkpoint(
        folder,
        body,
        task=spec.kind,
        tokenizer=tokenizer,
        head=head,
        head_state=head_state,
        metadata=card,
    )
    body.to(original)
    return folder


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def evaluate_file(kind: str, model_name: str, path: str | Path, **overrides: Any) -> dict[str, Any]:
    """Evaluate a model on a whole data file (no split): the `python -m gpt eval` command.

    classify: accuracy, precision, recall, F1, confusion matrix; lm: loss and perplexity;
    instruct: loss, perplexity and the automatic response scores.
    """
    from gpt.lab.names import load_model, load_tokenizer

    spec = RunSpec(kind=kind, base=model_name, data=str(path), **overrides)
    model, tok = load_model(model_name), load_tokenizer(spec.tokenizer or model_name)
    model.to(choose_device())  # --device, else $GPT2LAB_DEVICE, else the best there is
    context = gpt_body(model).config.block_size
    if (kind == "classify") != isinstance(model, GPTClassifier):
        raise ValueError(f"{model_name} is not a {kind} model")
    p = _source_path(spec)
    if kind == "lm":
        ds = gdata.lm_windows(tok.encode(gdata.read_text_files(p), allowed_special="all"), context)
        data = RunData(ds, None, ds, None, {})
    elif kind == "classify":
        ds = gdata.SpamDataset(gdata.read_spam(p), tok, context)
        data = RunData(ds, None, ds, ds.collate, {})
    else:
        examples = gdata.read_instructions(p)
        ds = gdata.InstructionDataset(examples, tok, context, mask_prompt=spec.mask_prompt)
        data = RunData(ds, None, ds, ds.collate, {}, test_examples=examples)
    metrics = evaluate_run(spec, model, tok, data)
    return {k.removeprefix("test_"): v for k, v in metrics.items()}
