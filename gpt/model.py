"""GPT-2, written from scratch: embeddings, pre-LayerNorm blocks, causal attention, tied LM head.

Parameter names follow OpenAI's checkpoint keys (`wte`, `wpe`, `h.N.attn.c_attn`, `h.N.mlp.c_fc`,
`ln_f`, ...), and every projection stores its weight as `(in, out)` like GPT-2's own `Conv1D`, so
loading the released weights is a key check with no transposes. We measured that layout on these
2-core CPUs (see `bench/bench_layout.py`): batch-1 decoding reads every weight once per token, and
`x @ W` with `W` stored `(in, out)` streams memory faster than `nn.Linear`'s `x @ W.T`.

Two attention paths compute the same function:
- the fast path (`forward`, `hidden`) calls `F.scaled_dot_product_attention`;
- the explain path (`explain`) computes `softmax(q k^T / sqrt(d))` by hand and returns every
  layer's attention weights `(B, H, T, T)` and hidden states, for the heatmap tab.

>>> import torch
>>> from gpt.config import PRESETS
>>> model = GPT(PRESETS["tiny"]).eval()
>>> idx = torch.tensor([[1, 2, 3]])
>>> model(idx).shape
torch.Size([1, 3, 512])
>>> ex = model.explain(idx)
>>> len(ex.attentions), ex.attentions[0].shape
(2, torch.Size([1, 2, 3, 3]))
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt.config import GPTConfig


class Linear(nn.Module):
    """An affine map whose weight is stored `(in, out)`: `y = x @ W + b` (GPT-2's `Conv1D`).

    >>> lin = Linear(3, 2)
    >>> lin.weight.shape, lin(torch.zeros(5, 3)).shape
    (torch.Size([3, 2]), torch.Size([5, 2]))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = _PACKED.get()
        if packed is not None and (w := packed.get(self)) is not None:  # in a batched step
            return torch.ops.mkldnn._linear_pointwise(x, w, self.bias, "none", [], "")
        shape = x.shape[:-1] + (self.out_features,)
        x2 = x.reshape(-1, self.in_features)  # (N, in)
        if self.bias is None:
            return (x2 @ self.weight).view(shape)
        return torch.addmm(self.bias, x2, self.weight).view(shape)  # (N, out)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


# The pre-packed weights a batched decode step uses (`PackedWeights`), set only around that step
_PACKED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("packed", default=None)


class PackedWeights:
    """Every `Linear` weight of a model and its output head, copied into oneDNN's blocked layout
    for small-batch products. A decode step of 4 to 16 rows multiplies `(rows, in)` by each
    weight; a plain GEMM re-packs each weight on every call, which on these CPUs makes a
    batch-8 step cost about 2.5 batch-1 steps; pre-packed, about 1.2 (`bench/bench_crowd.py`).
    A copy of the weights (`nbytes`); `fresh()` says whether the weights are still the ones
    packed. Only `GPT.decode_rows` uses it, and only for more than one row.

    >>> from gpt.config import PRESETS
    >>> m = GPT(PRESETS["tiny"]).eval()
    >>> packed = PackedWeights.of(m)
    >>> packed is None or (len(packed.linears), packed.fresh())
    (8, True)
    """

    def __init__(self, model: GPT, rows: int = 8) -> None:
        reorder = torch.ops.mkldnn._reorder_linear_weight
        self.sources = [m.weight for m in model.modules() if type(m) is Linear]
        with torch.no_grad():
            self.linears = {
                m: reorder(m.weight.detach().t().contiguous(), rows)
                for m in model.modules()
                if type(m) is Linear
            }
            head = model.head_weight()  # (vocab, C)
            self.sources.append(head)
            self.head = reorder(head.detach().contiguous(), rows)
        self.versions = [(w.data_ptr(), w._version) for w in self.sources]

    @staticmethod
    def nbytes_of(model: GPT) -> int:
        """The bytes packing `model` takes."""
        linears = sum(m.weight.numel() for m in model.modules() if type(m) is Linear)
        return 4 * (linears + model.head_weight().numel())

    @classmethod
    def of(cls, model: GPT) -> PackedWeights | None:
        """The packed weights of a float32 model on the CPU, or None where oneDNN is not there."""
        ok = (
            model.device.type == "cpu"
            and model.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        )
        try:
            return cls(model) if ok else None
        except (RuntimeError, AttributeError):  # a torch build without these kernels
            return None

    def fresh(self) -> bool:
        return self.versions == [(w.data_ptr(), w._version) for w in self.sources]

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """Logits from final features `h` (..., C), with the packed head."""
        return torch.ops.mkldnn._linear_pointwise(h, self.head, None, "none", [], "")


class KVCache:
    """Preallocated keys and values of every layer, written in place as decoding advances.

    `pos` is the number of positions already stored. Preallocation avoids the `torch.cat` per
    token (and the copy it implies) that a growing cache would cost.
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        max_len = config.block_size if max_len is None else max_len
        if not 0 < max_len <= config.block_size:
            raise ValueError(f"KVCache max_len must be in [1, {config.block_size}], got {max_len}")
        shape = (config.n_layer, batch_size, config.n_head, max_len, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, H, maxT, hd)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.pos = 0

    def reset(self) -> None:
        self.pos = 0


class RowKVCache:
    """Keys and values of up to `rows` sequences decoded together, each at its own position.

    Row r holds one sequence's keys and values at positions `0 .. pos[r] - 1`. A decode step
    (`GPT.decode_rows`) feeds one new token to each of the rows `0 .. n - 1`: row r's token is
    embedded at position `pos[r]`, its key and value are written there, and it attends to keys
    `0 .. pos[r]` only (a key mask), so prompts of any lengths share one step. Rows are filled
    from a batch-1 `KVCache` (`load`, after a prompt's own prefill) and packed with `move`.

    >>> from gpt.config import PRESETS
    >>> c = RowKVCache(PRESETS["tiny"], rows=4, max_len=16)
    >>> c.k.shape, c.pos
    (torch.Size([2, 4, 2, 16, 16]), [0, 0, 0, 0])
    >>> RowKVCache.bytes_per_position(PRESETS["gpt2"])  # 2 x 12 layers x 768 x 4 bytes
    73728
    """

    def __init__(
        self,
        config: GPTConfig,
        rows: int,
        max_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        if not 0 < max_len <= config.block_size or rows < 1:
            raise ValueError(f"RowKVCache needs rows >= 1 and max_len in [1, {config.block_size}]")
        shape = (config.n_layer, rows, config.n_head, max_len, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # (L, R, H, maxT, hd)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.config, self.rows, self.max_len = config, rows, max_len
        self.pos = [0] * rows  # positions stored per row

    @staticmethod
    def bytes_per_position(config: GPTConfig, dtype: torch.dtype = torch.float32) -> int:
        """Bytes one row's position costs: a key and a value in every layer."""
        return 2 * config.n_layer * config.n_embd * torch.empty((), dtype=dtype).element_size()

    def load(self, row: int, cache: KVCache) -> None:
        """Copy a batch-1 `KVCache`'s stored positions into `row`."""
        n = cache.pos
        if n > self.max_len:
            raise ValueError(f"{n} positions do not fit a row of {self.max_len}")
        self.k[:, row, :, :n] = cache.k[:, 0, :, :n]
        self.v[:, row, :, :n] = cache.v[:, 0, :, :n]
        self.pos[row] = n

    def move(self, src: int, dst: int) -> None:
        """Copy row `src` into row `dst` (to keep the active rows packed at the front)."""
        n = self.pos[src]
        self.k[:, dst, :, :n] = self.k[:, src, :, :n]
        self.v[:, dst, :, :n] = self.v[:, src, :, :n]
        self.pos[dst] = n

    def resized(self, rows: int, max_len: int, keep: int) -> RowKVCache:
        """A cache of `rows` x `max_len` holding this one's first `keep` rows."""
        out = RowKVCache(self.config, rows, max_len, self.k.dtype, self.k.device)
        n = min(self.max_len, max_len)
        out.k[:, :keep, :, :n] = self.k[:, :keep, :, :n]
        out.v[:, :keep, :, :n] = self.v[:, :keep, :, :n]
        out.pos[:keep] = self.pos[:keep]
        return out

    def step(self, n: int) -> RowStep:
        """What one decode step of rows `0 .. n - 1` needs: their positions and key mask."""
        if n == 1:  # a lone row: the batch-1 path, no mask, no index tensors
            pos = torch.tensor([self.pos[0]], device=self.k.device)
            return RowStep(self, 1, self.pos[0] + 1, pos, None)
        pos = torch.tensor(self.pos[:n], device=self.k.device)  # (n,)
        span = int(max(self.pos[:n])) + 1
        keys = torch.arange(span, device=self.k.device)
        mask = (keys[None, :] <= pos[:, None])[:, None, None, :]  # (n, 1, 1, span)
        return RowStep(self, n, span, pos, mask)


@dataclass
class RowStep:
    """One decode step over rows `0 .. n - 1` of a `RowKVCache` (see `RowKVCache.step`).

    Attributes:
        cache: the cache written and read.
        n: rows taking part.
        span: keys read per row: the longest row's position + 1.
        pos: `(n,)` each row's position (where its new token goes).
        mask: `(n, 1, 1, span)` True where a row may attend; None for a lone row.
    """

    cache: RowKVCache
    n: int
    span: int
    pos: torch.Tensor
    mask: torch.Tensor | None

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Write each row's new key and value (`(n, H, 1, hd)`) at its position and return
        `(n, H, 1, hd)`: its attention over its own keys."""
        ck, cv = self.cache.k[layer], self.cache.v[layer]  # (R, H, maxT, hd)
        if self.mask is None:  # one row: plain slices, as a batch-1 KVCache does
            p = self.span - 1
            ck[:1, :, p : p + 1] = k
            cv[:1, :, p : p + 1] = v
            return F.scaled_dot_product_attention(q, ck[:1, :, : p + 1], cv[:1, :, : p + 1])
        rows = torch.arange(self.n, device=k.device)
        ck[rows, :, self.pos] = k[:, :, 0]  # row r's key at pos[r]: (n, H, hd)
        cv[rows, :, self.pos] = v[:, :, 0]
        n, S = self.n, self.span
        return F.scaled_dot_product_attention(
            q, ck[:n, :, :S], cv[:n, :, :S], attn_mask=self.mask
        )  # (n, H, 1, hd)

    def advance(self) -> None:
        for r in range(self.n):
            self.cache.pos[r] += 1


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | RowStep | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, C = x.shape
        qkv = self.c_attn(x)  # (B, T, 3C)
        q, k, v = qkv.view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, H, T, hd)
        start = 0
        if isinstance(cache, RowStep):  # batched decoding: one token per row, own positions
            y = cache.attend(layer, q, k, v).transpose(1, 2).reshape(B, T, C)  # (n, 1, C)
            return self.resid_dropout(self.c_proj(y)), None
        if cache is not None:
            start = cache.pos
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            k = cache.k[layer, :, :, : start + T]  # (B, H, start+T, hd)
            v = cache.v[layer, :, :, : start + T]
        S = k.shape[2]

        weights = None
        if need_weights:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))  # (B, H, T, S)
            att = att.masked_fill(~_causal_mask(T, S, start, x.device), float("-inf"))
            weights = torch.softmax(att, dim=-1)
            y = weights @ v  # (B, H, T, hd)
        else:
            dropout_p = self.dropout if self.training else 0.0
            dtype, fp32 = q.dtype, _fp32_attention(q)
            if fp32:
                q, k, v = q.float(), k.float(), v.float()
            with torch.autocast("cpu", enabled=False) if fp32 else contextlib.nullcontext():
                if start == 0:
                    y = F.scaled_dot_product_attention(
                        q, k, v, dropout_p=dropout_p, is_causal=T > 1
                    )
                elif T == 1:  # one new token sees every cached position: no mask needed
                    y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
                else:  # a chunk appended after cached positions: bottom-right aligned mask
                    mask = _causal_mask(T, S, start, x.device)
                    y = F.scaled_dot_product_attention(
                        q, k, v, attn_mask=mask, dropout_p=dropout_p
                    )
            y = y.to(dtype)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y)), weights


def _fp32_attention(q: torch.Tensor) -> bool:
    """Whether to attend in float32 though autocast runs in bf16: on the CPU, where torch's bf16
    SDPA kernel is no faster forward and 1.1-3x slower forward + backward than its float32 one
    (8 x 64 tokens, 12 heads: 13.8 ms against 5.4 on 2 EPYC cores), while the projections
    around it gain from bf16."""
    return q.device.type == "cpu" and torch.is_autocast_enabled("cpu")


def _causal_mask(T: int, S: int, start: int, device: torch.device) -> torch.Tensor:
    """Boolean (T, S) mask: query i (at absolute position start+i) may see keys 0..start+i.

    >>> _causal_mask(2, 3, 1, torch.device("cpu")).int().tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    q_pos = torch.arange(start, start + T, device=device)[:, None]
    return torch.arange(S, device=device)[None, :] <= q_pos


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.c_fc(x), approximate="tanh")  # (B, T, 4C), GPT-2's tanh GELU
        return self.dropout(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | RowStep | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, weights = self.attn(self.ln_1(x), cache, layer, need_weights)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, weights


def _unobserved(model: nn.Module) -> bool:
    """Whether nothing watches or changes a forward pass from outside: no global module hooks,
    no torch function mode (`gpt.walk`'s trace and knockouts), no autocast, not training."""
    hooks = nn.modules.module
    return not (
        model.training
        or hooks._global_forward_hooks
        or hooks._global_forward_pre_hooks
        or torch._C._is_torch_function_mode_enabled()
        or torch.is_autocast_enabled(model.wte.weight.device.type)
    )


def _plain(block: nn.Module) -> tuple | None:
    """The parts `_decode_step` reads if `block` is a stock `Block` of stock parts with no hooks
    (no LoRA, no ablation), else None. Read from the modules' own dicts: `nn.Module.__getattr__`
    costs about as much as a small tensor operation, and this runs per block per token."""
    if type(block) is not Block:
        return None
    mods = block._modules
    ln_1, attn, ln_2, mlp = mods["ln_1"], mods["attn"], mods["ln_2"], mods["mlp"]
    if type(attn) is not CausalSelfAttention or type(mlp) is not MLP:
        return None
    c_attn, c_proj = attn._modules["c_attn"], attn._modules["c_proj"]
    c_fc, m_proj = mlp._modules["c_fc"], mlp._modules["c_proj"]
    linears = (c_attn, c_proj, c_fc, m_proj)
    if any(type(m) is not Linear for m in linears) or any(
        m._forward_hooks or m._forward_pre_hooks for m in (block, ln_1, attn, ln_2, mlp, *linears)
    ):
        return None
    weights = ((m._parameters["weight"], m._parameters.get("bias")) for m in linears)
    return ln_1, ln_2, attn.n_head, *weights


def _decode_step(
    parts: tuple, x: torch.Tensor, ck: torch.Tensor, cv: torch.Tensor, p: int
) -> torch.Tensor:
    """A block's output for one new token per sequence at position `p`, in eval mode, from the
    block's `_plain` parts and its layer's cached keys and values `ck`, `cv` `(B, H, maxT, hd)`:
    the same products and sums as `Block.forward` in about half the tensor operations (no module
    calls, reshapes or dropout), a few percent of a GPT-2 124M decode step on a CPU (see
    `bench/bench_model.py`). x: `(B, 1, C)`."""
    ln_1, ln_2, H, (wa, ba), (wp, bp), (wf, bf), (wm, bm) = parts
    B, _, C = x.shape
    x = x.view(B, C)
    h = F.layer_norm(x, (C,), ln_1.weight, ln_1.bias, ln_1.eps)
    q, k, v = _affine(h, wa, ba).view(B, 3, H, 1, C // H).unbind(1)  # each (B, H, 1, hd)
    ck[:, :, p : p + 1] = k
    cv[:, :, p : p + 1] = v
    y = F.scaled_dot_product_attention(q, ck[:, :, : p + 1], cv[:, :, : p + 1])  # (B, H, 1, hd)
    x = _affine(y.view(B, C), wp, bp).add_(x)  # x + attn
    h = F.layer_norm(x, (C,), ln_2.weight, ln_2.bias, ln_2.eps)
    h = F.gelu(_affine(h, wf, bf), approximate="tanh")  # (B, 4C)
    return _affine(h, wm, bm).add_(x).view(B, 1, C)  # x + mlp


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return x @ w if b is None else torch.addmm(b, x, w)


@dataclass
class Explanation:
    """What the explain path returns.

    Attributes:
        logits: `(B, T, vocab)`, equal to `model(idx)`.
        attentions: one `(B, H, T, T)` tensor per layer; row i is where token i attends.
        hidden_states: `n_layer + 1` tensors `(B, T, C)`: the embeddings, then each block's
            output (before the final LayerNorm).
    """

    logits: torch.Tensor
    attentions: list[torch.Tensor]
    hidden_states: list[torch.Tensor]


class GPT(nn.Module):
    """The GPT-2 language model.

    `model(idx)` returns logits `(B, T, vocab)`; `model.hidden(idx)` the final-LayerNorm
    features `(B, T, C)` that task heads (e.g. a classifier) read.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self._head_cache: tuple[tuple, torch.Tensor] | None = None  # inference copy of wte^T
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2's scheme: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * self.config.n_layer))
            elif name.endswith(("wte.weight", "wpe.weight")) or (
                name.endswith(".weight") and p.dim() == 2
            ):
                nn.init.normal_(p, std=0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.weight.dtype

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        return KVCache(self.config, batch_size, max_len, dtype=self.dtype, device=self.device)

    def new_row_cache(self, rows: int, max_len: int) -> RowKVCache:
        return RowKVCache(self.config, rows, max_len, dtype=self.dtype, device=self.device)

    def _embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds the context length "
                f"{self.config.block_size}"
            )
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        return self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Final-LayerNorm features `(B, T, C)`; with a cache, `idx` holds the new tokens only."""
        start = 0 if cache is None else cache.pos
        if cache is not None and start + idx.shape[1] > cache.max_len:
            raise ValueError(
                f"KV cache holds {cache.max_len} positions; {start} used, {idx.shape[1]} more asked"
            )
        x = self._embed(idx, start)
        one_token = cache is not None and idx.shape[1] == 1 and _unobserved(self)
        for i, block in enumerate(self.h):
            if one_token and (parts := _plain(block)) is not None:  # decoding's hot loop
                x = _decode_step(parts, x, cache.k[i], cache.v[i], start)
            else:
                x, _ = block(x, cache, i)
        if cache is not None:
            cache.pos += idx.shape[1]
        return self.ln_f(x)

    def residual(self, idx: torch.Tensor, n_blocks: int) -> torch.Tensor:
        """The residual stream `(B, T, C)` after the embeddings and the first `n_blocks` blocks:
        what enters block `n_blocks`. With `hidden_from` it splits `hidden` in two, so a frozen
        trunk's output can be computed once and reused (see `gpt.train.trunk`)."""
        x = self._embed(idx, 0)
        for block in self.h[:n_blocks]:
            x, _ = block(x)
        return x

    def hidden_from(self, x: torch.Tensor, first_block: int) -> torch.Tensor:
        """Final-LayerNorm features `(B, T, C)` from the residual stream `x` entering block
        `first_block`: `hidden_from(residual(idx, k), k)` equals `hidden(idx)` for every k."""
        for block in self.h[first_block:]:
            x, _ = block(x)
        return self.ln_f(x)

    def lm_head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits from features, with the head tied to the token embedding: `h @ wte^T`.

        Under `torch.inference_mode` (generation) this multiplies by a cached `(C, vocab)` copy
        of `wte^T`: the same `(in, out)` layout as every other projection, which decodes faster
        than reading `wte` transposed. The copy is dropped by `train()` and `load_state_dict`,
        and rebuilt when `wte` is replaced or bumped in place. (Fused optimizers update
        parameters without bumping their version, hence the `train()` rule: every training
        loop calls it.) Training and `no_grad` evaluation always read `wte` itself.
        """
        w = self.wte.weight
        if not torch.is_inference_mode_enabled():
            return F.linear(h, w)  # (B, T, vocab); gradients flow into the tied embedding
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        if self._head_cache is None or self._head_cache[0] != key:
            # A normal tensor even under inference_mode, so it never leaks into autograd errors.
            with torch.inference_mode(False), torch.no_grad():
                self._head_cache = (key, w.detach().t().contiguous())  # (C, vocab)
        return h @ self._head_cache[1]  # (B, T, vocab)

    def train(self, mode: bool = True) -> GPT:
        self._head_cache = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._head_cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def forward(
        self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """Logits `(B, T, vocab)`, or `(B, 1, vocab)` for the last position if `last_only`."""
        h = self.hidden(idx, cache)
        if last_only:
            h = h[:, -1:, :]
        return self.lm_head(h)

    def head_weight(self) -> torch.Tensor:
        """The output head's weight `(vocab, C)`: the tied token embedding (an untied head's
        own matrix in a subclass)."""
        return getattr(self, "out_head", self.wte.weight)

    def decode_rows(
        self,
        tokens: torch.Tensor,
        cache: RowKVCache,
        n: int,
        packed: PackedWeights | None = None,
    ) -> torch.Tensor:
        """Logits `(n, vocab)` of one decode step of rows `0 .. n - 1` of `cache`: `tokens`
        `(n,)` are their new tokens, each at its row's own position (see `RowKVCache`). With
        `packed` (`PackedWeights`), more than one row multiply by the pre-packed weights.

        >>> from gpt.config import PRESETS
        >>> m = GPT(PRESETS["tiny"]).eval()
        >>> c = RowKVCache(m.config, rows=2, max_len=8)
        >>> m.decode_rows(torch.tensor([5, 7]), c, 2).shape, c.pos
        (torch.Size([2, 512]), [1, 1])
        """
        step = cache.step(n)
        if max(cache.pos[:n]) >= cache.max_len:
            raise ValueError(f"a row of the cache is full ({cache.max_len} positions)")
        packed = packed if n > 1 else None  # a lone row: the batch-1 products
        x = self.drop(self.wte(tokens[:, None]) + self.wpe(step.pos[:, None]))  # (n, 1, C)
        token = _PACKED.set(packed.linears if packed is not None else None)
        one_row = n == 1 and _unobserved(self)
        try:
            for i, block in enumerate(self.h):
                if one_row and (parts := _plain(block)) is not None:
                    x = _decode_step(parts, x, cache.k[i, :1], cache.v[i, :1], step.span - 1)
                else:
                    x, _ = block(x, step, i)
        finally:
            _PACKED.reset(token)
        step.advance()
        h = self.ln_f(x)[:, 0]  # (n, C)
        return self.lm_head(h) if packed is None else packed.project(h)  # (n, vocab)

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's attention weights `(B, H, T, T)` for token ids `(B, T)`: `explain`'s
        attentions without what the maps never read: the vocabulary projection (for 256 tokens
        of GPT-2 124M, 2 * 768 * 50,257 * 256 = 20 GFLOP) and the last block's MLP.

        >>> from gpt.config import PRESETS
        >>> m = GPT(PRESETS["tiny"]).eval()
        >>> idx = torch.randint(0, 512, (1, 5))
        >>> all(torch.equal(a, b) for a, b in zip(m.attention_maps(idx), m.explain(idx).attentions))
        True
        """
        x = self._embed(idx, 0)
        maps = []
        for block in self.h[:-1]:
            x, weights = block(x, need_weights=True)
            maps.append(weights)
        last = self.h[-1]  # its attention is all the maps need: no MLP after it
        maps.append(last.attn(last.ln_1(x), need_weights=True)[1])
        return maps

    @torch.no_grad()
    def explain(self, idx: torch.Tensor) -> Explanation:
        """Run the explicit-softmax path and return logits, attention maps and hidden states."""
        x = self._embed(idx, 0)
        hidden_states, attentions = [x], []
        for block in self.h:
            x, weights = block(x, need_weights=True)
            attentions.append(weights)
            hidden_states.append(x)
        return Explanation(self.lm_head(self.ln_f(x)), attentions, hidden_states)
