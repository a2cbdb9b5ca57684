"""Frozen-trunk caching: train the top of a network without recomputing its frozen bottom.

When a fine-tuning method freezes a prefix of the network (`head`: everything but the
classification head; `last_blocks`: all but the last N blocks, the final LayerNorm and the
head), the frozen part maps each example to the same activations in every epoch. `TrunkCache`
wraps the model for the training loop: it computes the frozen trunk's output once per example
(the residual stream entering the first trained block, or the final hidden state for `head`),
keeps it, and from then on runs only the trained part on the stored activations. Epochs after
the first cost only the trained part. Evaluation sets get caches of their own (`batches`): the
validation set, evaluated every `eval_every` steps, and the test set, scored before training
(the base model) and after it, each pay for the trunk once.

Why the result equals the uncached run's:

- the frozen part runs in eval mode (its dropout off) whether or not it is cached: `fit` puts it
  there after every `model.train()`, so caching changes the time and nothing else;
- each example's activations are kept at its own length, the positions that can reach the loss
  (`task.row_lengths`): attention is causal, so later positions never change the loss, and a
  batch pads the stored activations with zeros up to its own length;
- the trunk runs on fixed groups of similar-length examples (`length_groups`: sorted by
  length, up to `GROUP` examples and `GROUP_TOKENS` padded positions at a time: larger matrix
  products than a training batch's, faster per token, and little padding), whatever order
  training asks for them in, so the stored values, and hence a resumed
  run, do not depend on which batch first needed an example.

Precision: the trunk runs under `gpt.device.autocast`: its matrix products in bf16 where that
is fast (a CPU with AVX512-BF16 or AMX, a CUDA GPU; about 2x faster a token on 2 EPYC cores),
its output kept in float32; the trained part follows `gpt.train.loop.train_precision`. Equal
to the uncached run's in float32 (`$GPT2LAB_BF16=0`, or a machine without fast bf16); with bf16
features, to bf16's precision (test balanced accuracy on real SMS, last blocks of `starter`
over 7 seeds: 0.8945 against 0.8955 in float32).

Memory: float32, `sum(lengths) * n_embd * 4` bytes (2,000 SMS of ~15 GPT-2 tokens: 92 MB for
GPT-2 124M). bfloat16 would halve it but round every activation to 3 significant digits,
moving the loss by about 1e-3 against the uncached run; the loop goes without the cache (and
says so) when the estimate is over `TrainConfig.cache_max_mb` instead.

>>> import torch
>>> from gpt.config import PRESETS
>>> from gpt.model import GPT
>>> clf = GPTClassifier(GPT(PRESETS["tiny"]), 2)
>>> for p in clf.gpt.parameters():
...     p.requires_grad = False
>>> frozen_split(clf, "head", 1)
Split(blocks=2, final_norm=True)
>>> frozen_split(clf, "last_blocks", 1)  # (its blocks are frozen here too)
Split(blocks=1, final_norm=False)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from gpt.classifier import GPTClassifier, gpt_body
from gpt.device import autocast
from gpt.model import GPT

BYTES_PER_VALUE = 4  # float32
GROUP = 64  # examples per trunk computation: large matrix products run faster per token
# ... and padded positions: products of ~1,000 rows already run at full speed, and a group of
# long examples is not padded to the longest of 64 (2,000 real SMS: 48k positions, not 61k)
GROUP_TOKENS = 1024


@dataclass(frozen=True)
class Split:
    """Where a model's frozen trunk ends: after the embeddings and `blocks` blocks, then the
    final LayerNorm too when `final_norm` (method `head`: only the classifier head trains)."""

    blocks: int
    final_norm: bool = False

    def frozen_modules(self, body: GPT) -> list[nn.Module]:
        mods = [body.wte, body.wpe, body.drop, *body.h[: self.blocks]]
        return [*mods, body.ln_f] if self.final_norm else mods

    def trunk(self, body: GPT, idx: torch.Tensor) -> torch.Tensor:
        """The frozen part: token ids (B, T) -> activations (B, T, C)."""
        x = body.residual(idx, self.blocks)
        return body.ln_f(x) if self.final_norm else x

    def rest(self, model: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The trained part: what `model(idx, *args, **kwargs)` returns, from `trunk(idx)`."""
        body = gpt_body(model)
        h = x if self.final_norm else body.hidden_from(x, self.blocks)  # (B, T, C)
        if isinstance(model, GPTClassifier):
            return model.classify(h, *args, **kwargs)
        if args or kwargs:
            raise TypeError("a cached GPT language model takes the inputs alone")
        return body.lm_head(h)  # (B, T, vocab)


def frozen_split(model: nn.Module, method: str, last_n_blocks: int) -> Split | None:
    """The frozen trunk `method` leaves in `model`, or None when there is none worth caching
    (full, lora, or last_blocks over every block) or its parameters are not actually frozen."""
    body = gpt_body(model)
    if not isinstance(body, GPT):
        return None
    n = len(body.h)
    if method == "head" and isinstance(model, GPTClassifier):
        split = Split(n, final_norm=True)
    elif method == "last_blocks" and last_n_blocks < n:
        split = Split(n - last_n_blocks)
    else:
        return None
    if any(p.requires_grad for m in split.frozen_modules(body) for p in m.parameters()):
        return None
    return split


def cache_bytes(lengths: Sequence[int], n_embd: int) -> int:
    """What the cache of examples of these lengths holds, in bytes."""
    return sum(lengths) * n_embd * BYTES_PER_VALUE


class TrunkCache(nn.Module):
    """`model` for the training loop, with its frozen trunk's output kept per training example.

    Before each training batch the loop calls `for_rows(rows)` (the batch's indices into
    `examples`); `forward(idx, ...)` then returns what `model(idx, ...)` would, running only the
    trained part on the stored activations, after computing the missing ones (a whole group of
    similar-length examples at a time, with no gradient). `idx` gives the batch's padded shape.

    `examples`, `collate` and `lengths` are the training data, the collate whose first field
    is the model input, and each example's length in positions that reach the loss.
    """

    def __init__(
        self,
        model: nn.Module,
        split: Split,
        examples: Sequence,
        collate: Callable[[list], Any],
        lengths: Sequence[int],
        group: int = GROUP,
    ) -> None:
        super().__init__()
        if len(lengths) != len(examples):
            raise ValueError(f"{len(lengths)} lengths for {len(examples)} examples")
        self.model, self.split = model, split
        self.examples, self.collate, self.lengths = examples, collate, list(lengths)
        self.groups = length_groups(self.lengths, range(len(examples)), group)
        self.group_of = [0] * len(examples)
        for g, rows in enumerate(self.groups):
            for i in rows:
                self.group_of[i] = g
        self.store: list[torch.Tensor | None] = [None] * len(examples)
        self.rows: list[int] | None = None
        self.stored = 0  # examples whose activations are kept
        self.trunk_seconds = 0.0  # spent computing the trunk so far

    def for_rows(self, rows: Sequence[int]) -> TrunkCache:
        """Say which examples the next forward's batch holds; returns self."""
        self.rows = list(rows)
        return self

    def batches(self, chunks: Iterable[Sequence[int]]) -> Iterator[Any]:
        """Each chunk's collated batch, with `for_rows` said before it is yielded: evaluation
        through the cache (`task.evaluate(cache, cache.batches(chunks))`, one forward per
        batch), so the frozen trunk runs once per example however often it is evaluated."""
        for rows in chunks:
            self.for_rows(rows)
            yield self.collate([self.examples[i] for i in rows])

    def eval_chunks(self, rows: Iterable[int], size: int = GROUP) -> list[list[int]]:
        """`rows` in `length_groups` of up to `size`: batches for evaluating through the cache,
        of similar lengths and larger than training's, so the trained part pads little and
        runs faster per token. Metrics summed over examples (loss, accuracy) do not depend on
        how the examples are batched: attention is causal, padding comes after each one.

        >>> cache = TrunkCache(nn.Identity(), Split(1), ["a"] * 5, list, [5, 1, 4, 2, 3])
        >>> cache.eval_chunks([0, 1, 2, 4], size=3)
        [[1, 4, 2], [0]]
        """
        return length_groups(self.lengths, rows, size)

    def seconds_left(self, examples_left: int | None = None) -> float:
        """Projected time to compute the activations still missing (at most `examples_left`
        of them), at the measured cost per example so far; 0 before any is measured."""
        missing = len(self.store) - self.stored
        if examples_left is not None:
            missing = min(missing, examples_left)
        return missing * self.trunk_seconds / self.stored if self.stored else 0.0

    def forward(self, idx: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        rows, self.rows = self.rows, None
        if rows is None or len(rows) != idx.shape[0]:
            raise RuntimeError("call for_rows(rows) before each forward, one row per example")
        for i in rows:
            if self.store[i] is None:
                self._fill(self.group_of[i])
        body = gpt_body(self.model)
        B, T = idx.shape[:2]
        x = torch.zeros(B, T, body.config.n_embd, dtype=body.dtype, device=body.device)
        for r, i in enumerate(rows):
            kept = self.store[i]  # (L_i, C), L_i <= T
            x[r, : len(kept)] = kept
        return self.split.rest(self.model, x, *args, **kwargs)

    @torch.no_grad()
    def _fill(self, g: int) -> None:
        t0 = time.perf_counter()
        rows = self.groups[g]
        body = gpt_body(self.model)
        idx = self.collate([self.examples[i] for i in rows])[0].to(body.device)  # (G, T)
        with autocast(body.device):  # bf16 products where they are fast; kept in float32
            x = self.split.trunk(body, idx).to(body.dtype)  # (G, T, C)
        for r, i in enumerate(rows):
            self.store[i] = x[r, : self.lengths[i]].clone()
        self.stored += len(rows)
        self.trunk_seconds += time.perf_counter() - t0


def length_groups(
    lengths: Sequence[int], rows: Iterable[int], group: int = GROUP, tokens: int = GROUP_TOKENS
) -> list[list[int]]:
    """`rows` sorted by length (ties by index) and cut into groups of at most `group` examples
    and `tokens` padded positions (each padded to its longest; a longer example alone).

    >>> length_groups([5, 1, 4, 2, 3], range(5), group=3)
    [[1, 3, 4], [2, 0]]
    >>> length_groups([300, 10, 10, 10, 600], range(5), group=64, tokens=1024)
    [[1, 2, 3], [0], [4]]
    """
    groups: list[list[int]] = []
    for i in sorted(rows, key=lambda i: (lengths[i], i)):
        last = groups[-1] if groups else None
        if last is None or len(last) == group or (len(last) + 1) * lengths[i] > tokens:
            groups.append([i])
        else:
            last.append(i)
    return groups
