"""One training loop for every task: pretraining (`lm`), classification and instruction tuning.

The tasks differ only in their data and in a named loss (a `Task`: `collate`, `loss`,
`evaluate`); the loop (`fit`, which runs a `Trainer`: AdamW, linear warmup then cosine decay,
gradient clipping and accumulation, periodic evaluation, early stopping, exact checkpoint/resume
of one `LoopState`, DistributedDataParallel under torchrun) is shared. Progress is reported
through callbacks, never printed.

>>> import torch
>>> from gpt.config import PRESETS
>>> from gpt.model import GPT
>>> torch.manual_seed(0) and None
>>> data = torch.randint(0, 512, (16, 17))
>>> ds = [(row[:-1], row[1:]) for row in data]
>>> cfg = TrainConfig(task="lm", max_steps=3, batch_size=4, eval_every=3)
>>> result = fit(GPT(PRESETS["tiny"]), LMTask(), ds, ds[:4], cfg)
>>> result.step, result.status
(3, 'finished')
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from gpt.classifier import GPTClassifier, gpt_body
from gpt.config import unknown_fields
from gpt.device import autocast, choose_device, device_of
from gpt.model import GPT
from gpt.train import state as trainstate
from gpt.train.data import IGNORE_INDEX
from gpt.train.optim import make_optimizer
from gpt.train.state import LoopState
from gpt.train.trunk import Split, TrunkCache, cache_bytes, frozen_split

TaskName = Literal["lm", "classify", "instruct"]
Method = Literal["full", "last_blocks", "head", "lora"]
BUCKETED_TASKS = ("classify", "instruct")  # variable-length examples: batch similar lengths
BUCKET_CHUNK = 8  # batches per length-sorted chunk (see _epoch_batches)
# Tasks whose training forward runs under bf16 autocast where bf16 is fast (`train_precision`).
# Token losses: LoRA instruct's validation loss moved by 4e-4 of 5.76 (bench_finetune). A
# classifier's trained part stays float32: in bf16 its test balanced accuracy on real SMS fell
# by 0.013 on average (starter, last blocks, 7 seeds; bf16 trunk features alone: -0.001).
BF16_TASKS = ("lm", "instruct")
# Instructions vary far more in length (a few tokens to hundreds) than messages: longer sorted
# runs (50 batches, as the megabatches of Hugging Face's group_by_length) cut the padding of
# 1,100 of them in batches of 8 from 34% of the tokens to 5%.
BUCKET_CHUNKS = {"instruct": 50}


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """The training settings a run spec (`gpt.lab.runs.RunSpec`) and the loop (`TrainConfig`)
    share: one definition, one set of defaults, those the CLI, the jobs and the recipes
    train with (lr 5e-5 suits fine-tuning a pretrained model; pass lr for LoRA or pretraining).

    `method` is what trains: "full", "last_blocks" (the last `last_n_blocks`), "head"
    (classify) or "lora" (`lora_rank`, `lora_alpha`); see `prepare_model`. Steps are
    optimizer steps; each consumes `grad_accum` micro-batches of `batch_size` rows.
    `max_steps` wins over `epochs` when both are given; `step_cap` bounds either (a public
    Space's size limit: the epochs decide, up to that many steps). Checkpoints are written every
    `checkpoint_every` steps (default: at each evaluation) and also after any step that ends
    `checkpoint_minutes` after the last one, so a crash loses at most about that much
    training (None: by steps only).

    Speed: `cache_trunk` keeps the frozen trunk's output per example when the method freezes a
    prefix (`head`, `last_blocks`; see `gpt.train.trunk`), unless that would take more than
    `cache_max_mb`; `bucket` batches similar lengths together (classify and instruct), so each
    batch pads to its own longest example, not far past most of them.
    """

    method: Method = "full"
    epochs: float = 1.0
    max_steps: int | None = None
    step_cap: int | None = None
    lr: float = 5e-5
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 0
    weight_decay: float = 0.1
    eval_every: int = 50
    eval_batches: int | None = None
    patience: int | None = None
    checkpoint_every: int | None = None
    checkpoint_minutes: float | None = 5.0
    last_n_blocks: int = 1
    lora_rank: int = 8
    lora_alpha: float = 16.0
    mask_prompt: bool = True
    seed: int = 123
    cache_trunk: bool = True
    cache_max_mb: float = 2048.0
    bucket: bool = True


@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainSettings):
    """Everything about how a run trains (not what data it reads): the shared
    `TrainSettings` and what only the loop needs.

    >>> TrainConfig(task="classify", lr=1e-3).lr, TrainConfig().seed
    (0.001, 123)
    """

    task: TaskName = "lm"
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    keep_checkpoints: int = 2
    log_every: int = 1

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValueError(f"TrainConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        check(self.task in ("lm", "classify", "instruct"), "task", "lm, classify or instruct")
        check(
            self.method in ("full", "last_blocks", "head", "lora"),
            "method",
            "full, last_blocks, head or lora",
        )
        check(
            self.method != "head" or self.task == "classify",
            "method",
            "'head' only for the classify task",
        )
        check(self.epochs > 0, "epochs", "> 0")
        check(self.max_steps is None or self.max_steps > 0, "max_steps", "> 0 or None")
        check(self.step_cap is None or self.step_cap > 0, "step_cap", "> 0 or None")
        check(self.batch_size > 0, "batch_size", "> 0")
        check(self.grad_accum > 0, "grad_accum", "> 0")
        check(0 < self.lr < 1, "lr", "in (0, 1)")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "in [0, 1]")
        check(self.warmup_steps >= 0, "warmup_steps", ">= 0")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "> 0 or None")
        check(self.eval_every > 0, "eval_every", "> 0")
        check(self.patience is None or self.patience > 0, "patience", "> 0 or None")
        check(
            self.checkpoint_minutes is None or self.checkpoint_minutes > 0,
            "checkpoint_minutes",
            "> 0 or None",
        )
        check(self.keep_checkpoints > 0, "keep_checkpoints", "> 0")
        check(self.last_n_blocks > 0, "last_n_blocks", "> 0")
        check(self.lora_rank > 0, "lora_rank", "> 0")
        check(self.cache_max_mb >= 0, "cache_max_mb", ">= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if unknown := unknown_fields(cls, d):
            raise ValueError(f"unknown TrainConfig keys: {', '.join(unknown)}")
        return cls(**d)


def lr_at(step: int, cfg: TrainConfig, max_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine decay.

    >>> cfg = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    >>> [round(lr_at(s, cfg, 110) * 1e3, 3) for s in (0, 9, 10, 60, 110)]
    [0.1, 1.0, 1.0, 0.55, 0.1]
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


# --- losses and tasks ---------------------------------------------------------------------------


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over targets that are not IGNORE_INDEX.

    logits: (B, T, V), targets: (B, T).
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of class logits (B, K) against labels (B,)."""
    return F.cross_entropy(logits, labels)


@runtime_checkable
class Task(Protocol):
    """What the loop needs from a task: how to batch examples, the loss to train on, and the
    metrics of an evaluation. `name` ("lm", "classify", "instruct") decides bucketing; a task
    that can say how many positions of each row reach the loss also has `row_lengths(batch)`
    (it enables bucketing and the frozen-trunk cache)."""

    name: str

    def collate(self, examples: list) -> Any:
        """One batch (a tuple of tensors) from a list of examples."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, int]:
        """The training loss on `batch` and how many tokens it read."""
        ...

    def evaluate(self, model: nn.Module, batches: Iterable) -> dict[str, Any]:
        """Validation metrics (`val_loss` and the task's own) over `batches`."""
        ...


def on_device(batch: Sequence[torch.Tensor], model: nn.Module) -> tuple[torch.Tensor, ...]:
    """A collated batch moved to the device of `model`'s weights (a no-op where it already is):
    collates build batches on the CPU, tasks move them where the model runs.

    >>> on_device((torch.tensor([1]),), nn.Linear(1, 1))[0].device
    device(type='cpu')
    """
    device = device_of(model)
    return tuple(t.to(device) for t in batch)


def stack_fields(examples: list) -> tuple[torch.Tensor, ...]:
    """The default collate: stack each field of equally shaped examples.

    >>> x, y = stack_fields([(torch.tensor([1, 2]), 0), (torch.tensor([3, 4]), 1)])
    >>> x.tolist(), y.tolist()
    ([[1, 2], [3, 4]], [0, 1])
    """
    return tuple(
        torch.stack([torch.as_tensor(ex[i]) for ex in examples]) for i in range(len(examples[0]))
    )


class LMTask:
    """Next-token prediction. Batches are (inputs (B, T), targets (B, T)).

    `collate` pads the examples into a batch (a dataset's own, e.g.
    `gpt.train.data.InstructionDataset.collate`); the default stacks equal-length windows.
    """

    name = "lm"

    def __init__(self, collate: Callable[[list], Any] | None = None) -> None:
        self._collate = collate or stack_fields

    def collate(self, examples: list) -> Any:
        return self._collate(examples)

    def row_lengths(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per row, how many leading positions the loss can depend on (B,): up to the last
        target that is not IGNORE_INDEX (attention is causal, so later ones never matter)."""
        _, y = batch
        positions = torch.arange(1, y.shape[1] + 1, device=y.device)  # (T,)
        return ((y != IGNORE_INDEX) * positions).amax(dim=1)

    def token_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the targets `y` (B, T) given inputs `x` (B, T)."""
        return lm_loss(model(x), y)

    def loss(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = on_device(batch, model)
        return self.token_loss(model, x, y), int((y != IGNORE_INDEX).sum())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            x, y = on_device(batch, model)
            n = int((y != IGNORE_INDEX).sum())
            if n:
                total += float(self.token_loss(model, x, y)) * n
                count += n
        loss = total / max(count, 1)
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}


class InstructTask(LMTask):
    """Instruction tuning: the LM loss on responses (prompt tokens masked by the collate).

    The vocabulary projection (50,257 logits a position for GPT-2) and its softmax run at the
    target positions only: a prompt or padding position's logits never reach the loss, so a
    plain GPT computes its final features `(B, T, C)` and projects just the `(N, C)` rows whose
    target counts. Same loss and gradients as `lm_loss(model(x), y)`, which other wrappers
    (DDP, the frozen-trunk cache) still use.
    """

    name = "instruct"

    def token_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return target_loss(model, x, y)


def target_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`lm_loss(model(x), y)`, projecting to the vocabulary only where `y` is a target (for a
    plain `GPT`; anything else runs whole).

    >>> from gpt.config import PRESETS
    >>> m = GPT(PRESETS["tiny"]).eval()
    >>> x = torch.randint(0, 512, (2, 6)); y = x.roll(-1, 1); y[:, :3] = IGNORE_INDEX
    >>> bool(torch.allclose(target_loss(m, x, y), lm_loss(m(x), y), atol=1e-6))
    True
    """
    if type(model) is not GPT:
        return lm_loss(model(x), y)
    keep = y != IGNORE_INDEX  # (B, T)
    h = model.hidden(x)[keep]  # (N, C)
    return F.cross_entropy(model.lm_head(h), y[keep])  # (N, V) logits


class ClassifyTask:
    """Classification on the last non-padding token. Batches are (ids, last_index, labels).

    With `prefix_weight` > 0 the head also learns the label from every prefix of a message
    (cross-entropy averaged over its tokens, times `prefix_weight`, added to the last-token
    loss), so P(class) after each token rises as the evidence appears instead of firing only
    at the end: what the Spam tab's trace shows. `collate` pads `(ids, label)` examples
    (`gpt.train.data.SpamDataset.collate`); the default stacks equal-length ones.

    `class_weights` (one per class, e.g. `gpt.train.data.class_weights`) weigh each example's
    training loss by its class, so a rare class counts as much as a common one; evaluation
    reports the plain, unweighted loss either way.
    """

    name = "classify"

    def __init__(
        self,
        prefix_weight: float = 0.0,
        collate: Callable[[list], Any] | None = None,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        if prefix_weight < 0:
            raise ValueError(f"prefix_weight must be >= 0, got {prefix_weight!r}")
        if class_weights is not None and not all(w > 0 for w in class_weights):
            raise ValueError(f"class_weights must all be > 0, got {list(class_weights)!r}")
        self.prefix_weight = prefix_weight
        self._collate = collate or stack_fields
        self.class_weights = None if class_weights is None else torch.tensor(class_weights)

    def collate(self, examples: list) -> Any:
        return self._collate(examples)

    def row_lengths(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per row, how many leading positions the loss can depend on (B,): the message."""
        return batch[1] + 1

    def loss(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
        ids, last, labels = on_device(batch, model)
        tokens = int((last + 1).sum())
        w = None if self.class_weights is None else self.class_weights.to(ids.device)
        if not self.prefix_weight:
            return F.cross_entropy(model(ids, last), labels, weight=w), tokens
        logits = model(ids, every_position=True)  # (B, T, K)
        rows = torch.arange(ids.shape[0], device=ids.device)
        final = F.cross_entropy(logits[rows, last], labels, weight=w)
        inside = torch.arange(ids.shape[1], device=ids.device)[None, :] <= last[:, None]  # (B, T)
        every = labels[:, None].expand_as(inside)
        prefix = F.cross_entropy(logits[inside], every[inside], weight=w)
        return final + self.prefix_weight * prefix, tokens

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable) -> dict[str, Any]:
        from gpt.train.metrics import classification_report

        total, n, preds, truth = 0.0, 0, [], []
        for batch in batches:
            ids, last, labels = on_device(batch, model)
            logits = model(ids, last)
            total += float(classification_loss(logits, labels)) * len(labels)
            n += len(labels)
            preds += logits.argmax(-1).tolist()
            truth += labels.tolist()
        report = classification_report(truth, preds)
        return {"val_loss": total / max(n, 1), **{f"val_{k}": v for k, v in report.items()}}


TASKS: dict[str, type[Task]] = {
    "lm": LMTask,
    "classify": ClassifyTask,
    "instruct": InstructTask,
}


def train_precision(task: Task, device: torch.device) -> AbstractContextManager:
    """What a training forward of `task` runs under: bf16 autocast where bf16 is fast
    (`gpt.device.autocast`) for the tasks in `BF16_TASKS`, float32 for the others.

    >>> type(train_precision(ClassifyTask(), torch.device("cpu"))).__name__
    'nullcontext'
    """
    return autocast(device) if getattr(task, "name", None) in BF16_TASKS else nullcontext()


# --- what trains --------------------------------------------------------------------------------


def prepare_model(model: nn.Module, cfg: TrainConfig) -> list[str]:
    """Freeze parameters according to `cfg.method`; return the names left trainable.

    - full: everything trains;
    - head (classify only): only the classification head;
    - last_blocks: the last `last_n_blocks` blocks, the final LayerNorm (and the head);
    - lora: LoRA adapters on the attention and MLP projections (and the head).
    """
    body = gpt_body(model)
    if cfg.method == "lora":
        from gpt.train.lora import apply_lora

        apply_lora(body, rank=cfg.lora_rank, alpha=cfg.lora_alpha)
    elif cfg.method != "full":
        for p in body.parameters():
            p.requires_grad = False
        if cfg.method == "last_blocks":
            n = min(cfg.last_n_blocks, len(body.h))
            for module in [*body.h[-n:], body.ln_f]:
                for p in module.parameters():
                    p.requires_grad = True
    if isinstance(model, GPTClassifier):
        for p in model.head.parameters():
            p.requires_grad = True
    return [n for n, p in model.named_parameters() if p.requires_grad]


# --- the loop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainEvent:
    """What callbacks receive. `kind` is "resume", "note" (metrics["message"]: a log line),
    "step", "eval", "checkpoint" or "end" (and, from `gpt.lab.runs.run`, "estimate", and "stage"
    while it scores the test set: metrics `{"stage": "evaluating", "done", "total"}`)."""

    kind: str
    step: int
    max_steps: int
    epoch: float
    metrics: dict[str, Any]
    elapsed_s: float
    eta_s: float | None = None


class StopTraining(Exception):  # noqa: N818 (a signal, not an error)
    """Raise from a callback to stop once the current step is done (a checkpoint is written)."""


@dataclass
class TrainResult:
    step: int
    max_steps: int
    status: str  # "finished", "early_stopped" or "stopped"
    history: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    resumed: dict[str, Any] = field(default_factory=dict)  # from, step, skipped (broken ones)


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def run_length(n_examples: int, cfg: TrainConfig) -> tuple[int, int]:
    """(micro-batches per epoch, optimizer steps in the run) for `n_examples` examples.

    >>> run_length(100, TrainConfig(batch_size=8, grad_accum=2, epochs=3))
    (13, 21)
    >>> run_length(100, TrainConfig(batch_size=8, grad_accum=2, epochs=3, step_cap=10))
    (13, 10)
    """
    micro_per_epoch = math.ceil(n_examples / cfg.batch_size)
    steps_per_epoch = max(1, math.ceil(micro_per_epoch / cfg.grad_accum))
    steps = cfg.max_steps or max(1, round(cfg.epochs * steps_per_epoch))
    return micro_per_epoch, min(steps, cfg.step_cap or steps)


def step_schedule(
    n_examples: int, cfg: TrainConfig, lengths: Sequence[int] | None = None
) -> list[list[list[int]]]:
    """Every optimizer step's micro-batches (indices into the data), as `fit` will draw them
    from the start (`lengths`: bucketed, as `fit` does for classify and instruct), for
    planning a run before it starts (`gpt.train.estimate`).

    >>> step_schedule(5, TrainConfig(batch_size=2, epochs=1, seed=0))
    [[[4, 0]], [[1, 3]], [[2]]]
    """
    plan, (_, max_steps) = BatchPlan(n_examples, cfg, lengths), run_length(n_examples, cfg)
    steps, micro = [], 0
    while len(steps) < max_steps:
        steps.append(plan.step_at(micro))
        micro += len(steps[-1])
    return steps


class BatchPlan:
    """Which examples each optimizer step trains on: every epoch a fresh `_epoch_batches`
    (bucketed when `lengths` is given, in sorted chunks of the task's `BUCKET_CHUNKS`), cut
    into steps of `grad_accum` micro-batches."""

    def __init__(
        self, n_examples: int, cfg: TrainConfig, lengths: Sequence[int] | None = None
    ) -> None:
        self.n, self.cfg, self.lengths = n_examples, cfg, lengths
        self.micro_per_epoch = math.ceil(n_examples / cfg.batch_size)
        self.epoch, self.batches = -1, []

    def step_at(self, micro: int) -> list[list[int]]:
        """The micro-batches of the step that starts at micro-batch `micro` (counted from the
        start of the run); a short last group ends its epoch."""
        epoch, pos = divmod(micro, self.micro_per_epoch)
        if epoch != self.epoch:
            cfg = self.cfg
            self.epoch = epoch
            chunk = BUCKET_CHUNKS.get(cfg.task, BUCKET_CHUNK)
            self.batches = _epoch_batches(
                self.n, cfg.batch_size, epoch, cfg.seed, self.lengths, chunk
            )
        return self.batches[pos : pos + self.cfg.grad_accum]


def _epoch_batches(
    n: int,
    batch: int,
    epoch: int,
    seed: int,
    lengths: Sequence[int] | None = None,
    chunk: int = BUCKET_CHUNK,
) -> list[list[int]]:
    """The micro-batches of one epoch: a permutation seeded by (seed, epoch), cut in order.

    With `lengths` (bucketing), the permutation is cut into chunks of `chunk` batches, each
    chunk sorted by length and cut into batches, and the full batches shuffled (a short one
    stays last), so a batch holds similar lengths and pads little, in an order that is still
    random and a function of (seed, epoch) alone: a resumed run sees the same batches.

    >>> _epoch_batches(6, 2, 0, 0)
    [[2, 5], [3, 0], [1, 4]]
    >>> _epoch_batches(6, 2, 0, 0, lengths=[1, 9, 2, 8, 3, 7])  # lengths 1+2, 8+9, 3+7
    [[0, 2], [3, 1], [4, 5]]
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    if lengths is None:
        return [order[i : i + batch] for i in range(0, n, batch)]
    size = batch * chunk
    batches = []
    for c in range(0, n, size):
        part = sorted(order[c : c + size], key=lambda i: lengths[i])  # stable: ties stay random
        batches += [part[i : i + batch] for i in range(0, len(part), batch)]
    short = [batches.pop()] if len(batches[-1]) < batch else []
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()] + short


def example_lengths(task: Task, data: Sequence, collate: Callable[[list], Any]) -> list[int] | None:
    """Each example's length in positions that reach the loss (`task.row_lengths` of the
    example collated alone), or None for a task that cannot say."""
    if not hasattr(task, "row_lengths"):
        return None
    return [int(task.row_lengths(collate([ex]))[0]) for ex in data]


def eval_cache(
    model: nn.Module,
    split: Split | None,
    cfg: TrainConfig,
    task: Task,
    data: Sequence | None,
    collate: Callable[[list], Any] | None = None,
) -> TrunkCache | None:
    """A frozen-trunk cache over an evaluation set (validation, test), or None where the trunk
    cache does not apply (no frozen trunk, `cache_trunk` off, under DistributedDataParallel, a
    task that cannot say its lengths, or over `cache_max_mb`). Evaluate through it with
    `task.evaluate(cache, cache.batches(chunks))`: the same metrics as through the model, the
    trunk computed once per example."""
    if split is None or not data or not cfg.cache_trunk or _distributed()[1] > 1:
        return None
    collate = collate or task.collate
    lengths = example_lengths(task, data, collate)
    if lengths is None:
        return None
    if cache_bytes(lengths, gpt_body(model).config.n_embd) / 2**20 > cfg.cache_max_mb:
        return None
    return TrunkCache(model, split, data, collate, lengths)


def _trunk_cache(
    model: nn.Module,
    split: Split | None,
    cfg: TrainConfig,
    data: Sequence,
    collate: Callable[[list], Any],
    lengths: list[int] | None,
    world: int,
) -> tuple[TrunkCache | None, str | None]:
    """The frozen-trunk cache for this run, or None and why not (a log line) when it could
    help but does not apply."""
    if split is None or not cfg.cache_trunk:
        return None, None
    if world > 1:
        return None, "frozen-trunk cache off: not used under DistributedDataParallel"
    if lengths is None:
        return None, "frozen-trunk cache off: the task does not say its examples' lengths"
    need = cache_bytes(lengths, gpt_body(model).config.n_embd) / 2**20
    if need > cfg.cache_max_mb:
        return None, (
            f"frozen-trunk cache off: it would take {need:,.0f} MB, over cache_max_mb "
            f"{cfg.cache_max_mb:,.0f}; every epoch runs the whole model"
        )
    note = f"frozen-trunk cache on: {len(lengths):,} examples, {need:,.1f} MB (float32)"
    return TrunkCache(model, split, data, collate, lengths), note


class EtaClock:
    """Time left in a run, from recent steps, not the average since the start: steps get
    faster once the frozen trunk is cached, so the average would overstate what is left.

    The estimate is the mean time of the last `window` steps without the trunk computations
    they did, times the steps left, plus the trunk computations still to come (from the
    cache's measured cost per example), plus the evaluations left at the last one's duration.

    >>> clock = EtaClock(window=2)
    >>> for s in (5.0, 1.0, 1.0):
    ...     clock.step(s)
    >>> clock.eval_s = 3.0
    >>> clock.eta(steps_left=10, evals_left=2, trunk_left_s=4.0)
    20.0
    """

    def __init__(self, window: int = 20) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.eval_s = 0.0

    def step(self, seconds: float) -> None:
        self.recent.append(seconds)

    def eta(self, steps_left: int, evals_left: int, trunk_left_s: float = 0.0) -> float:
        per_step = sum(self.recent) / len(self.recent) if self.recent else 0.0
        return per_step * steps_left + self.eval_s * evals_left + trunk_left_s


def evals_left(step: int, max_steps: int, eval_every: int) -> int:
    """Evaluations still to run after step `step` (every `eval_every` steps, and at the end).

    >>> evals_left(0, 10, 4), evals_left(8, 10, 4), evals_left(10, 10, 4)
    (3, 1, 0)
    """
    if step >= max_steps:
        return 0
    return max_steps // eval_every - step // eval_every + (max_steps % eval_every != 0)


def split_rows(rows: list[int], rank: int, world: int) -> tuple[list[int], float]:
    """This rank's share of a micro-batch under DistributedDataParallel, and its loss weight.

    The rows are cut into `world` contiguous parts whose sizes differ by at most one, and each
    rank's mean loss is weighted by `world * len(share) / len(rows)`, so DDP's average of
    the ranks' gradients is the gradient of the whole micro-batch's mean loss, as in one
    process, even when a short last batch does not divide evenly. A rank left without rows
    (fewer rows than ranks) trains on one row with weight 0: every rank must still join each
    gradient all-reduce.

    >>> split_rows([0, 1, 2, 3], 1, 2)
    ([2, 3], 1.0)
    >>> [split_rows([7, 8, 9], r, 2) for r in range(2)]
    [([7, 8], 1.3333333333333333), ([9], 0.6666666666666666)]
    >>> [split_rows([7], r, 2) for r in range(2)]
    [([7], 2.0), ([7], 0.0)]
    """
    size, extra = divmod(len(rows), world)
    start = rank * size + min(rank, extra)
    share = rows[start : start + size + (rank < extra)]
    if not share:
        return rows[:1], 0.0
    return share, world * len(share) / len(rows)


class Trainer:
    """One run of the loop, as `fit` describes it, in named steps: `train_step` (one optimizer
    step over `grad_accum` micro-batches), `evaluate`, `save` (a checkpoint of the whole
    `LoopState`) and `run`, which strings them together until the run ends."""

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        train_data: Sequence,
        val_data: Sequence | None,
        cfg: TrainConfig,
        *,
        collate: Callable[[list], Any] | None = None,
        out_dir: str | Path | None = None,
        callbacks: Sequence[Callable[[TrainEvent], None]] = (),
        resume: bool = False,
        device: str | torch.device | None = None,
    ) -> None:
        if len(train_data) == 0:
            raise ValueError("no training examples")
        self.rank, self.world = _distributed()
        placed = device_of(model)  # a model already on an accelerator stays there
        self.device = choose_device(device) if device or placed.type == "cpu" else placed
        model.to(self.device)  # before the optimizer, the trunk cache and a resume read it
        if self.world > 1 and cfg.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.batch_size} must divide by world size {self.world}")
        self.model, self.task, self.cfg, self.callbacks = model, task, cfg, callbacks
        self.train_data, self.val_data = train_data, val_data
        self.collate = collate or task.collate
        self.ckpt_root = Path(out_dir) / "checkpoints" if out_dir is not None else None
        self.micro_per_epoch, max_steps = run_length(len(train_data), cfg)

        torch.manual_seed(cfg.seed)
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.state = LoopState(max_steps=max_steps, config=cfg.to_dict())
        self.resumed: dict[str, Any] = self._resume() if resume else {}
        self.wrapped = model
        if self.world > 1:  # one GPU per process (its own cuda:LOCAL_RANK), or the CPU
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)

        self.split = frozen_split(model, cfg.method, cfg.last_n_blocks)
        bucket = cfg.bucket and task.name in BUCKETED_TASKS
        lengths = None
        if bucket or (self.split is not None and cfg.cache_trunk):
            lengths = example_lengths(task, train_data, self.collate)
        self.cache, self.cache_note = _trunk_cache(
            model, self.split, cfg, train_data, self.collate, lengths, self.world
        )
        self.val_cache = None  # validation runs the frozen trunk once per example too
        if self.cache is not None and val_data:
            self.val_cache = eval_cache(model, self.split, cfg, task, val_data, self.collate)
        self.plan = BatchPlan(len(train_data), cfg, lengths if bucket else None)
        self.clock = EtaClock()
        self.stop_requested = False  # a callback raised StopTraining
        self.t0 = time.time()
        # when the last checkpoint was written (or training began)
        self.last_ckpt = time.monotonic()

    def _resume(self) -> dict[str, Any]:
        """Load the newest valid checkpoint; what the "resume" event reports."""
        if self.ckpt_root is None:
            raise ValueError("resume needs out_dir")
        folder, saved, skipped = trainstate.latest_valid(self.ckpt_root)
        loop = trainstate.load_train_state(folder, saved, self.model, self.optimizer)
        self.state = dataclasses.replace(
            loop, max_steps=self.state.max_steps, config=self.state.config
        )
        return {"from": str(folder), "step": loop.step, "skipped": skipped}

    # --- events and modes ---

    def emit(self, kind: str, metrics: dict[str, Any], eta: float | None = None) -> None:
        """Tell the callbacks (rank 0 only); a StopTraining from one is remembered."""
        if self.rank != 0:
            return
        s = self.state
        epoch = s.epoch(self.micro_per_epoch)
        event = TrainEvent(kind, s.step, s.max_steps, epoch, metrics, time.time() - self.t0, eta)
        for cb in self.callbacks:
            try:
                cb(event)
            except StopTraining:
                self.stop_requested = True

    def train_mode(self) -> None:
        self.model.train()
        if (
            self.split is not None
        ):  # the frozen trunk never drops out, cached or not (gpt.train.trunk)
            for m in self.split.frozen_modules(gpt_body(self.model)):
                m.eval()

    # --- the three things a loop does ---

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over the next `grad_accum` micro-batches; its log record."""
        s, cfg = self.state, self.cfg
        group = self.plan.step_at(s.micro)
        lr = lr_at(s.step, cfg, s.max_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        t_step, trunk_s = time.time(), self.cache.trunk_seconds if self.cache else 0.0
        loss_sum, tokens = 0.0, 0
        for j, rows in enumerate(group):
            rows, weight = split_rows(rows, self.rank, self.world)
            net = self.cache.for_rows(rows) if self.cache else self.wrapped
            sync = j == len(group) - 1 or self.world == 1  # all-reduce grads once a step
            with nullcontext() if sync else self.wrapped.no_sync():
                batch = self.collate([self.train_data[i] for i in rows])
                with train_precision(self.task, self.device):  # backward runs outside it
                    loss, n_tok = self.task.loss(net, batch)
                (loss * weight / len(group)).backward()
            loss_sum += float(loss.detach()) * weight / len(group)
            tokens += n_tok if weight else 0
        gnorm = float("nan")
        if cfg.grad_clip:
            gnorm = float(torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        s.micro += len(group)  # a short last group ends the epoch exactly
        s.step += 1
        if self.world > 1:  # the loss and tokens of the whole step, over every rank
            t = torch.tensor([loss_sum, tokens], dtype=torch.float64, device=self.device)
            dist.all_reduce(t)
            loss_sum, tokens = float(t[0]) / self.world, int(t[1])
        dt = time.time() - t_step
        self.clock.step(dt - (self.cache.trunk_seconds - trunk_s if self.cache else 0.0))
        return {
            "step": s.step,
            "loss": loss_sum,
            "lr": lr,
            "grad_norm": gnorm,
            "tokens_per_s": tokens / max(dt, 1e-9),
            "epoch": s.epoch(self.micro_per_epoch),
        }

    def evaluate(self) -> dict[str, Any]:
        """Validation metrics (none without validation data); updates best and bad_evals."""
        t_eval, s, cfg = time.time(), self.state, self.cfg
        self.model.eval()
        metrics = {"step": s.step}
        if self.val_data:
            rows = range(len(self.val_data))
            chunks = [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
            chunks = chunks[: cfg.eval_batches or None]
            if self.val_cache is not None:  # the same examples, in the cache's larger batches
                each = self.val_cache.batches(self.val_cache.eval_chunks(i for c in chunks for i in c))
                metrics.update(self.task.evaluate(self.val_cache, each))
            else:
                batches = (self.collate([self.val_data[i] for i in c]) for c in chunks)
                metrics.update(self.task.evaluate(self.model, batches))
        self.train_mode()
        self.clock.eval_s = time.time() - t_eval
        s.evals.append(metrics)
        if "val_loss" in metrics:
            if s.best is None or metrics["val_loss"] < s.best["val_loss"]:
                s.best, s.bad_evals = metrics, 0
            else:
                s.bad_evals += 1
        return metrics

    def save(self) -> None:
        """Write a checkpoint (with out_dir, on rank 0): weights, optimizer and the LoopState."""
        if self.ckpt_root is None or self.rank != 0:
            return
        folder = self.ckpt_root / f"step-{self.state.step:07d}"
        trainstate.save_train_state(folder, self.model, self.optimizer, self.state)
        trainstate.prune(self.ckpt_root, self.cfg.keep_checkpoints)
        self.last_ckpt = time.monotonic()
        self.emit("checkpoint", {"path": str(folder)})

    # --- the loop ---

    def eta(self) -> float:
        """Seconds left in the run (`EtaClock`)."""
        s, cfg = self.state, self.cfg
        examples_left = (s.max_steps - s.step) * cfg.grad_accum * cfg.batch_size
        trunk_left = self.cache.seconds_left(examples_left) if self.cache else 0.0
        return self.clock.eta(
            s.max_steps - s.step, evals_left(s.step, s.max_steps, cfg.eval_every), trunk_left
        )

    def checkpoint_due(self) -> bool:
        """Every `checkpoint_every` steps (default: each evaluation), at the end, when asked
        to stop, and once `checkpoint_minutes` have passed since the last one."""
        s, cfg = self.state, self.cfg
        overdue = cfg.checkpoint_minutes is not None and (
            time.monotonic() - self.last_ckpt >= 60 * cfg.checkpoint_minutes
        )
        every = cfg.checkpoint_every or cfg.eval_every
        return s.step % every == 0 or s.step == s.max_steps or self.stop_requested or overdue

    def run(self) -> TrainResult:
        """Train until max_steps, early stopping, or a StopTraining from a callback."""
        s, cfg = self.state, self.cfg
        self.train_mode()
        if self.resumed:  # newer checkpoints that failed verification are reported, not hidden
            self.emit("resume", self.resumed)
        if self.cache_note:
            self.emit("note", {"message": self.cache_note})
        status = "finished"
        while s.step < s.max_steps:
            record = self.train_step()
            eta, end = self.eta(), s.step == s.max_steps
            if s.step % cfg.log_every == 0 or end:
                s.history.append(record)
                self.emit("step", record, eta)
            if s.step % cfg.eval_every == 0 or end:
                self.emit("eval", self.evaluate(), eta)
                if cfg.patience and s.bad_evals >= cfg.patience:
                    status = "early_stopped"
                    self.save()
                    break
            if self.checkpoint_due():
                self.save()
            if self.stop_requested and not end:
                status = "stopped"
                break
        if self.world > 1:
            dist.barrier()
        final = s.evals[-1] if s.evals else {}
        elapsed = time.time() - self.t0
        result = TrainResult(
            s.step, s.max_steps, status, s.history, s.evals, final, s.best, elapsed, self.resumed
        )
        self.emit("end", {"status": status, **final})
        return result


def fit(
    model: nn.Module,
    task: Task,
    train_data: Sequence,
    val_data: Sequence | None,
    cfg: TrainConfig,
    *,
    collate: Callable[[list], Any] | None = None,
    out_dir: str | Path | None = None,
    callbacks: Sequence[Callable[[TrainEvent], None]] = (),
    resume: bool = False,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train `model` on `train_data` (a sequence of examples), evaluating on `val_data`.

    Batches are made by `collate` (default: `task.collate`). With `out_dir`, training
    checkpoints go to `out_dir/checkpoints/` every `checkpoint_every` steps (default: every
    evaluation), after any step that ends `checkpoint_minutes` or more after the last one,
    and at the end; `resume=True` continues from the newest valid one, with the same data
    order, RNG states and history, so the result equals an uninterrupted run's.

    When `cfg.method` freezes a prefix of the network, that prefix runs in eval mode (no
    dropout) and, with `cfg.cache_trunk`, its output is computed once per example and reused
    (`gpt.train.trunk.TrunkCache`); with `cfg.bucket`, classify and instruct batches group similar
    lengths (`_epoch_batches`). A "note" event says whether the cache is used. Under
    torchrun each micro-batch is shared among the ranks (`split_rows`).

    The model is moved to `device` (default: a model on the CPU goes to
    `gpt.device.choose_device()`, so CUDA, then MPS, then the CPU unless `$GPT2LAB_DEVICE` says
    otherwise; one already on a GPU stays on it) and stays there; the tasks move each
    batch to it, and where bf16 is fast (CUDA, a CPU with AVX512-BF16 or AMX) the training
    forward of token tasks (`train_precision`) and the frozen trunk's features run under bf16
    autocast (`gpt.device.autocast`; `$GPT2LAB_BF16=0` turns it off). Evaluation runs in
    float32.
    """
    trainer = Trainer(
        model,
        task,
        train_data,
        val_data,
        cfg,
        collate=collate,
        out_dir=out_dir,
        callbacks=callbacks,
        resume=resume,
        device=device,
    )
    return trainer.run()


def setup_distributed() -> tuple[int, int]:
    """Join the process group when launched by torchrun: NCCL when this process trains on a
    GPU (`gpt.device.choose_device()`: its own `cuda:LOCAL_RANK`), gloo on the CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        device = choose_device()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _distributed()


def leave_distributed(code: int = 0) -> None:
    """End this rank's process once its work is done: leave the process group, then exit with
    `code` at once, skipping the interpreter's shutdown. A no-op outside a process group.

    Why not a normal exit: gloo's worker threads can still be releasing the last collective's
    tensors when the interpreter shuts down; a thread that needs the GIL then is killed and
    `std::terminate` aborts the rank (SIGABRT after all its work: 1 run in 20-40 of the 2-rank
    test on a busy 2-core machine, torch 2.13), and torchrun reports the finished run as failed.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.destroy_process_group()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
