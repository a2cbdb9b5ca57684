"""Continuous batching: concurrent generations on one model share each decode step.

Decoding one token reads every weight of the model once, whatever the batch: on a CPU a step of
GPT-2 124M costs about 45 ms for one sequence and about 100 ms for eight. A `Batcher` runs one
worker thread per model that feeds every active sequence's next token in one step
(`GPT.decode_rows` over a `RowKVCache`, each row at its own position with a key mask), so eight
visitors get nearly eight times the tokens a second of one.

A run (`Batcher.steps`, the same arguments and `TokenStep`s as `gpt.sampling.sample_steps`):
- is prefilled on its own (a batch-1 `KVCache`, as `sample_steps` does) by the worker between
  two steps, at most `PREFILL_TOKENS` tokens between two steps (a long prompt in chunks, so the
  others keep getting tokens meanwhile), gets its first token, and joins the batch at the next
  step;
- keeps its own settings, random generator (its seed), seen tokens and stop rule: the worker
  picks each row's token with `gpt.sampling.pick_token`, so a seeded run draws the same tokens
  whoever else is in the batch, and greedy runs give the tokens `sample_steps` gives;
- gets each step's token, distribution and raw logits through its own queue; the candidates
  and kept logits (`gpt.sampling.token_step`) are made in the caller's thread, so a page's
  per-token work never holds up the shared step;
- leaves when it ends, or when its iterator is closed (a Stop button) or dropped: only its row
  goes. When its context fills up, its row is rebuilt from its last three quarters, as
  `sample_steps` does.

The batch is capped by rows (`BatchLimits.max_rows`) and by the KV cache's bytes
(`BatchLimits.cache_bytes`): a run that does not fit waits for one to leave. A lone run's step
is a batch-1 step (no mask, no index tensors).

>>> import torch
>>> from gpt.config import PRESETS
>>> from gpt.model import GPT
>>> from gpt.sampling import SamplingConfig, generate_ids
>>> torch.manual_seed(0) and None
>>> model = GPT(PRESETS["tiny"]).eval()
>>> cfg = SamplingConfig(temperature=0, max_new_tokens=5, stop_at_eot=False)
>>> batcher = Batcher(model)
>>> [s.token_id for s in batcher.steps(model, [1, 2, 3], cfg)] == generate_ids(model, [1, 2, 3], cfg)
True
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from gpt.model import GPT, KVCache, PackedWeights, RowKVCache
from gpt.sampling import (
    SamplingConfig,
    TokenStep,
    checked_prompt,
    new_generator,
    pick_token,
    token_step,
)

IDLE_S = 30.0  # a worker with nothing to do for this long ends (the next run starts another)
PREFILL_TOKENS = 256  # prompt tokens prefilled between two steps (at least one prompt)
ALIGN = 64  # the cache's length grows in steps of this many positions


@dataclass(frozen=True)
class BatchLimits:
    """How big a batch may grow.

    Attributes:
        max_rows: sequences decoded together at most.
        cache_bytes: the batch's KV cache at most (rows x positions x
            `RowKVCache.bytes_per_position`); a run that would pass it waits.
        threads: torch's intra-op threads of a batch's steps (None: torch's own choice; a lone
            row always steps on torch's own, as batch-1 generation does). One thread leaves
            the other core of a 2-core machine to the web server and the pages: two threads
            per step wait on each other whenever anything else runs.
        pack_bytes: pre-pack the model's weights for batched steps (`PackedWeights`, about
            twice as fast for 8 rows on a CPU) when the copy takes at most this many bytes
            (0: never). Packed at the first batched step, dropped when the worker idles out.
    """

    max_rows: int = 16
    cache_bytes: int = 512 * 2**20
    threads: int | None = None
    pack_bytes: int = 0

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.cache_bytes < 1:
            raise ValueError(f"BatchLimits must be positive, got {self}")


@dataclass(eq=False)
class _Row:
    """One run in the batch: its settings, sampler state, and the queue to its caller."""

    cfg: SamplingConfig
    eot_id: int | None
    generator: torch.Generator
    seen: torch.Tensor  # (V,) bool
    ids: list[int]  # the context the model reads: the prompt's tail and the tokens so far
    steps: int = 0  # tokens picked
    last: int = 0  # the picked token not yet fed to the model
    need: int = 0  # positions its row may use at most
    kv: KVCache | None = None  # its prefill, until the worker copies it into the batch
    done: int = 0  # prompt tokens prefilled so far
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def finished(self, token: int) -> bool:
        """Whether `token`, just picked, is the run's last."""
        return (self.cfg.stop_at_eot and token == self.eot_id) or (
            self.steps == self.cfg.max_new_tokens
        )

    def accept(self, token: int) -> None:
        """`token` goes on: seen by the penalty, next to be fed."""
        self.seen[token] = True
        self.ids.append(token)
        self.last = token


class Batcher:
    """Shares decode steps between concurrent runs on `model` (see the module's docstring).

    `steps(model, prompt_ids, cfg, eot_id)` is a drop-in `gpt.sampling.Sampler`.
    """

    def __init__(self, model: GPT, limits: BatchLimits | None = None) -> None:
        self.model = model
        self.limits = limits or BatchLimits()
        self.block = model.config.block_size
        self.per_position = RowKVCache.bytes_per_position(model.config, model.dtype)
        self._cond = threading.Condition()
        self._waiting: list[_Row] = []  # prefilled, waiting to join
        self._worker: threading.Thread | None = None
        # the worker's own (only it touches them)
        self._rows: list[_Row] = []  # row i of the batch is `self._cache` row i
        self._cache: RowKVCache | None = None
        self._packed: PackedWeights | None = None
        self._packer: threading.Thread | None = None
        self.steps_run = 0  # decode steps so far, and the rows they fed (for benchmarks)
        self.rows_fed = 0
        _every_batcher.add(self)

    # --- the caller's side ---------------------------------------------------------------

    def steps(
        self,
        model: GPT,
        prompt_ids: Sequence[int],
        cfg: SamplingConfig,
        eot_id: int | None = None,
    ) -> Iterator[TokenStep]:
        """Yield the run's tokens as `sample_steps` does, its decode steps shared."""
        if model is not self.model:
            raise ValueError("this Batcher runs another model")
        prompt = checked_prompt(model, prompt_ids)
        if cfg.max_new_tokens == 0:
            return
        seen = torch.zeros(model.config.vocab_size, dtype=torch.bool)
        seen[prompt] = True
        row = _Row(cfg, eot_id, new_generator(cfg.seed), seen, prompt[-self.block :])
        row.need = min(self.block, len(row.ids) + cfg.max_new_tokens)
        try:  # closed (Stop) or dropped: Python closes a dropped generator, which lands here
            self._join(row)
            while True:
                item = row.out.get()
                if isinstance(item, BaseException):
                    raise item
                token, probs, raw, last = item
                if cfg.keep_logits:
                    raw = raw.clone()  # not a view that keeps the whole batch's logits
                yield token_step(token, probs, raw, cfg)
                if last:
                    return
        finally:
            row.cancelled.set()  # the worker drops the row before its next step

    def _join(self, row: _Row) -> None:
        with self._cond:
            self._waiting.append(row)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="gpt2lab-batcher", daemon=True
                )
                self._worker.start()
            self._cond.notify()

    @property
    def active(self) -> int:
        """Runs in the batch now (not counting those waiting to join)."""
        return len(self._rows)

    # --- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        self._default_threads = self._threads = torch.get_num_threads()
        while not _shutting_down.is_set():
            with self._cond:
                if not self._rows and not self._waiting:
                    self._cond.wait(IDLE_S)
                    if not self._rows and not self._waiting:
                        break
                waiting = list(self._waiting)
            try:
                with torch.inference_mode():  # the worker's tensors never need autograd
                    self._leave([r for r in self._rows if r.cancelled.is_set()])
                    self._admit(waiting)
                    if self._rows:
                        self._step()
            except Exception as e:  # a failed step ends every run in it, with the error
                for row in dict.fromkeys(self._rows + waiting):
                    row.out.put(e)
                with self._cond:
                    self._waiting = [r for r in self._waiting if r not in waiting]
                self._rows, self._cache = [], None
        with self._cond:
            self._worker = None
            self._cache = self._packed = None  # their memory back

    def _fits(self, rows: int, length: int) -> bool:
        return rows <= self.limits.max_rows and (
            rows * length * self.per_position <= self.limits.cache_bytes or rows == 1
        )

    def _admit(self, waiting: list[_Row]) -> None:
        """Prefill the waiting runs that fit, in arrival order, each alone (a batch-1
        `KVCache`, as `sample_steps` does), send each its first token and give it a row.
        Prefills here, between steps, not beside them: on a few cores two at once only slow
        each other. At most `PREFILL_TOKENS` prompt tokens per step: a longer prompt goes in
        chunks over several steps (the cache's bottom-right causal mask), so it holds the others
        up for one step's worth of time at a time."""
        taken, budget = [], PREFILL_TOKENS
        for row in waiting:
            if budget <= 0:
                break
            if row.cancelled.is_set():
                taken.append(row)
                continue
            n = len(self._rows) + 1
            length = _aligned(max([row.need] + [r.need for r in self._rows]), self.block)
            if not self._fits(n, length):
                break
            chunk = row.ids[row.done : row.done + budget]
            budget -= len(chunk)
            raw = self._prefill(row, chunk)
            if row.done < len(row.ids):
                break  # the rest of this prompt after the next step; later ones wait behind
            taken.append(row)
            if self._first_token(row, raw):
                self._reserve(n, length).load(n - 1, row.kv)
                row.kv = None
                self._rows.append(row)
        if taken:
            with self._cond:
                self._waiting = [r for r in self._waiting if r not in taken]

    def _prefill(self, row: _Row, chunk: list[int]) -> torch.Tensor:
        """Feed the next `chunk` of `row`'s prompt into its own cache; the logits after it (V,)."""
        if row.kv is None:
            row.kv = self.model.new_cache(1, max_len=len(row.ids))
        x = torch.tensor([chunk], device=self.model.device)  # (1, T)
        row.done += len(chunk)
        return self.model(x, row.kv, last_only=True)[0, -1].float().cpu()  # (V,)

    def _first_token(self, row: _Row, raw: torch.Tensor) -> bool:
        """Pick and send `row`'s first token from its prompt's logits; whether the run goes on."""
        token, probs = pick_token(raw, row.seen, row.cfg, row.generator)
        row.steps = 1
        last = row.finished(token)
        row.out.put((token, probs, raw, last))
        if last:
            return False
        row.accept(token)
        if row.kv.pos >= self.block:  # the prompt filled the context
            self._reencode(row)
        return True

    def _reserve(self, n: int, length: int) -> RowKVCache:
        """The batch's cache, grown to hold `n` rows of `length` positions if it does not."""
        cache = self._cache
        if cache is None or cache.rows < n or cache.max_len < length:
            rows = min(self.limits.max_rows, max(n, 2 * (cache.rows if cache else 1)))
            while rows > n and not self._fits(rows, length):
                rows -= 1
            if cache is None:
                cache = self.model.new_row_cache(rows, length)
            else:
                cache = cache.resized(rows, length, keep=len(self._rows))
            self._cache = cache
        return cache

    def _leave(self, rows: list[_Row]) -> None:
        """Drop `rows` from the batch, moving the last rows into their places."""
        for row in rows:
            i = self._rows.index(row)
            last = len(self._rows) - 1
            if i != last:
                self._cache.move(last, i)
                self._rows[i] = self._rows[last]
            self._rows.pop()

    def _step(self) -> None:
        """One decode step of every row; each row's token picked with its own settings."""
        rows, cache = self._rows, self._cache
        n = len(rows)
        # a lone row steps as batch-1 generation does, on torch's threads; a batch on `threads`
        threads = self._default_threads if n == 1 else self.limits.threads or self._threads
        if threads != self._threads:
            _threads_here(threads, self._default_threads)
            self._threads = threads
        tokens = torch.tensor([r.last for r in rows], device=self.model.device)
        logits = self.model.decode_rows(tokens, cache, n, self._packs(n)).float().cpu()  # (n, V)
        self.steps_run += 1
        self.rows_fed += n
        done = []
        for i, row in enumerate(rows):
            raw = logits[i]
            token, probs = pick_token(raw, row.seen, row.cfg, row.generator)
            row.steps += 1
            last = row.finished(token)
            row.out.put((token, probs, raw, last))
            if last:
                done.append(row)
                continue
            row.accept(token)
            if cache.pos[i] >= self.block:  # context full: rebuild the row from the recent tail
                self._reencode(row)
                cache.load(i, row.kv)
                row.kv = None
        self._leave(done)

    def _packs(self, n: int) -> PackedWeights | None:
        """The packed weights for a step of `n` rows (None: plain products). Packing GPT-2 124M
        takes a few seconds, so it starts in the background at the first batched step (steps go
        on unpacked meanwhile); stale packs (the weights changed) are packed again."""
        if n == 1 or not self.limits.pack_bytes:
            return None
        packed = self._packed
        if packed is not None and not packed.fresh():
            packed = self._packed = None
        fits = PackedWeights.nbytes_of(self.model) <= self.limits.pack_bytes
        if packed is None and self._packer is None and fits:
            self._packer = threading.Thread(target=self._pack, name="gpt2lab-pack", daemon=True)
            self._packer.start()
        return packed

    def _pack(self) -> None:
        packed = PackedWeights.of(self.model)
        with self._cond:
            if self._worker is not None:  # still wanted (not idled out meanwhile)
                self._packed = packed
            self._packer = None

    def _reencode(self, row: _Row) -> None:
        """Context full: keep the last three quarters of `row.ids` (as `sample_steps` does) and
        prefill all but the newest token into `row.kv`; the newest is fed by the next step."""
        row.ids = row.ids[-(3 * self.block) // 4 :]
        row.kv = self.model.new_cache(1, max_len=len(row.ids))
        self.model.hidden(torch.tensor([row.ids[:-1]], device=self.model.device), row.kv)


def _threads_here(n: int, default: int) -> None:
    """torch's intra-op threads for this thread only. `torch.set_num_threads` sets the calling
    thread's OpenMP thread count and the process-wide default that threads started later take;
    a short-lived helper puts that default back to `default`, so only this thread changes."""
    torch.set_num_threads(n)
    helper = threading.Thread(target=torch.set_num_threads, args=(default,))
    helper.start()
    helper.join()


def _aligned(length: int, block: int) -> int:
    """`length` rounded up to a multiple of ALIGN, at most `block`.

    >>> _aligned(70, 1024), _aligned(1000, 1024), _aligned(10, 32)
    (128, 1024, 32)
    """
    return min(block, -(-length // ALIGN) * ALIGN)


_shutting_down = threading.Event()
_every_batcher: weakref.WeakSet[Batcher] = weakref.WeakSet()


@atexit.register
def _stop_workers() -> None:
    """At exit, let the workers finish their step and end (a daemon thread still inside a torch
    op while the interpreter tears down can abort the process)."""
    _shutting_down.set()
    for batcher in list(_every_batcher):
        with batcher._cond:
            batcher._cond.notify_all()
            worker = batcher._worker
        if worker is not None:
            worker.join(timeout=2)


_batchers_lock = threading.Lock()


def batcher_for(model: GPT, limits: BatchLimits | None = None) -> Batcher:
    """The process's one `Batcher` of `model` (made with `limits` on first use). It lives on the
    model, so it goes when the model does (a registry evicting it)."""
    with _batchers_lock:
        batcher = model.__dict__.get("_batcher")
        if batcher is None:
            batcher = model.__dict__["_batcher"] = Batcher(model, limits)
        return batcher


def batched_steps(
    model: GPT, prompt_ids: Sequence[int], cfg: SamplingConfig, eot_id: int | None = None
) -> Iterator[TokenStep]:
    """A `gpt.sampling.Sampler` that shares decode steps with every other run on `model`."""
    return batcher_for(model).steps(model, prompt_ids, cfg, eot_id)
