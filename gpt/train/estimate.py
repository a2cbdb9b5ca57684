"""How long a training run will take, said before it starts.

Two parts, kept apart so the arithmetic can be checked without a clock:

- `plan` counts the work from the data and the config alone: the optimizer steps, and the
  padded tokens that go through the frozen trunk (once per example when it is cached, every
  step when not), through the trained part (forward and backward, every step) and through the
  whole model in evaluations. It draws the very batches `fit` will (`gpt.train.loop.step_schedule`),
  so bucketing and each batch's own padding are counted as they will happen.
- `measure` times a few forward/backward passes of the actual model on a batch of the data's
  median length, on this machine as it is now: seconds per token of each kind of work.

`Estimate.seconds` is their product, summed. It counts training and evaluation, not loading
the model or writing it out.

>>> work = Workload(steps=10, trunk_tokens=1000, train_tokens=3000, eval_tokens=500)
>>> costs = Costs(trunk=1e-3, train=2e-3, eval=1e-3, step=0.1)
>>> round(Estimate(work, costs).seconds, 6)  # 1 + 6 + 0.5 + 1
8.5
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from gpt.classifier import gpt_body
from gpt.device import autocast
from gpt.train.loop import (
    BUCKETED_TASKS,
    TrainConfig,
    example_lengths,
    step_schedule,
    train_precision,
)
from gpt.train.optim import make_optimizer
from gpt.train.trunk import (
    GROUP,
    Split,
    TrunkCache,
    cache_bytes,
    frozen_split,
    length_groups,
)


@dataclass(frozen=True)
class Workload:
    """What a run computes, counted before it starts (tokens are padded positions)."""

    steps: int
    trunk_tokens: int  # through the frozen trunk, forward only
    train_tokens: int  # through the trained part, forward and backward
    eval_tokens: int  # forward only (evaluations; the trained part alone when cached)
    decode_tokens: int = 0  # generated one at a time (instruct: the response score)


@dataclass(frozen=True)
class Costs:
    """Seconds per token of each kind of work, and per optimizer step (`measure`)."""

    trunk: float
    train: float
    eval: float
    step: float
    decode: float = 0.0


@dataclass(frozen=True)
class Estimate:
    work: Workload
    costs: Costs

    @property
    def seconds(self) -> float:
        w, c = self.work, self.costs
        return (
            w.trunk_tokens * c.trunk
            + w.train_tokens * c.train
            + w.eval_tokens * c.eval
            + w.steps * c.step
            + w.decode_tokens * c.decode
        )

    def describe(self) -> str:
        """`about 4 min on this machine`, rounded as an estimate should be.

        >>> Estimate(Workload(1, 0, 0, 0), Costs(0, 0, 0, 200)).describe()
        'about 3 min on this machine'
        """
        return f"about {duration(self.seconds, rough=True)} on this machine"


def duration(seconds: float | None, rough: bool = False) -> str:
    """A duration for people: "42 s", "3 min 05 s", "2 h 07 min"; "—" when unknown. `rough`
    rounds it as an estimate should be: to 5 s, to the minute, to 10 minutes past an hour.

    >>> duration(42.4), duration(185), duration(7620), duration(None)
    ('42 s', '3 min 05 s', '2 h 07 min', '—')
    >>> [duration(s, rough=True) for s in (4, 44, 150, 4000)]
    ['5 s', '45 s', '3 min', '1 h 10 min']
    """
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if rough:
        if seconds < 60:
            return f"{max(5, int(seconds / 5 + 0.5) * 5)} s"
        if seconds < 3600:
            return f"{int(seconds / 60 + 0.5)} min"
        h, m = divmod(int(seconds / 600 + 0.5) * 10, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def plan(
    cfg: TrainConfig,
    lengths: Sequence[int],
    val_lengths: Sequence[int] = (),
    *,
    split: bool = False,
    cached: bool = False,
    bucket: bool = False,
    group: int = GROUP,
) -> Workload:
    """Count the work of `fit(..., cfg)` on examples of these lengths.

    `split`: a frozen trunk (method head / last_blocks); `cached`: its output kept per example
    (computed once, on groups of `group` similar lengths, as `gpt.train.trunk.TrunkCache` does);
    `bucket`: bucketed batches.

    >>> cfg = TrainConfig(task="classify", batch_size=2, epochs=2, eval_every=100)
    >>> w = plan(cfg, [1, 4, 2, 3], [5, 5], split=True, cached=True, bucket=True, group=2)
    >>> w.steps, w.train_tokens, w.trunk_tokens, w.eval_tokens
    (4, 24, 22, 10)

    Bucketed batches (1, 2) and (3, 4) pad to 2 and 4: 2 * 2 + 2 * 4 = 12 tokens an epoch,
    24 in two; the trunk runs once on the same groups (12) and once on the validation set (10);
    one evaluation of 2 * 5 tokens (through the trained part only, when cached).
    """
    schedule = step_schedule(len(lengths), cfg, lengths if bucket else None)
    seen: set[int] = set()
    train = 0
    for micro_batches in schedule:
        for rows in micro_batches:
            train += len(rows) * max(lengths[i] for i in rows)
            seen.update(rows)
    trunk = 0
    rows = range(len(val_lengths))
    chunks = [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
    chunks = chunks[: cfg.eval_batches or None]
    if split and cached:  # validation has a cache of its own: its trunk also runs once
        trunk = _group_tokens(lengths, seen, group)
        trunk += _group_tokens(val_lengths, {i for c in chunks for i in c}, group)
    elif split:
        trunk = train
    steps = len(schedule)
    evals = steps // cfg.eval_every + (steps % cfg.eval_every != 0)
    per_eval = sum(len(c) * max(val_lengths[i] for i in c) for c in chunks)
    return Workload(steps, trunk, train, evals * per_eval)


def _group_tokens(lengths: Sequence[int], used: set[int], group: int) -> int:
    """Padded tokens the trunk cache computes to hold the examples in `used`: each of its
    `length_groups` (up to `group` similar lengths) that holds one of them, padded to its longest.

    >>> _group_tokens([1, 4, 2, 3], {0}, 2)  # the group (1, 2), padded to 2
    4
    """
    total = 0
    for rows in length_groups(lengths, range(len(lengths)), group):
        if used.intersection(rows):
            total += len(rows) * max(lengths[i] for i in rows)
    return total


def _seconds(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median seconds of `repeats` calls after `warmup` untimed ones (first calls allocate,
    and a busy machine makes single timings jumpy)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    model: nn.Module,
    task: Any,
    data: Sequence,
    collate: Callable[[list], Any],
    cfg: TrainConfig,
    lengths: Sequence[int],
    split: Split | None,
    repeats: int = 3,
    cached: bool = True,
) -> Costs:
    """Time the model's work per token on examples of about the median length: a batch of
    `batch_size` for training and evaluation, and for the trunk a group of `gpt.train.trunk.GROUP`
    when `cached` (as the cache computes it), else a training batch (larger matrix products
    run several times faster per token).

    Leaves the weights as they were (the optimizer is timed at learning rate 0) and the
    gradients cleared.
    """
    try:
        return _timed_costs(model, task, data, collate, cfg, lengths, split, repeats, cached)
    finally:  # whatever happened, training starts from clean gradients
        model.zero_grad(set_to_none=True)
        model.train()


def _timed_costs(
    model: nn.Module,
    task: Any,
    data: Sequence,
    collate: Callable[[list], Any],
    cfg: TrainConfig,
    lengths: Sequence[int],
    split: Split | None,
    repeats: int,
    cached: bool,
) -> Costs:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])

    def around_median(n: int) -> list[int]:
        start = max(0, len(order) // 2 - n // 2)
        return order[start : start + n]

    rows = around_median(cfg.batch_size)
    batch = collate([data[i] for i in rows])
    tokens = batch[0].numel()
    body = gpt_body(model)
    model.train()
    trunk_s = 0.0
    net: nn.Module = model
    if split is not None:
        for m in split.frozen_modules(body):
            m.eval()
        ids = collate([data[i] for i in around_median(GROUP if cached else len(rows))])[0]
        ids = ids.to(body.device)  # the trunk runs where the model is, in training's precision

        def trunk() -> None:
            with autocast(body.device):
                split.trunk(body, ids)

        # a cached trunk's group is large work (~1,000 positions through every frozen block):
        # one timing, no warm-up, is steady enough and costs the run least
        with torch.no_grad():
            trunk_s = (_seconds(trunk, 1, 0) if cached else _seconds(trunk, repeats)) / ids.numel()
        net = TrunkCache(model, split, data, collate, lengths, group=len(rows))

    def train_pass() -> None:
        if isinstance(net, TrunkCache):
            net.for_rows(rows)
        with train_precision(task, body.device):  # as `fit` trains
            loss, _ = task.loss(net, batch)
        loss.backward()

    train_s = _seconds(train_pass, repeats) / tokens
    optimizer = make_optimizer(model, lr=0.0, weight_decay=cfg.weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        optimizer.step()

    step_s = _seconds(step, repeats)
    model.eval()

    def eval_pass() -> None:  # through the trunk cache, as the run's evaluations go, if cached
        if isinstance(net, TrunkCache) and cached:
            task.evaluate(net, net.batches([rows]))
        else:
            task.evaluate(model, [batch])

    with torch.no_grad():
        eval_s = _seconds(eval_pass, repeats) / tokens
    return Costs(trunk=trunk_s, train=train_s, eval=eval_s, step=step_s)


def estimate_fit(
    model: nn.Module,
    task: Any,
    train_data: Sequence,
    val_data: Sequence | None,
    cfg: TrainConfig,
    *,
    collate: Callable[[list], Any] | None = None,
    costs: Costs | None = None,
) -> Estimate:
    """How long `fit(model, task, train_data, val_data, cfg, collate=collate)` will take on
    this machine; `model` must be prepared (`prepare_model`) as it will be trained. Pass
    `costs` to reuse a measurement."""
    collate = collate or task.collate
    lengths = example_lengths(task, train_data, collate)
    if lengths is None:
        raise ValueError(f"{type(task).__name__} has no row_lengths: cannot count its work")
    val_lengths = example_lengths(task, val_data, collate) if val_data else []
    split = frozen_split(model, cfg.method, cfg.last_n_blocks)
    cached = (
        split is not None
        and cfg.cache_trunk
        and cache_bytes(lengths, gpt_body(model).config.n_embd) / 2**20 <= cfg.cache_max_mb
    )
    bucket = cfg.bucket and getattr(task, "name", None) in BUCKETED_TASKS
    work = plan(
        cfg, lengths, val_lengths or (), split=split is not None, cached=cached, bucket=bucket
    )
    if costs is None:
        costs = measure(model, task, train_data, collate, cfg, lengths, split, cached=cached)
    return Estimate(work, costs)
