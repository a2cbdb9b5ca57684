"""Look inside a model: the logit lens, per-token surprisal, head ablation, input attribution,
activation patching, and two models compared on the same text.

Everything here takes a model (a `GPT`, or a `GPTClassifier` where a class is asked about) and
token ids (a list, a `(T,)` or a `(1, T)` tensor), and returns tensors in small dataclasses; the
app draws them. Nothing here changes the model: ablation and attribution use hooks that act only
in the thread (context) that installed them, so other requests served by the same model object at
the same time see the model as it is.

>>> import torch
>>> from gpt.config import PRESETS
>>> from gpt.model import GPT
>>> torch.manual_seed(0) and None
>>> model = GPT(PRESETS["tiny"]).eval()
>>> ids = [5, 9, 2, 7]
>>> lens = logit_lens(model, ids, k=3)
>>> lens.top_ids.shape  # (n_layer + 1, T, k)
torch.Size([3, 4, 3])
>>> surprisal(model, ids).shape  # (T - 1,)
torch.Size([3])
>>> with ablate_heads(model, [(0, 1)], mode="zero"):
...     ablated = surprisal(model, ids)
>>> bool(torch.equal(ablated, surprisal(model, ids)))
False
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from gpt.model import GPT

ABLATION_MODES = ("zero", "mean")
ATTRIBUTION_METHODS = ("gradient", "occlusion")

# The hook objects active in the current thread / context. A hook installed on a shared model acts
# only when its own object is in here, so concurrent requests on the same model do not see it.
_ACTIVE: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "gpt_inside", default=frozenset()
)


# --- inputs ---------------------------------------------------------------------------------------


def body(model: nn.Module) -> GPT:
    """The language model itself: `model` for a `GPT`, `model.gpt` for a classifier."""
    gpt = getattr(model, "gpt", model)
    if not isinstance(gpt, GPT):
        raise TypeError(f"expected a GPT or GPTClassifier, got {type(model).__name__}")
    return gpt


def as_ids(model: nn.Module, ids: Sequence[int] | torch.Tensor, min_len: int = 1) -> torch.Tensor:
    """`ids` as a `(1, T)` long tensor on the model's device, checked against its vocabulary and
    context length.

    >>> from gpt.config import PRESETS
    >>> as_ids(GPT(PRESETS["tiny"]), [1, 2, 3]).shape
    torch.Size([1, 3])
    """
    gpt = body(model)
    # checked on the CPU, then moved once
    x = torch.as_tensor(
        ids if isinstance(ids, torch.Tensor) else list(ids), dtype=torch.long, device="cpu"
    )
    if x.dim() == 2 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 1:
        raise ValueError(f"ids must be one sequence, (T,) or (1, T); got shape {tuple(x.shape)}")
    n, vocab, block = x.shape[0], gpt.config.vocab_size, gpt.config.block_size
    if n < min_len:
        raise ValueError(f"need at least {min_len} token(s), got {n}")
    if n > block:
        raise ValueError(f"{n} tokens exceed the model's context length {block}")
    if n and (int(x.min()) < 0 or int(x.max()) >= vocab):
        bad = int(x[(x < 0) | (x >= vocab)][0])
        raise ValueError(f"token id {bad} is outside the model's vocabulary [0, {vocab})")
    return x[None].to(gpt.device)


# --- the logit lens -------------------------------------------------------------------------------


def residual_stream(model: nn.Module, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """The residual stream `(n_layer + 1, T, C)`: the embeddings (token + position), then the
    output of each block, before the final LayerNorm (fast attention path)."""
    gpt = body(model)
    idx = as_ids(gpt, ids)
    with torch.inference_mode():
        x = gpt._embed(idx, 0)  # (1, T, C)
        states = [x[0]]
        for block in gpt.h:
            x, _ = block(x)
            states.append(x[0])
        return torch.stack(states)  # (L+1, T, C)


@dataclass
class LogitLens:
    """What `logit_lens` returns. Row `l` of each tensor is the residual stream after block `l`
    (row 0: the embeddings) put through the final LayerNorm and the tied head.

    Attributes:
        top_ids: `(L+1, T, k)` the k most likely next tokens at each layer and position.
        top_probs: `(L+1, T, k)` their probabilities.
        next_logprobs: `(L+1, T-1)` log-probability of the token that actually comes next.
        target: the token id asked about, or None.
        target_logprobs: `(L+1, T)` log-probability of `target` at each layer and position, or
            None: the "when does the model decide" curve.
    """

    top_ids: torch.Tensor
    top_probs: torch.Tensor
    next_logprobs: torch.Tensor
    target: int | None = None
    target_logprobs: torch.Tensor | None = None

    @property
    def n_rows(self) -> int:
        return self.top_ids.shape[0]


_FAST_CANDIDATES = 16  # per position, the bf16 top candidates recomputed in float32
_SHIFT_ROWS = 16  # the bf16 head's extra rows: ones (they subtract a shift), then zeros
_bf16_heads: dict[int, tuple[tuple, torch.Tensor]] = {}  # id(model) -> (weight key, head)


def head_weight(gpt: GPT) -> torch.Tensor:
    """The output head's `(V, C)` weight: `wte`'s (GPT-2's tied head), or an untied head's own
    (`gpt.checkpoint.UntiedGPT.out_head`, some hub fine-tunes)."""
    return getattr(gpt, "out_head", gpt.wte.weight)


def _bf16_head(gpt: GPT) -> torch.Tensor:
    """A bfloat16 `(C + 16, V)` copy of the head, rebuilt when its weight changes: `W^T`, a
    row of ones, then zeros (alignment), so that `[h, -s, 0, ...] @ head` is `h @ W^T - s`:
    the product itself subtracts a per-position shift."""
    w = head_weight(gpt)
    key = (w.data_ptr(), w._version, w.dtype, w.device)
    hit = _bf16_heads.get(id(gpt))
    if hit is None or hit[0] != key:
        if len(_bf16_heads) >= 2:  # a copy is vocab x width x 2 bytes (160 MB for gpt2-xl)
            _bf16_heads.clear()
        V, C = w.shape
        with torch.inference_mode(False), torch.no_grad():
            head = torch.zeros(C + _SHIFT_ROWS, V, dtype=torch.bfloat16, device=w.device)
            head[:C] = w.detach().t()
            head[C] = 1
            hit = (key, head)
        _bf16_heads[id(gpt)] = hit
    return hit[1]


def _fast_row(
    gpt: GPT,
    h: torch.Tensor,
    k: int,
    out: torch.Tensor | None = None,
    shift: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top ids `(T, k)`, their log-probabilities, log-normaliser `(T,)`) of features `h` `(T, C)`
    through the tied head, the product in bfloat16 (into `out` when given).

    Where the CPU has bf16 matrix units this is several times faster than float32, and the
    `(T, V)` logits stay in bf16 (half the memory traffic). Each position's top candidates are
    recomputed in float32, so the top-k and their logits are exact; the normaliser sums the
    other tokens' bf16 logits (their rounding errors mostly cancel: probabilities stay within
    0.5% of the float32 ones on GPT-2 124M).

    The exponentials need the logits shifted below overflow. `shift` `(T,)`, some token's exact
    logit at each position (so at most the best one), lets the product subtract it; without one,
    or when it was too far below the best logit (an exponential overflowed), the row subtracts
    its best exact logit in a pass of its own.
    """
    T, C = h.shape
    x = torch.zeros(T, C + _SHIFT_ROWS, dtype=torch.bfloat16, device=h.device)
    x[:, :C] = h
    if shift is not None:
        x[:, C] = -shift
    logits = torch.matmul(x, _bf16_head(gpt), out=out)  # (T, V) bf16: logit - shift
    cand = torch.topk(logits, min(_FAST_CANDIDATES, logits.shape[-1]), dim=-1).indices  # (T, M)
    exact = torch.einsum("tc,tmc->tm", h, head_weight(gpt)[cand])  # (T, M) float32
    top = exact.max(dim=-1, keepdim=True).values  # (T, 1)
    if shift is None:
        used = top.to(torch.bfloat16)  # subtracted in bf16: its rounding is undone below
        logits.sub_(used)
    else:
        used = -x[:, C : C + 1]  # the shift as the product saw it (rounded to bf16)
    terms = logits.exp_()  # (T, V) bf16, in place
    # Every term summed (bf16 sums accumulate in float32 inside; only the result is rounded, at
    # most 0.4% of the total), less the candidates' own bf16 terms, which are counted exactly
    # below: cheaper than masking them out of the (T, V) logits first.
    every = terms.sum(dim=-1).float()
    if shift is not None and not bool(torch.isfinite(every).all()):
        return _fast_row(gpt, h, k, out)  # the shift was too low: exp overflowed
    rest_sum = every - terms.gather(1, cand).float().sum(-1)
    rest_sum = rest_sum.clamp_min(0) * torch.exp(used.float() - top)[:, 0]
    total = rest_sum + torch.exp(exact - top).sum(dim=-1)
    lse = top[:, 0] + torch.log(total)  # (T,)
    values, order = torch.topk(exact, k, dim=-1)
    return cand.gather(1, order), values - lse[:, None], lse


def _pick(
    gpt: GPT,
    h: torch.Tensor,
    logp: torch.Tensor | None,
    lse: torch.Tensor | None,
    tokens: torch.Tensor | None,
) -> torch.Tensor | None:
    """log p(tokens[t]) at each position t < len(tokens): read from `logp` `(T, V)`, or (a fast
    row, which keeps no float32 logits) a float32 dot product minus the normaliser `lse`."""
    if tokens is None:
        return None
    t = torch.arange(tokens.shape[0], device=h.device)
    if logp is not None:
        return logp[t, tokens]
    return (h[t] * head_weight(gpt)[tokens]).sum(-1) - lse[t]


def _lens_pass(
    model: nn.Module,
    ids: Sequence[int] | torch.Tensor,
    k: int,
    target: int | str | None,
    fast: bool = False,
    full_final: bool = True,
) -> tuple[LogitLens, torch.Tensor | None]:
    """The lens and the final log-probabilities `(T, V)` (the model's own, always exact).

    `fast` and not `full_final`: the last row is a fast row too, except after the last token
    (the model's own next-token distribution, exact); no `(T, V)` log-probabilities are kept
    (None is returned in their place)."""
    gpt = body(model)
    idx = as_ids(gpt, ids)
    vocab = gpt.config.vocab_size
    if not 1 <= k <= vocab:
        raise ValueError(f"k must be in [1, {vocab}], got {k}")
    if target is not None and target != "top" and not 0 <= int(target) < vocab:
        raise ValueError(f"target token {target} is outside the vocabulary [0, {vocab})")
    nxt = idx[0, 1:]  # (T-1,)
    T = idx.shape[1]
    stream = residual_stream(gpt, idx)  # (L+1, T, C)
    n = stream.shape[0]
    rows: list = [None] * n
    work = None  # the (T, V) bf16 buffer every fast row writes into
    best = None  # each position's best token in the row before: its logit shifts the next row
    with torch.inference_mode():
        # The last row first: it is the model's own distribution, and its best guess after the
        # last token is the target when target == "top".
        for r in [n - 1, *range(n - 1)]:  # one row at a time: (T, V) at most in memory
            h = gpt.ln_f(stream[r])  # (T, C)
            last = r == n - 1
            row_fast = (
                fast
                and (not last or not full_final)
                and k <= _FAST_CANDIDATES
                and h.dtype == torch.float32
            )
            if row_fast:
                if work is None:  # one (T, V) buffer for every row: no page faults per row
                    work = torch.empty(T, vocab, dtype=torch.bfloat16, device=h.device)
                shift = None if best is None else (h * head_weight(gpt)[best]).sum(-1)  # (T,)
                indices, values, lse = _fast_row(gpt, h, k, out=work, shift=shift)
                best = indices[:, 0]
                logp = None
                if last:  # after the last token: the model's own distribution, exact
                    logits = gpt.lm_head(h[-1:]).float()  # (1, V)
                    lse[-1] = torch.logsumexp(logits[0], dim=0)
                    top = torch.topk(logits - lse[-1], k, dim=-1)
                    values[-1], indices[-1] = top.values[0], top.indices[0]
            else:
                logp = torch.log_softmax(gpt.lm_head(h).float(), dim=-1)  # (T, V)
                lse = None
                values, indices = torch.topk(logp, k, dim=-1)
            if last:
                final = logp
                if target == "top":
                    target = int(indices[-1, 0])
            asked = [
                nxt,
                None if target is None else torch.full((T,), int(target), device=h.device),
            ]
            picked = [_pick(gpt, h, logp, lse, t) for t in asked]
            rows[r] = (indices, values.exp(), *picked)
        lens = LogitLens(
            top_ids=torch.stack([row[0] for row in rows]).cpu(),
            top_probs=torch.stack([row[1] for row in rows]).cpu(),
            next_logprobs=torch.stack([row[2] for row in rows]).cpu(),
            target=None if target is None else int(target),
            target_logprobs=None if target is None else torch.stack([row[3] for row in rows]).cpu(),
        )
    return lens, None if final is None else final.cpu()


def logit_lens(
    model: nn.Module,
    ids: Sequence[int] | torch.Tensor,
    k: int = 5,
    target: int | str | None = None,
    fast: bool = False,
) -> LogitLens:
    """What the model would predict if it stopped after each layer.

    Each row of the residual stream goes through the final LayerNorm and the tied head, then a
    softmax; the last row is therefore the model's own next-token distribution. `target`: a
    token id whose log-probability to follow through the layers, or "top" for the model's own
    best guess after the last token. `fast`: project the rows in bfloat16 and recompute each
    position's top candidates (and the tokens asked about) in float32; the normaliser then
    carries bf16 rounding (probabilities within 0.5% of the float32 ones on GPT-2 124M). The
    model's own distribution after the last token (the last row's last cell) is float32 either
    way.

    >>> from gpt.config import PRESETS
    >>> lens = logit_lens(GPT(PRESETS["tiny"]).eval(), [1, 2, 3], k=2, target=7)
    >>> lens.top_probs.shape, lens.target_logprobs.shape, lens.next_logprobs.shape
    (torch.Size([3, 3, 2]), torch.Size([3, 3]), torch.Size([3, 2]))
    """
    return _lens_pass(model, ids, k, target, fast, full_final=False)[0]


# --- surprisal ------------------------------------------------------------------------------------


@dataclass
class Predictions:
    """How well the model predicted each next token of a text; every tensor has T-1 rows (the
    first token has no prediction).

    Attributes:
        surprisal: `(T-1,)` −log p(ids[t+1] | ids[..t]) in nats; its mean is the LM loss.
        prob: `(T-1,)` p(ids[t+1] | ids[..t]).
        rank: `(T-1,)` 1 + the number of tokens the model found more likely than the actual one.
        entropy: `(T-1,)` entropy of the next-token distribution, in nats.
        top_ids, top_probs: `(T-1, k)` the k most likely alternatives and their probabilities.
        next_probs: `(V,)` the distribution of the token after the last one (what comes next).
    """

    surprisal: torch.Tensor
    prob: torch.Tensor
    rank: torch.Tensor
    entropy: torch.Tensor
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    next_probs: torch.Tensor | None = None

    @property
    def loss(self) -> float:
        """Mean surprisal (nats per token): the cross-entropy loss on the text."""
        return float(self.surprisal.mean()) if self.surprisal.numel() else float("nan")

    @property
    def perplexity(self) -> float:
        return float(torch.exp(torch.tensor(self.loss)))


_STATS_ROWS = 16  # rows of (T, V) logits per block in `predictions_from_logits`


def predictions_from_logits(logits: torch.Tensor, ids: torch.Tensor, k: int = 5) -> Predictions:
    """`Predictions` from logits `(T, V)` of a sequence `ids` `(T,)` (see `predictions`).

    >>> p = predictions_from_logits(torch.tensor([[0.0, 2.0], [1.0, 1.0]]), torch.tensor([0, 0]), 1)
    >>> p.rank.tolist(), [round(x, 3) for x in p.prob.tolist()]
    ([2], [0.119])
    """
    nxt = ids.reshape(-1)[1:].to(logits.device)
    parts = []
    # A few rows at a time: each (rows, V) block stays in the CPU's cache through the passes
    # below (log-softmax, rank, entropy, top-k), instead of streaming all T x V from memory.
    for rows, targets in zip(logits[:-1].split(_STATS_ROWS), nxt.split(_STATS_ROWS)):
        logp = torch.log_softmax(rows.float(), dim=-1)  # (rows, V)
        actual = logp.gather(1, targets[:, None])[:, 0]  # (rows,)
        rank = 1 + (logp > actual[:, None]).sum(dim=-1)
        entropy = -(logp.exp() * logp).nan_to_num_().sum(dim=-1)
        values, indices = torch.topk(logp, min(k, logp.shape[-1]), dim=-1)
        parts.append((actual, rank, entropy, indices, values))
    actual, rank, entropy, indices, values = (torch.cat(p) for p in zip(*parts))
    return Predictions(
        surprisal=(-actual).cpu(),
        prob=actual.exp().cpu(),
        rank=rank.cpu(),
        entropy=entropy.cpu(),
        top_ids=indices.cpu(),
        top_probs=values.exp().cpu(),
        next_probs=torch.softmax(logits[-1].float(), dim=-1).cpu(),
    )


def sequence_logits(model: nn.Module, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """All next-token logits `(T, V)` of one sequence (float32, on the model's device)."""
    idx = as_ids(model, ids)
    with torch.inference_mode():
        return body(model)(idx)[0].float()


def predictions(model: nn.Module, ids: Sequence[int] | torch.Tensor, k: int = 5) -> Predictions:
    """Surprisal, probability, rank, entropy and top-k alternatives of every next token.

    >>> from gpt.config import PRESETS
    >>> p = predictions(GPT(PRESETS["tiny"]).eval(), [1, 2, 3], k=4)
    >>> p.top_ids.shape, p.rank.shape
    (torch.Size([2, 4]), torch.Size([2]))
    """
    idx = as_ids(model, ids, min_len=2)
    return predictions_from_logits(sequence_logits(model, idx), idx[0], k)


def surprisal(model: nn.Module, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """`(T-1,)`: −log p(ids[t+1] | ids[..t]) in nats. Its mean equals the model's LM loss."""
    idx = as_ids(model, ids, min_len=2)
    logp = torch.log_softmax(sequence_logits(model, idx)[:-1], dim=-1)  # (T-1, V)
    return -logp.gather(1, idx[0, 1:, None])[:, 0].cpu()


# --- head ablation --------------------------------------------------------------------------------


def parse_heads(
    heads: Iterable[tuple[int, int]], n_layer: int, n_head: int
) -> dict[int, list[int]]:
    """`(layer, head)` pairs grouped by layer, checked against the model's shape.

    >>> parse_heads([(1, 0), (0, 3), (1, 2)], n_layer=2, n_head=4)
    {0: [3], 1: [0, 2]}
    """
    by_layer: dict[int, set[int]] = {}
    for pair in heads:
        try:
            layer, head = (int(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(f"a head is a (layer, head) pair of integers, got {pair!r}") from None
        if not 0 <= layer < n_layer:
            raise ValueError(f"layer {layer} is out of range: the model has layers 0-{n_layer - 1}")
        if not 0 <= head < n_head:
            raise ValueError(f"head {head} is out of range: each layer has heads 0-{n_head - 1}")
        by_layer.setdefault(layer, set()).add(head)
    return {layer: sorted(hs) for layer, hs in sorted(by_layer.items())}


@contextlib.contextmanager
def _active(token: object) -> Iterator[None]:
    reset = _ACTIVE.set(_ACTIVE.get() | {token})
    try:
        yield
    finally:
        _ACTIVE.reset(reset)


@contextlib.contextmanager
def ablate_heads(
    model: nn.Module, heads: Iterable[tuple[int, int]], mode: str = "zero"
) -> Iterator[dict[int, list[int]]]:
    """Silence attention heads while the block runs, in this thread only.

    Each chosen head's output (its slice of the concatenated head outputs, the input of the
    layer's `attn.c_proj`) is replaced by zeros (`mode="zero"`) or by its mean over the positions
    of the sequence being run (`mode="mean"`), so the model computes exactly what it would with
    those head outputs removed before `c_proj`. Yields the heads grouped by layer.

    With a KV cache, "mean" averages over the positions of each call only.
    """
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {', '.join(ABLATION_MODES)}, got {mode!r}")
    gpt = body(model)
    cfg = gpt.config
    by_layer = parse_heads(heads, cfg.n_layer, cfg.n_head)
    token = object()

    def make_hook(chosen: list[int]):
        index = torch.tensor(chosen, device=gpt.device)

        def hook(module: nn.Module, args: tuple) -> tuple | None:
            if token not in _ACTIVE.get():
                return None
            y = args[0]  # (B, T, C): the heads' outputs side by side
            B, T, C = y.shape
            y = y.reshape(B, T, cfg.n_head, cfg.head_dim).clone()  # (B, T, H, hd)
            i = index.to(y.device)
            if mode == "zero":
                y[:, :, i] = 0.0
            else:
                y[:, :, i] = y[:, :, i].mean(dim=1, keepdim=True)
            return (y.reshape(B, T, C), *args[1:])

        return hook

    handles = [
        gpt.h[layer].attn.c_proj.register_forward_pre_hook(make_hook(hs))
        for layer, hs in by_layer.items()
    ]
    try:
        with _active(token):
            yield by_layer
    finally:
        for h in handles:
            h.remove()


@dataclass
class Ablation:
    """A text run with and without some heads.

    Attributes:
        heads: the ablated heads, grouped by layer.
        mode: "zero" or "mean".
        before, after: `Predictions` of the intact and the ablated model.
        next_before, next_after: `(V,)` next-token probabilities after the last token.
    """

    heads: dict[int, list[int]]
    mode: str
    before: Predictions
    after: Predictions
    next_before: torch.Tensor
    next_after: torch.Tensor


def ablate(
    model: nn.Module,
    ids: Sequence[int] | torch.Tensor,
    heads: Iterable[tuple[int, int]],
    mode: str = "zero",
    k: int = 5,
    before: Predictions | None = None,
) -> Ablation:
    """Run `ids` intact and with `heads` ablated. `before`: the intact model's `predictions` of
    `ids` if already known (with `next_probs`), so only the ablated model runs."""
    idx = as_ids(model, ids, min_len=2)
    if before is None or before.next_probs is None:
        before = predictions_from_logits(sequence_logits(model, idx), idx[0], k)
    with ablate_heads(model, heads, mode) as by_layer:
        after = predictions_from_logits(sequence_logits(model, idx), idx[0], k)
    return Ablation(by_layer, mode, before, after, before.next_probs, after.next_probs)


# --- attribution ----------------------------------------------------------------------------------


@dataclass
class Attribution:
    """How much each input token pushed one output up (positive) or down (negative).

    Attributes:
        scores: `(T,)` one score per input token.
        method: "gradient" (gradient × input on the token embeddings, of the target's logit) or
            "occlusion" (P(target) with the full input minus P(target) with the token dropped).
        target: the class index (classifier) or the next-token id (language model).
        prob: P(target) on the full input.
        classifier: whether the target is a class (else a next token).
    """

    scores: torch.Tensor
    method: str
    target: int
    prob: float
    classifier: bool


def is_classifier(model: nn.Module) -> bool:
    return hasattr(model, "head") and hasattr(model, "gpt")


def _outputs(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """The logits being explained, `(B, n_out)`: class logits, or next-token logits after the last
    position."""
    if is_classifier(model):
        return model(idx)  # (B, num_classes), from the last position
    return model(idx, last_only=True)[:, -1]  # (B, V)


def _target(model: nn.Module, idx: torch.Tensor, target: int | None) -> tuple[int, float]:
    with torch.inference_mode():
        probs = torch.softmax(_outputs(model, idx)[0].float(), dim=-1)
    n = probs.shape[0]
    if target is None:
        target = int(torch.argmax(probs))
    if not 0 <= int(target) < n:
        what = "class" if is_classifier(model) else "token"
        raise ValueError(f"target {what} {target} is out of range [0, {n})")
    return int(target), float(probs[int(target)])


def gradient_x_input(
    model: nn.Module, ids: Sequence[int] | torch.Tensor, target: int | None = None
) -> Attribution:
    """Gradient × input: d logit[target] / d embedding, dotted with the token embedding, per token.

    The input is the token embedding `wte[ids]` (position embeddings are the same for any text).
    The target is a class of a classifier, or a next token of a language model (default: the
    most likely one). Logits are used, not probabilities, because probabilities saturate.
    """
    gpt = body(model)
    idx = as_ids(model, ids)
    target, prob = _target(model, idx, target)
    token = object()
    with torch.inference_mode(False), torch.enable_grad():
        emb = gpt.wte(idx).detach().requires_grad_(True)  # (1, T, C)

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            return emb if token in _ACTIVE.get() else None

        handle = gpt.wte.register_forward_hook(hook)
        try:
            with _active(token):
                score = _outputs(model, idx)[0, target]
            (grad,) = torch.autograd.grad(score, emb)
        finally:
            handle.remove()
        scores = (grad * emb).sum(dim=-1)[0].detach().float().cpu()  # (T,)
    return Attribution(scores, "gradient", target, prob, is_classifier(model))


OCCLUSION_MEASURES = ("prob", "log_odds")


def log_odds(logits: torch.Tensor, target: int) -> torch.Tensor:
    """log(P / (1 − P)) of class `target` under softmax(`logits`), `(B, n)` -> `(B,)`, computed
    from log-probabilities so that it stays exact near P = 1.

    >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    >>> log_odds(x, 0)
    tensor([0., 2.])
    """
    logp = torch.log_softmax(logits, dim=-1)
    others = logp.clone()
    others[:, target] = float("-inf")
    return logp[:, target] - torch.logsumexp(others, dim=-1)


def occlusion(
    model: nn.Module,
    ids: Sequence[int] | torch.Tensor,
    target: int | None = None,
    batch_size: int = 16,
    positions: Sequence[int] | None = None,
    measure: str = "prob",
) -> Attribution:
    """Drop each token in turn and measure how the target changes: with `measure="prob"`,
    score = P(full) − P(without); with `"log_odds"`, the change in log(P / (1 − P)), which does
    not saturate near 0 or 1 (at P = 0.999 a token that halves the odds scores 0.69, where its
    ΔP is 0.0005).

    Positive: the token pushed the target up. The shortened texts run in batches. `positions`
    limits the work to those tokens (the others score NaN): each costs one forward pass.
    """
    if measure not in OCCLUSION_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(OCCLUSION_MEASURES)}, got {measure!r}")
    idx = as_ids(model, ids, min_len=2)
    target, prob = _target(model, idx, target)
    score = log_odds if measure == "log_odds" else lambda out, t: torch.softmax(out, -1)[:, t]
    T = idx.shape[1]
    chosen = list(range(T)) if positions is None else sorted({int(p) for p in positions})
    if chosen and not 0 <= chosen[0] <= chosen[-1] < T:
        raise ValueError(f"positions must be in [0, {T}), got {chosen[0]}..{chosen[-1]}")
    keep = ~torch.eye(T, dtype=torch.bool, device=idx.device)[chosen]  # row: all but one
    variants = idx.expand(len(chosen), T)[keep].view(len(chosen), T - 1)  # (N, T-1)
    probs = []
    with torch.inference_mode():
        for start in range(0, len(chosen), batch_size):
            out = _outputs(model, variants[start : start + batch_size]).float()
            probs.append(score(out, target).cpu())
        full = score(_outputs(model, idx).float(), target)[0].cpu() if measure != "prob" else prob
    scores = torch.full((T,), float("nan"), device="cpu")
    if chosen:
        scores[chosen] = full - torch.cat(probs)
    return Attribution(scores, "occlusion", target, prob, is_classifier(model))


def attribute(
    model: nn.Module,
    ids: Sequence[int] | torch.Tensor,
    method: str = "gradient",
    target: int | None = None,
) -> Attribution:
    """`gradient_x_input` or `occlusion`, by name."""
    if method == "gradient":
        return gradient_x_input(model, ids, target)
    if method == "occlusion":
        return occlusion(model, ids, target)
    raise ValueError(f"method must be one of {', '.join(ATTRIBUTION_METHODS)}, got {method!r}")


# --- activation patching -------------------------------------------------------------------------

PATCH_BATCH_TOKENS = 4096  # tokens per batched forward of the patched variants


def patch(
    model: nn.Module,
    clean_ids: Sequence[int] | torch.Tensor,
    corrupt_ids: Sequence[int] | torch.Tensor,
    target_id: int,
) -> torch.Tensor:
    """Activation patching: where in the model does the clean prompt's answer live?

    Run the corrupted prompt, but replace its residual stream at one (layer l, position t) with
    the clean run's; cell `(l, t)` is the resulting probability of `target_id` after the last
    position (a class of a classifier). Row 0 is the embeddings (the input of block 0), row l the
    output of block l − 1. Returns `(n_layer + 1, T)`.

    The prompts must have the same number of tokens. The variants of a row run as one batch (a
    few, for long prompts): each starts from the corrupted stream with one position replaced and
    runs the remaining blocks. The last row needs no block: `ln_f` and the head act on each
    position alone, so its cells are the corrupted run's probability, and the clean run's at the
    last position (both from the model's own forward, exactly).

    >>> from gpt.config import PRESETS
    >>> torch.manual_seed(0) and None
    >>> model = GPT(PRESETS["tiny"]).eval()
    >>> grid = patch(model, [1, 2, 3], [1, 5, 3], target_id=7)
    >>> grid.shape  # (n_layer + 1, T)
    torch.Size([3, 3])
    >>> bool(torch.equal(patch(model, [1, 2, 3], [1, 2, 3], 7)[-1], grid[-1, -1].expand(3)))
    True
    """
    gpt = body(model)
    clean = as_ids(model, clean_ids)
    corrupt = as_ids(model, corrupt_ids)
    n_clean, n_corrupt = clean.shape[1], corrupt.shape[1]
    if n_clean != n_corrupt:
        raise ValueError(
            f"the clean and corrupted prompts must have the same number of tokens, got "
            f"{n_clean} and {n_corrupt}: patching swaps one position for the same position"
        )
    T = n_clean
    n_out = model.head.out_features if is_classifier(model) else gpt.config.vocab_size
    if not isinstance(target_id, int) or isinstance(target_id, bool) or not 0 <= target_id < n_out:
        what = "class" if is_classifier(model) else "token"
        raise ValueError(f"target {what} {target_id!r} is out of range [0, {n_out})")
    L = gpt.config.n_layer
    grid = torch.empty(L + 1, T, device="cpu")
    with torch.inference_mode():
        p_clean = torch.softmax(_outputs(model, clean)[0].float(), -1)[target_id]
        p_corrupt = torch.softmax(_outputs(model, corrupt)[0].float(), -1)[target_id]
        grid[L] = p_corrupt
        grid[L, -1] = p_clean
        good = residual_stream(gpt, clean)  # (L+1, T, C)
        bad = residual_stream(gpt, corrupt)
        per_batch = max(1, PATCH_BATCH_TOKENS // T)
        for layer in range(L):
            for start in range(0, T, per_batch):
                ts = torch.arange(start, min(T, start + per_batch), device=good.device)  # (N,)
                x = bad[layer].expand(len(ts), T, -1).clone()  # (N, T, C)
                rows = torch.arange(len(ts), device=x.device)
                x[rows, ts] = good[layer, ts]  # variant i patches position ts[i]
                for block in gpt.h[layer:]:
                    x, _ = block(x)
                h = gpt.ln_f(x[:, -1])  # (N, C): only the last position is asked about
                out = model.head(h) if is_classifier(model) else gpt.lm_head(h)  # (N, n_out)
                grid[layer, ts.cpu()] = torch.softmax(out.float(), -1)[:, target_id].cpu()
    return grid


# --- two models on one text -----------------------------------------------------------------------


@dataclass
class Comparison:
    """Two models on the same tokens (models sharing a tokenizer).

    Attributes:
        logprobs_a, logprobs_b: `(T-1,)` log p(actual next token) under each model.
        diff: `(T-1,)` `logprobs_b - logprobs_a` (positive: B found the text more likely).
        kl: `(T-1,)` KL(A ‖ B) of the two next-token distributions, in nats.
        lens_a, lens_b: `(L+1, T-1)` log p(actual next token) through each model's logit lens.
        lens_diff: `lens_b - lens_a`, or None when the models differ in depth.
    """

    logprobs_a: torch.Tensor
    logprobs_b: torch.Tensor
    diff: torch.Tensor
    kl: torch.Tensor
    lens_a: torch.Tensor
    lens_b: torch.Tensor
    lens_diff: torch.Tensor | None


def compare(
    model_a: nn.Module,
    model_b: nn.Module,
    ids: Sequence[int] | torch.Tensor,
    fast: bool = False,
) -> Comparison:
    """Per-token log-probability differences and logit-lens differences of two models.

    `fast`: the lenses' rows before the last as in `logit_lens(fast=True)`; the final
    log-probabilities (`logprobs_*`, `diff`, `kl`) are float32 either way.

    >>> from gpt.config import PRESETS
    >>> torch.manual_seed(0) and None
    >>> a, b = GPT(PRESETS["tiny"]).eval(), GPT(PRESETS["tiny"]).eval()
    >>> c = compare(a, b, [1, 2, 3, 4])
    >>> c.diff.shape, c.lens_diff.shape
    (torch.Size([3]), torch.Size([3, 3]))
    """
    va, vb = body(model_a).config.vocab_size, body(model_b).config.vocab_size
    if va != vb:
        raise ValueError(f"the models' vocabularies differ ({va} vs {vb} tokens): no shared tokens")
    idx = as_ids(model_a, ids, min_len=2)
    as_ids(model_b, idx)  # B's context length too
    lens_a, logp_a = _lens_pass(model_a, idx, 1, None, fast)
    lens_b, logp_b = _lens_pass(model_b, idx, 1, None, fast)
    lp_a, lp_b = lens_a.next_logprobs[-1], lens_b.next_logprobs[-1]
    kl = (logp_a[:-1].exp() * (logp_a[:-1] - logp_b[:-1])).nan_to_num().sum(dim=-1)
    same_depth = lens_a.n_rows == lens_b.n_rows
    return Comparison(
        logprobs_a=lp_a,
        logprobs_b=lp_b,
        diff=lp_b - lp_a,
        kl=kl,
        lens_a=lens_a.next_logprobs,
        lens_b=lens_b.next_logprobs,
        lens_diff=lens_b.next_logprobs - lens_a.next_logprobs if same_depth else None,
    )


def describe(obj: Any) -> dict[str, Any]:
    """A dataclass of tensors as plain lists and numbers (for JSON export).

    >>> describe(Predictions(*(torch.zeros(1),) * 6))["surprisal"]
    [0.0]
    """
    out = {}
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor):
            out[name] = value.tolist()
        elif hasattr(value, "__dataclass_fields__"):
            out[name] = describe(value)
        else:
            out[name] = value
    return out
