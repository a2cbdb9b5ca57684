"""Walk through one forward pass step by step, each step beside the line of code that computed it;
and knockouts: the same model with one part taken away.

`trace(model, ids)` runs the model's own `forward` once and records every step on the way: the
embeddings, each block's LayerNorm, q, k, v, attention scores, mask, softmax, the weighted sum of
the values, the projections, GELU, the residual adds, then `ln_f`, the logits and the sampling
stages of `gpt.sampling`. Nothing here re-implements the model: module hooks catch the modules'
inputs and outputs, and a `TorchFunctionMode` (a recording context, active in this thread only)
catches the tensor operations written in `gpt/model.py` itself. Each step's `source` is found from
the Python frame that ran the operation, and its text read from the file at run time.

Two places need more than one recorded operation:
- the fast path fuses attention into `F.scaled_dot_product_attention` (SDPA). For the scores, the
  mask, the softmax and the weighted sum, each block's attention module also runs its explain path
  (`need_weights=True`, the same code `model.explain` uses) on the same input; those steps say
  `path="explain"`. The output the model goes on with is the fast path's (`path="fast"`), so
  `Trace.logits` is exactly `model(ids)`.
- `F.layer_norm` is one kernel: the mean, variance and normalised input are computed here from the
  LayerNorm's recorded input (`path="derived"`); its output is the model's own.

Steps: 4 before the blocks (ids, wte rows, wpe rows, their sum), 24 per block, then `ln_f` (4),
the logits and the sampling stages that act (2 with the default settings): 299 for GPT-2 124M.
Memory: values are the model's own tensors (q, k and v are views of one `c_attn` output), per-head
matrices are one `(H, T, T)` tensor per step (not one step per head). For GPT-2 124M and 64 tokens
a trace holds about 71 MB, 13 MB of it the `(T, vocab)` logits.

>>> import torch
>>> from gpt.config import PRESETS
>>> from gpt.model import GPT
>>> torch.manual_seed(0) and None
>>> model = GPT(PRESETS["tiny"]).eval()
>>> tr = trace(model, [5, 9, 2, 7])
>>> tr.steps[1].name, tr.steps[1].source.path, tuple(tr.steps[1].value.shape)  # (T, C)
('token embedding', 'gpt/model.py', (4, 32))
>>> tr.find("softmax", block=0).value.shape  # (H, T, T): every head's attention weights
torch.Size([2, 4, 4])
>>> with torch.inference_mode():
...     bool(torch.equal(tr.logits, model(torch.tensor([[5, 9, 2, 7]]))[0]))
True
>>> with knockout(model, "causal_mask"):
...     peek = trace(model, [5, 9, 2, 7]).logits
>>> bool(torch.equal(peek[0], tr.logits[0]))  # position 0 now sees the tokens after it
False
"""

from __future__ import annotations

import ast
import contextlib
import dis
import linecache
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from gpt.config import GPTConfig
from gpt.inside import _ACTIVE, _active, as_ids, body, is_classifier
from gpt.inside import __file__ as _inside_file
from gpt.model import GPT
from gpt.sampling import SamplingConfig, SamplingStages, generate_ids, sampling_stages

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
# Files whose frames are skipped when looking for the line that computed a value: the recorders.
_RECORDERS = {name for f in (__file__, _inside_file) for name in (f, str(Path(f).resolve()))}
MAX_TRACE_TOKENS = 256  # a trace of T tokens keeps ~ 3 n_layer (H, T, T) tensors


# --- where a value was computed ------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The lines of the package's own files that computed a value.

    Attributes:
        path: the file, relative to the repository root (e.g. "gpt/model.py").
        first_line, last_line: the statement's lines, 1-based and inclusive.
        text: those lines as they are in the file (newlines included).
        function: the qualified name of the function, e.g. "CausalSelfAttention.forward".
        expr: `(line, col, end_line, end_col)` of the sub-expression that computed the value
            (0-based columns), for highlighting within the statement; None when unknown.
    """

    path: str
    first_line: int
    last_line: int
    text: str
    function: str
    expr: tuple[int, int, int, int] | None = None

    @property
    def file(self) -> Path:
        return ROOT / self.path


_is_package_file: dict[str, bool] = {}
_positions: dict[CodeType, list] = {}
_statements: dict[tuple[str, int], list[tuple[int, int]]] = {}  # (file, n lines) -> spans


def _package_frame(frame: FrameType | None) -> FrameType | None:
    """The innermost frame (from `frame` outwards) running code of this package's own files."""
    while frame is not None:
        name = frame.f_code.co_filename
        ok = _is_package_file.get(name)
        if ok is None:
            p = Path(name).resolve()
            ok = p.suffix == ".py" and PACKAGE in p.parents and str(p) not in _RECORDERS
            _is_package_file[name] = ok
        if ok:
            return frame
        frame = frame.f_back
    return None


def _qualname(frame: FrameType) -> str:
    """ "Class.method" of the function a frame runs (`co_qualname` from Python 3.11; before,
    the class of its `self`)."""
    code = frame.f_code
    name = getattr(code, "co_qualname", None)
    if name is None:
        owner = frame.f_locals.get("self")
        name = code.co_name if owner is None else f"{type(owner).__name__}.{code.co_name}"
    return name


def _direct_caller(frame: FrameType, op: str) -> FrameType | None:
    """`frame` if it runs the package's own code: an operation written there, not one inside
    torch's own Python (`nn.LayerNorm`'s, say). Iterating a tensor (`q, k, v = qkv`) runs
    `unbind` through `Tensor.__iter__`: one hop more. Frames of the recorders themselves (a
    trace inside a knockout: one mode hands the operation on to the other) are skipped."""
    while frame.f_back is not None and frame.f_code.co_filename in _RECORDERS:
        frame = frame.f_back
    if op == "unbind" and frame.f_code.co_name == "__iter__" and frame.f_back is not None:
        frame = frame.f_back
    return frame if _package_frame(frame) is frame else None


def _statement_spans(filename: str, lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line of every statement of a file; a compound statement (if, for, def...)
    spans its header only."""
    key = (filename, len(lines))
    spans = _statements.get(key)
    if spans is None:
        spans = []
        for node in ast.walk(ast.parse("".join(lines))):
            if not isinstance(node, ast.stmt):
                continue
            end = node.end_lineno or node.lineno
            inner = getattr(node, "body", None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.AST):
                end = max(node.lineno, inner[0].lineno - 1)
            spans.append((node.lineno, end))
        _statements[key] = spans
    return spans


def source_at(frame: FrameType) -> Source:
    """The statement `frame` is executing, read from its file now (`linecache`, refreshed when
    the file changed)."""
    code = frame.f_code
    pos = _positions.get(code)
    if pos is None:
        get = getattr(code, "co_positions", None)  # Python 3.11+
        pos = _positions[code] = list(get()) if get else []
    i = frame.f_lasti // 2
    line, end_line, col, end_col = pos[i] if i < len(pos) else (frame.f_lineno, None, None, None)
    line = line or frame.f_lineno
    end_line = end_line or line
    filename = code.co_filename
    linecache.checkcache(filename)
    lines = linecache.getlines(filename)
    first, last = line, end_line
    best = None
    for a, b in _statement_spans(filename, lines):
        if a <= line and end_line <= b and (best is None or b - a < best[1] - best[0]):
            best = (a, b)
    if best is not None:
        first, last = best
    expr = None if col is None or end_col is None else (line, col, end_line, end_col)
    path = Path(filename).resolve().relative_to(ROOT).as_posix()
    text = "".join(lines[first - 1 : last])
    return Source(path, first, last, text, _qualname(frame), expr)


def source_of(fn: Any) -> Source | None:
    """The whole definition of a function or method of this package (e.g. `Tokenizer.encode`),
    or None when it is not in the package's files."""
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    p = Path(code.co_filename).resolve()
    if PACKAGE not in p.parents:
        return None
    linecache.checkcache(code.co_filename)
    lines = linecache.getlines(code.co_filename)
    first = code.co_firstlineno
    last = max((ln for _, _, ln in code.co_lines() if ln is not None), default=first)
    text = "".join(lines[first - 1 : last])
    name = getattr(code, "co_qualname", getattr(fn, "__qualname__", code.co_name))
    return Source(p.relative_to(ROOT).as_posix(), first, last, text, name)


# --- steps ---------------------------------------------------------------------------------------

# kind -> (axes of the value, why, equation). The axes tell a page how to draw the value.
_PC = ("position", "channel")
_HPC = ("head", "position", "channel")
_HQK = ("head", "query", "key")
KINDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "ids": (
        ("position",),
        "The tokenizer cuts the text into pieces of GPT-2's vocabulary; the model only ever sees "
        "their ids.",
        "ids = encode(text)",
    ),
    "wte": (
        _PC,
        "Each id picks its row of wte, a learned vocab × n_embd table: what the token means "
        "before any context.",
        "e_t = wte[id_t]",
    ),
    "wpe": (
        _PC,
        "Row t of wpe marks position t. Attention alone cannot tell the order of the tokens; this "
        "row can.",
        "p_t = wpe[t]",
    ),
    "embed": (
        _PC,
        "Token and position add up into the residual stream, which every block reads and adds to.",
        "x_t = wte[id_t] + wpe[t]",
    ),
    "ln.mean": (
        ("position",),
        "LayerNorm first takes each token's mean over its n_embd numbers (F.layer_norm does this "
        "inside one kernel; the value shown is computed from its input).",
        "μ_t = (1/C) Σ_c x_tc",
    ),
    "ln.var": (
        ("position",),
        "Then their variance (the biased one, as LayerNorm uses).",
        "σ²_t = (1/C) Σ_c (x_tc − μ_t)²",
    ),
    "ln.norm": (
        _PC,
        "Each token is rescaled to mean 0 and variance 1, so the layer after it sees inputs of one "
        "size however large the residual stream has grown.",
        "x̂_t = (x_t − μ_t) / √(σ²_t + ε)",
    ),
    "ln.out": (
        _PC,
        "A learned scale γ and shift β per channel: the LayerNorm's output.",
        "y_t = γ ⊙ x̂_t + β",
    ),
    "c_attn": (
        _PC,
        "One matrix makes the queries, keys and values of every head at once: 3 × n_embd numbers "
        "per token.",
        "[q | k | v] = x W_attn + b_attn",
    ),
    "q": (_HPC, "Queries, split into heads: what each token is looking for.", "q = x W_q + b_q"),
    "k": (_HPC, "Keys: what each token offers to be found by.", "k = x W_k + b_k"),
    "v": (_HPC, "Values: what each token hands on when it is attended to.", "v = x W_v + b_v"),
    "attn.scores": (
        _HQK,
        "Every query meets every key in a dot product, divided by √head_dim so that the softmax "
        "does not saturate. One T × T matrix per head.",
        "s_ij = q_i · k_j / √d",
    ),
    "attn.mask": (
        _HQK,
        "A token may not look ahead: scores above the diagonal become −∞, so their weight after "
        "the softmax is exactly 0.",
        "s_ij = −∞ for j > i",
    ),
    "attn.softmax": (
        _HQK,
        "Each row of scores becomes attention weights that are positive and sum to 1.",
        "a_ij = exp(s_ij) / Σ_j' exp(s_ij')",
    ),
    "attn.mix": (
        _HPC,
        "Each token's head output is an average of the values, weighted by its attention row.",
        "o_i = Σ_j a_ij v_j",
    ),
    "attn.sdpa": (
        _HPC,
        "The fast path computes the four steps before in one fused call "
        "(F.scaled_dot_product_attention): the same numbers, without the T × T matrices.",
        "o = softmax(q kᵀ / √d + mask) v",
    ),
    "attn.concat": (
        _PC,
        "The heads' outputs side by side again: n_head × head_dim = n_embd numbers per token.",
        "o_t = [o¹_t | … | oᴴ_t]",
    ),
    "attn.c_proj": (
        _PC,
        "A linear map mixes the heads into one update for the residual stream.",
        "a = o W_O + b_O",
    ),
    "residual": (
        _PC,
        "The block adds its update to the stream instead of replacing it: what came before passes "
        "straight through, and so do gradients in training.",
        "x ← x + f(ln(x))",
    ),
    "mlp.c_fc": (
        _PC,
        "The MLP works on each token alone: first it widens it to 4 × n_embd numbers.",
        "h = x W_fc + b_fc",
    ),
    "mlp.gelu": (
        _PC,
        "A smooth non-linearity: negative inputs are squashed towards 0, positive ones pass "
        "almost unchanged (GPT-2's tanh approximation). Without it the MLP would be one linear map.",
        "GELU(h) = ½ h (1 + tanh(√(2/π) (h + 0.044715 h³)))",
    ),
    "mlp.c_proj": (
        _PC,
        "… then projects it back to n_embd numbers: the MLP's update for the stream.",
        "m = GELU(h) W_proj + b_proj",
    ),
    "logits": (
        ("position", "token"),
        "The final features dotted with every row of wte (the head is tied to the token "
        "embedding): one score per vocabulary token, at every position.",
        "z_t = ln_f(x_t) · wteᵀ",
    ),
    "class_logits": (
        ("class",),
        "The classifier's head reads the last token's features, the only position that has seen "
        "the whole text.",
        "z = h_T W_head + b_head",
    ),
    "class_probs": (
        ("class",),
        "A softmax turns the class scores into probabilities.",
        "p = softmax(z)",
    ),
    "sample.penalty": (
        ("token",),
        "The repetition penalty pushes the scores of tokens already seen down.",
        "z_i ← z_i / r if z_i > 0 else z_i · r  (seen tokens)",
    ),
    "sample.temperature": (
        ("token",),
        "Dividing by the temperature sharpens (T < 1) or flattens (T > 1) the distribution.",
        "z ← z / T",
    ),
    "sample.top_k": (
        ("token",),
        "Only the k best tokens stay candidates; the others get −∞.",
        "z_i ← −∞ unless i is among the top k",
    ),
    "sample.softmax": (
        ("token",),
        "The softmax turns the next token's scores into probabilities.",
        "p_i = exp(z_i) / Σ_j exp(z_j)",
    ),
    "sample.top_p": (
        ("token",),
        "Top-p keeps the smallest set of best tokens whose probabilities reach p, then "
        "renormalises.",
        "p ← p · [i in nucleus] / Σ",
    ),
    "sample.greedy": (
        ("token",),
        "Temperature 0: the most likely token is taken, with probability 1.",
        "p = onehot(argmax z)",
    ),
}


@dataclass(frozen=True)
class StepStats:
    """Numbers a page shows beside a step, for one followed token (or the whole value)."""

    shape: tuple[int, ...]
    dtype: str
    min: float
    mean: float
    max: float
    std: float
    norm: float


@dataclass(frozen=True)
class Step:
    """One recorded step of a forward pass.

    Attributes:
        index: its place in `Trace.steps`.
        name: what a reader calls it ("token embedding", "q·kᵀ/√d", "GELU", ...).
        kind: a stable key (see `KINDS`): "wte", "attn.scores", "mlp.gelu", ...
        block: the block it belongs to, None outside the blocks.
        value: the tensor as computed, for the one sequence (batch dimension dropped).
        axes: what each dimension of `value` is, e.g. ("head", "query", "key").
        source: the lines that computed it (None for ids given without their text).
        path: which code computed it: "model" (code both attention paths share), "fast" (the
            fused SDPA attention of `forward`), "explain" (the explicit attention of the explain
            path), "derived" (computed here from a recorded tensor: the parts of a LayerNorm, the
            classifier's softmax), "sampling" (`gpt.sampling`), or "input".
        module: the module's name in the model (e.g. "h.3.attn.c_proj"), where one ran.
        why, equation: one or two sentences for a reader, and the formula.
    """

    index: int
    name: str
    kind: str
    block: int | None
    value: torch.Tensor
    axes: tuple[str, ...]
    source: Source | None
    path: str
    module: str | None = None
    why: str = ""
    equation: str = ""

    def row(self, position: int) -> torch.Tensor:
        """The followed token's part of `value`: its row, or each head's row (`(H, ...)`); the
        whole value when the step has no position axis (sampling stages, class scores).

        >>> s = Step(0, "softmax", "attn.softmax", 0, torch.ones(2, 3, 3), ("head", "query", "key"),
        ...          None, "explain")
        >>> s.row(1).shape  # (H, T): where token 1 looks, in each head
        torch.Size([2, 3])
        """
        if self.axes[0] in ("position", "query"):
            return self.value[position]
        if len(self.axes) > 1 and self.axes[1] in ("position", "query"):
            return self.value[:, position]
        return self.value

    def stats(self, position: int | None = None) -> StepStats:
        """Shape and dtype of `value`; min / mean / max / std / norm of the followed token's
        part (or of the whole value), over its finite numbers (a mask's −∞ left out)."""
        x = (self.value if position is None else self.row(position)).detach().float().flatten()
        x = x[torch.isfinite(x)]
        if x.numel() == 0:
            x = torch.zeros(1)
        std = float(x.std()) if x.numel() > 1 else 0.0
        return StepStats(
            tuple(self.value.shape),
            str(self.value.dtype).removeprefix("torch."),
            float(x.min()),
            float(x.mean()),
            float(x.max()),
            std,
            float(x.norm()),
        )


@dataclass
class Trace:
    """What `trace` returns: every step of one forward pass, in order.

    Attributes:
        steps: the steps.
        ids: `(T,)` the token ids.
        logits: what `model(ids)` returns, for the one sequence: `(T, vocab)` for a language
            model, `(num_classes,)` for a classifier.
        config: the model's config.
        classifier: whether the model is a `GPTClassifier`.
        sampling: the sampling settings of the last steps (language models).
    """

    steps: list[Step]
    ids: torch.Tensor
    logits: torch.Tensor
    config: GPTConfig
    classifier: bool = False
    sampling: SamplingConfig | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def find(self, name: str, block: int | None = None, nth: int = 0) -> Step:
        """The `nth` step called `name` (or of kind `name`) in `block`.

        >>> from gpt.config import PRESETS
        >>> tr = trace(GPT(PRESETS["tiny"]), [1, 2])
        >>> tr.find("residual add", block=1, nth=1).kind
        'residual'
        """
        hits = [s for s in self.steps if name in (s.name, s.kind) and s.block == block]
        if len(hits) <= nth:
            raise KeyError(f"no step {name!r} (#{nth}) in block {block}")
        return hits[nth]

    def block_start(self, block: int) -> int:
        """Index of the first step of `block`: a page's "jump to block"."""
        for s in self.steps:
            if s.block == block:
                return s.index
        raise KeyError(f"no block {block}: the model has blocks 0-{self.config.n_layer - 1}")

    def residual(self) -> list[Step]:
        """The residual stream's steps: the embedding sum, then each block's output (its second
        residual add): `n_layer + 1` steps of `(T, C)`."""
        out = [s for s in self.steps if s.kind == "embed"]
        for b in range(self.config.n_layer):
            out.append(self.find("residual", block=b, nth=1))
        return out

    def residual_norms(self, position: int) -> torch.Tensor:
        """`(n_layer + 1,)` the followed token's residual-stream norm after the embeddings and
        after each block: how it grows block by block."""
        return torch.stack([s.value[position].float().norm() for s in self.residual()]).cpu()

    def stages(self, cfg: SamplingConfig, position: int = -1) -> SamplingStages:
        """`gpt.sampling`'s stages for the logits at `position` under other settings, from the
        kept logits: no model call."""
        if self.classifier:
            raise ValueError("a classifier's trace has class scores, not next-token logits")
        seen = torch.zeros(self.logits.shape[-1], dtype=torch.bool, device=self.logits.device)
        seen[self.ids.to(self.logits.device)] = True
        return sampling_stages(self.logits[position], seen, cfg)

    @property
    def nbytes(self) -> int:
        """Bytes held by the steps' values (views of one tensor counted once) and the logits."""
        seen: dict[int, int] = {}
        for t in [s.value for s in self.steps] + [self.logits]:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return sum(seen.values())


# --- recording -----------------------------------------------------------------------------------

_WATCHED = {
    "add",
    "unbind",
    "mul",
    "masked_fill",
    "softmax",
    "matmul",
    "scaled_dot_product_attention",
    "reshape",
    "gelu",
    "linear",
}
_EXPLAIN_KINDS = {"attn.scores", "attn.mask", "attn.softmax", "attn.mix"}


class _Recorder(TorchFunctionMode):
    """Collects steps while the model runs (hooks call its `add`; operations come through
    `__torch_function__`)."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt
        self.steps: list[Step] = []
        self.block: int | None = None
        self.rerun = False  # inside the explain re-run of an attention
        self.pending: list[tuple] = []  # explain steps waiting for the fast path's q, k, v
        self.last_softmax: torch.Tensor | None = None
        self.module_names = {id(m): n for n, m in gpt.named_modules()}
        # The hooks sit on a model other threads may be running: they act only where this
        # token is active (the thread, or context, that runs the trace).
        self.token = object()

    def on(self) -> bool:
        return not self.rerun and self.token in _ACTIVE.get()

    def add(
        self,
        kind: str,
        name: str,
        value: torch.Tensor,
        frame: FrameType | None,
        path: str,
        module: str | None = None,
    ) -> None:
        src = None if frame is None else source_at(frame)
        item = (kind, name, value, src, path, module)
        if self.rerun:
            self.pending.append(item)
        else:
            self._append(*item)

    def _append(self, kind, name, value, src, path, module) -> None:
        axes, why, eq = KINDS[kind]
        self.steps.append(
            Step(len(self.steps), name, kind, self.block, value, axes, src, path, module, why, eq)
        )

    def flush(self) -> None:
        for item in self.pending:
            self._append(*item)
        self.pending.clear()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", None)
        if name in _WATCHED:
            self._on_op(name, args, out)
        return out

    def _on_op(self, op: str, args: tuple, out: Any) -> None:
        frame = _direct_caller(sys._getframe(2), op)
        if frame is None:
            return
        where = _qualname(frame)
        if where == "CausalSelfAttention.forward":
            if op == "mul":
                self.add("attn.scores", "q·kᵀ/√d", out[0], frame, "explain")
            elif op == "masked_fill":
                self.add("attn.mask", "causal mask", out[0], frame, "explain")
            elif op == "softmax":
                self.last_softmax = out
                self.add("attn.softmax", "softmax", out[0], frame, "explain")
            elif op == "matmul" and args and args[0] is self.last_softmax:
                self.add("attn.mix", "weighted sum of v", out[0], frame, "explain")
            elif self.rerun:
                return
            elif op == "unbind" and len(out) == 3:
                for kind, t in zip("qkv", out, strict=True):
                    self.add(kind, kind, t[0], frame, "model")
            elif op == "scaled_dot_product_attention":
                self.flush()
                self.add("attn.sdpa", "attention (fused SDPA)", out[0], frame, "fast")
            elif op == "reshape":
                self.add("attn.concat", "heads concatenated", out[0], frame, "model")
        elif self.rerun:
            return
        elif where == "Block.forward" and op == "add":
            self.add("residual", "residual add", out[0], frame, "model")
        elif where == "GPT._embed" and op == "add":
            self.add("embed", "embedding sum", out[0], frame, "model")
        elif where == "MLP.forward" and op == "gelu":
            self.add("mlp.gelu", "GELU", out[0], frame, "model")
        elif where == "GPT.lm_head" and op in ("matmul", "linear"):
            self.add("logits", "logits", out[0], frame, "model")

    # module hooks -------------------------------------------------------------------------------

    def hooks(self, model: nn.Module) -> list:
        gpt = self.gpt
        handles = []

        def fwd(kind: str, name: str, batched: bool = True):
            def hook(module, args, out):
                if not self.on():
                    return
                value = out[0] if batched else out
                frame = _package_frame(sys._getframe(1))
                self.add(kind, name, value, frame, "model", self.module_names.get(id(module)))

            return hook

        handles.append(gpt.wte.register_forward_hook(fwd("wte", "token embedding")))
        handles.append(gpt.wpe.register_forward_hook(fwd("wpe", "position embedding", False)))
        lns = [(gpt.ln_f, "ln_f")]
        for i, block in enumerate(gpt.h):
            handles.append(block.register_forward_pre_hook(self._enter_block(i)))
            handles.append(block.register_forward_hook(self._leave_block, always_call=True))
            handles.append(block.attn.register_forward_pre_hook(self._explain_attention))
            handles.append(block.attn.c_attn.register_forward_hook(fwd("c_attn", "c_attn")))
            handles.append(block.attn.c_proj.register_forward_hook(fwd("attn.c_proj", "c_proj")))
            handles.append(block.mlp.c_fc.register_forward_hook(fwd("mlp.c_fc", "c_fc")))
            handles.append(block.mlp.c_proj.register_forward_hook(fwd("mlp.c_proj", "c_proj")))
            lns += [(block.ln_1, "ln_1"), (block.ln_2, "ln_2")]
        for ln, label in lns:
            handles.append(ln.register_forward_pre_hook(self._layernorm_parts(label)))
            handles.append(ln.register_forward_hook(fwd("ln.out", label)))
        if is_classifier(model):
            handles.append(model.head.register_forward_hook(fwd("class_logits", "class logits")))
        return handles

    def _enter_block(self, i: int):
        def hook(module, args):
            if self.on():
                self.block = i

        return hook

    def _leave_block(self, module, args, out) -> None:
        if self.on():
            self.block = None

    def _layernorm_parts(self, label: str):
        def hook(module: nn.LayerNorm, args: tuple) -> None:
            if not self.on():
                return
            frame = _package_frame(sys._getframe(1))
            name = self.module_names.get(id(module))
            x = args[0][0]  # (T, C)
            mean = x.mean(-1)  # (T,)
            var = x.var(-1, unbiased=False)  # (T,)
            norm = (x - mean[:, None]) / torch.sqrt(var[:, None] + module.eps)  # (T, C)
            self.add("ln.mean", f"{label} mean", mean, frame, "derived", name)
            self.add("ln.var", f"{label} variance", var, frame, "derived", name)
            self.add("ln.norm", f"{label} normalised", norm, frame, "derived", name)

        return hook

    def _explain_attention(self, module: nn.Module, args: tuple) -> None:
        """Before a fast-path attention runs, run the same module's explain path on the same
        input; its scores, mask, softmax and weighted sum wait in `pending` until the fast path
        reaches SDPA (after q, k, v)."""
        if not self.on() or len(args) < 4 or args[3] or args[1] is not None:
            return  # already the explain path, or a KV cache (not traced)
        self.rerun = True
        try:
            module(args[0], None, args[2], True)
        finally:
            self.rerun = False


def trace(
    model: nn.Module,
    ids: Sequence[int] | torch.Tensor | str,
    tokenizer: Any = None,
    sampling: SamplingConfig | None = None,
    max_tokens: int = MAX_TRACE_TOKENS,
) -> Trace:
    """Run `model` (a `GPT` or `GPTClassifier`) on one sequence and record every step, in order.

    `ids`: token ids, or a text with its `tokenizer` (the first step is then "text → ids").
    `sampling`: the settings of the last steps, after the logits (default: `SamplingConfig()`,
    temperature 1, no cuts); `Trace.stages` redraws them for other settings. At most
    `max_tokens` tokens: the per-head matrices grow with T².

    The forward pass is the model's own `forward` (`model(ids)`) under `torch.inference_mode`,
    with hooks and a recording context that act in this thread only; each attention module also
    runs its explain path once on the same input (see the module docstring).

    >>> from gpt.config import PRESETS
    >>> tr = trace(GPT(PRESETS["tiny"]), [3, 1, 4])
    >>> [s.name for s in tr.steps[:4]]
    ['token ids', 'token embedding', 'position embedding', 'embedding sum']
    >>> [s.name for s in tr.steps[-3:]]
    ['logits', '÷ temperature', 'softmax']
    """
    text = ids if isinstance(ids, str) else None
    if text is not None:
        if tokenizer is None:
            raise ValueError("a text needs its tokenizer: trace(model, text, tokenizer)")
        ids = tokenizer.encode(text)
    idx = as_ids(model, ids)  # (1, T)
    if idx.shape[1] > max_tokens:
        raise ValueError(
            f"{idx.shape[1]} tokens: a trace keeps T × T attention matrices per head and block, "
            f"so it is capped at {max_tokens} tokens"
        )
    gpt = body(model)
    classifier = is_classifier(model)
    rec = _Recorder(gpt)
    if text is not None:
        rec._append("ids", "text → ids", idx[0].cpu(), source_of(tokenizer.encode), "input", None)
    else:
        rec._append("ids", "token ids", idx[0].cpu(), None, "input", None)
    handles = rec.hooks(model)
    try:
        with torch.inference_mode(), _active(rec.token), rec:
            out = model(idx)
    finally:
        for h in handles:
            h.remove()
    logits = out[0]
    if classifier:
        probs = torch.softmax(logits.float(), dim=-1)
        rec.add("class_probs", "class probabilities", probs, None, "derived")
    else:
        sampling = sampling or SamplingConfig()
        _sampling_steps(rec, logits[-1], idx[0], sampling)
    return Trace(
        rec.steps, idx[0], logits, gpt.config, classifier, None if classifier else sampling
    )


class _OpSources(TorchFunctionMode):
    """Remembers, for each tensor an operation in `function` returned (or changed in place),
    the statement that did it."""

    def __init__(self, function: str) -> None:
        super().__init__()
        self.function = function
        self.made: list[tuple[torch.Tensor, Source]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        frame = _package_frame(sys._getframe(1))
        if frame is not None and _qualname(frame) == self.function:
            name = getattr(func, "__name__", "")
            if isinstance(out, torch.Tensor):
                self.made.append((out, source_at(frame)))
            if (name.endswith("_") or name == "__setitem__") and args:
                self.made.append((args[0], source_at(frame)))
        return out

    def source(self, t: torch.Tensor) -> Source | None:
        return next((s for m, s in reversed(self.made) if m is t), None)


def _sampling_steps(rec: _Recorder, raw: torch.Tensor, ids: torch.Tensor, cfg: SamplingConfig):
    """Hand the last position's logits to `gpt.sampling.sampling_stages` and record each stage
    that changed the distribution, with the line of `sampling_stages` that did it."""
    seen = torch.zeros(raw.shape[-1], dtype=torch.bool, device=raw.device)
    seen[ids.to(raw.device)] = True
    ops = _OpSources("sampling_stages")
    with torch.inference_mode(), ops:
        st = sampling_stages(raw, seen, cfg)
    final = "sample.greedy" if cfg.temperature == 0 else "sample.top_p"
    stages = [
        ("sample.penalty", "repetition penalty", st.penalized),
        ("sample.temperature", "÷ temperature", st.scaled),
        ("sample.top_k", "top-k", st.top_k),
        ("sample.softmax", "softmax", st.softmax),
        (final, "greedy pick" if cfg.temperature == 0 else "top-p", st.probs),
    ]
    shown = [st.raw]
    for kind, name, value in stages:
        if any(value is t for t in shown):
            continue  # this stage is off: it handed on what it was given
        rec._append(kind, name, value, ops.source(value), "sampling", None)
        shown.append(value)


# --- knockouts -----------------------------------------------------------------------------------

KNOCKOUTS = ("causal_mask", "positions", "gelu", "layernorm", "residual", "attention", "shuffle")

_WHAT_IT_SHOWS = {
    "causal_mask": "Without the mask each token also sees the tokens after it. A model trained "
    "with the mask never learned to use them: its loss on the seen text and its next-token guess "
    "change, and generation, where no future exists, goes wrong.",
    "positions": "Without wpe the model gets a bag of tokens: attention cannot tell their order "
    "(apart from the causal mask), so predictions that depend on word order break.",
    "gelu": "ReLU instead of GELU: close in shape, but the MLPs were trained on GELU's exact "
    "curve; small negative inputs now give exactly 0.",
    "layernorm": "Without LayerNorm the layers see the residual stream at whatever scale it has "
    "grown to, not the unit scale they were trained on.",
    "residual": "Without the residual connection the block's output replaces the stream "
    "instead of adding to it: everything earlier layers wrote is lost.",
    "attention": "The block's attention output set to zero: the block can no longer move "
    "information between tokens.",
    "shuffle": "The tokens in a shuffled order (with a seed): the same words, in an order the "
    "model finds surprising, so the loss rises.",
}
_WHERE = {
    "causal_mask": {"block"},
    "positions": set(),
    "gelu": {"block"},
    "layernorm": {"block", "which"},
    "residual": {"block", "which"},
    "attention": {"block"},
    "shuffle": {"seed"},
}
_WHICH = {"layernorm": ("ln_1", "ln_2", "ln_f"), "residual": ("attn", "mlp")}


@dataclass(frozen=True)
class Knockout:
    """One part taken away from the forward pass (see `knockout`).

    Attributes:
        kind: one of `KNOCKOUTS`.
        block: the block it acts on, or None for every block.
        which: for "layernorm", "ln_1" / "ln_2" / "ln_f" (None: all of them in the chosen
            blocks, and ln_f when every block is chosen); for "residual", "attn" / "mlp"
            (None: both residual connections of the block).
        seed: for "shuffle", the seed of the token order.
    """

    kind: str
    block: int | None = None
    which: str | None = None
    seed: int = 0

    @property
    def shows(self) -> str:
        """What this knockout shows, in a few sentences."""
        return _WHAT_IT_SHOWS[self.kind]

    def order(self, n: int) -> torch.Tensor:
        """For "shuffle": the order `(n,)` in which a sequence of `n` tokens is given to the model
        (`ids[order]`); the identity for the other kinds.

        >>> Knockout("shuffle", seed=1).order(5).sort().values.tolist()
        [0, 1, 2, 3, 4]
        """
        if self.kind != "shuffle" or n < 2:
            return torch.arange(n, device="cpu")
        g = torch.Generator().manual_seed(self.seed)  # the same order on every device
        return torch.randperm(n, generator=g, device="cpu")

    @staticmethod
    def of(spec: Knockout | str | tuple[str, dict[str, Any]] | dict[str, Any]) -> Knockout:
        """A knockout from a kind ("gelu"), a (kind, where) pair, or a dict with a "kind" key,
        checked.

        >>> Knockout.of(("layernorm", {"block": 2, "which": "ln_1"}))
        Knockout(kind='layernorm', block=2, which='ln_1', seed=0)
        """
        if isinstance(spec, Knockout):
            return spec
        if isinstance(spec, str):
            kind, where = spec, {}
        elif isinstance(spec, dict):
            where = dict(spec)
            kind = where.pop("kind", None)
        else:
            kind, where = spec
        if kind not in KNOCKOUTS:
            raise ValueError(f"unknown knockout {kind!r}; kinds: {', '.join(KNOCKOUTS)}")
        extra = set(where) - _WHERE[kind]
        if extra:
            allowed = ", ".join(sorted(_WHERE[kind])) or "no arguments"
            raise ValueError(f"knockout {kind!r} takes {allowed}; got {', '.join(sorted(extra))}")
        which = where.get("which")
        if which is not None and which not in _WHICH.get(kind, ()):
            raise ValueError(
                f"knockout {kind!r}: which must be one of {_WHICH[kind]}, got {which!r}"
            )
        seed = where.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"knockout 'shuffle': seed must be an integer, got {seed!r}")
        return Knockout(kind, where.get("block"), which, seed)


class _OpSwap(TorchFunctionMode):
    """Replaces chosen operations written in `gpt/model.py` while the model runs, in this thread.

    `rules` maps (function qualname, op name) to `fn(frame, args, kwargs) -> result | None`;
    None runs the operation unchanged."""

    def __init__(self, rules: dict[tuple[str, str], Any]) -> None:
        super().__init__()
        self.rules = rules
        self.ops = {op for _, op in rules}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", None)
        if name in self.ops:
            frame = _direct_caller(sys._getframe(1), name)
            rule = frame and self.rules.get((_qualname(frame), name))
            if rule is not None:
                out = rule(frame, func, args, kwargs)
                if out is not None:
                    return out
        return func(*args, **kwargs)


def _add_offsets(fn: Any) -> list[int]:
    """Bytecode offsets of the `+` operations of `fn`, in order (Block.forward: attention's
    residual add, then the MLP's)."""
    return [
        i.offset
        for i in dis.get_instructions(fn)
        if (i.opname == "BINARY_OP" and i.argrepr in ("+", "+=")) or i.opname == "BINARY_ADD"
    ]


@contextlib.contextmanager
def knockout(model: nn.Module, kind: str, **where: Any) -> Iterator[Knockout]:
    """Take one part away from the forward pass while the context is open, in this thread only.

    Kinds (`where` in brackets):
    - "causal_mask" (`block`): attention without the causal mask, so tokens see the future;
    - "positions": `wpe` contributes zeros;
    - "gelu" (`block`): ReLU instead of GELU;
    - "layernorm" (`block`, `which`): LayerNorms become the identity;
    - "residual" (`block`, `which`): the block's output replaces the stream (`x = f(ln(x))`
      instead of `x = x + f(ln(x))`);
    - "attention" (`block`): the block's attention output is zero;
    - "shuffle" (`seed`): every input of more than one token is given in a shuffled order
      (`Knockout.order(T)`); single tokens (generation with a KV cache) are left alone.

    `block` None (the default) means every block. Nothing of the model is changed: hooks and an
    operation-swapping context act only while this context is open and only in this thread; on
    exit (also after an exception) they are removed, so parameters, buffers and outputs are
    bit-identical to before. Yields the checked `Knockout`.

    >>> from gpt.config import PRESETS
    >>> model = GPT(PRESETS["tiny"]).eval()
    >>> with knockout(model, "gelu", block=1) as ko:
    ...     ko
    Knockout(kind='gelu', block=1, which=None, seed=0)
    """
    ko = Knockout.of((kind, where))
    with _knocked_out(model, ko):
        yield ko


@contextlib.contextmanager
def knockouts(model: nn.Module, specs: Iterable[Any]) -> Iterator[tuple[Knockout, ...]]:
    """Several knockouts at once (each spec as `Knockout.of` takes it).

    >>> from gpt.config import PRESETS
    >>> with knockouts(GPT(PRESETS["tiny"]), ["positions", ("attention", {"block": 0})]) as kos:
    ...     [k.kind for k in kos]
    ['positions', 'attention']
    """
    kos = tuple(Knockout.of(s) for s in specs)
    with contextlib.ExitStack() as stack:
        for ko in kos:
            stack.enter_context(_knocked_out(model, ko))
        yield kos


@contextlib.contextmanager
def _knocked_out(model: nn.Module, ko: Knockout) -> Iterator[None]:
    gpt = body(model)
    n = gpt.config.n_layer
    if ko.block is not None and not (isinstance(ko.block, int) and 0 <= ko.block < n):
        raise ValueError(f"block {ko.block!r} is out of range: the model has blocks 0-{n - 1}")
    blocks = [gpt.h[ko.block]] if ko.block is not None else list(gpt.h)
    token = object()

    def on() -> bool:
        return token in _ACTIVE.get()

    handles: list = []
    rules: dict[tuple[str, str], Any] = {}
    attns = {id(b.attn) for b in blocks}

    if ko.kind == "causal_mask":

        def no_mask_sdpa(frame, func, args, kwargs):
            if id(frame.f_locals.get("self")) not in attns:
                return None
            kw = {k: v for k, v in kwargs.items() if k not in ("is_causal", "attn_mask")}
            return func(*args, **kw)

        def no_mask_fill(frame, func, args, kwargs):
            return args[0] if id(frame.f_locals.get("self")) in attns else None

        rules[("CausalSelfAttention.forward", "scaled_dot_product_attention")] = no_mask_sdpa
        rules[("CausalSelfAttention.forward", "masked_fill")] = no_mask_fill
    elif ko.kind == "gelu":
        mlps = {id(b.mlp) for b in blocks}

        def relu(frame, func, args, kwargs):
            return torch.relu(args[0]) if id(frame.f_locals.get("self")) in mlps else None

        rules[("MLP.forward", "gelu")] = relu
    elif ko.kind == "residual":
        chosen = {id(b) for b in blocks}
        offsets = _add_offsets(type(gpt.h[0]).forward)
        keep = {"attn": offsets[:1], "mlp": offsets[1:2], None: offsets}[ko.which]

        def drop(frame, func, args, kwargs):
            if id(frame.f_locals.get("self")) in chosen and frame.f_lasti in keep:
                return args[1]  # x + f(x) -> f(x)
            return None

        rules[("Block.forward", "add")] = drop
    elif ko.kind == "positions":

        def zero_positions(module, args, out):
            return torch.zeros_like(out) if on() else None

        handles.append(gpt.wpe.register_forward_hook(zero_positions))
    elif ko.kind == "layernorm":
        names = _WHICH["layernorm"][:2] if ko.which is None else (ko.which,)
        lns = [getattr(b, w) for b in blocks for w in names if w != "ln_f"]
        if ko.which == "ln_f" or (ko.which is None and ko.block is None):
            lns.append(gpt.ln_f)

        def identity(module, args, out):
            return args[0] if on() else None

        handles += [ln.register_forward_hook(identity) for ln in lns]
    elif ko.kind == "attention":

        def silence(module, args, out):
            return (torch.zeros_like(out[0]), *out[1:]) if on() else None

        handles += [b.attn.register_forward_hook(silence) for b in blocks]
    elif ko.kind == "shuffle":

        def shuffle(module, args):
            idx = args[0]  # (B, T) ids entering wte
            if not on() or idx.dim() != 2 or idx.shape[1] < 2:
                return None
            return (idx[:, ko.order(idx.shape[1]).to(idx.device)], *args[1:])

        handles.append(gpt.wte.register_forward_pre_hook(shuffle))
    try:
        with _active(token), _OpSwap(rules) if rules else contextlib.nullcontext():
            yield
    finally:
        for h in handles:
            h.remove()


# --- before / after ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a language model makes of a text (the Walk tab's before / after).

    Attributes:
        ids: `(T,)` the text as the model saw it (shuffled under a "shuffle" knockout).
        loss: mean −log p of each next token of `ids` (nats).
        top_ids, top_probs: `(k,)` the most likely tokens after the text, and their probabilities.
        continuation: a short greedy continuation (token ids).
    """

    ids: torch.Tensor
    loss: float
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    continuation: list[int]


@dataclass(frozen=True)
class KnockoutComparison:
    """The same text run intact (`before`) and with `knockouts` (`after`)."""

    knockouts: tuple[Knockout, ...]
    before: Outcome
    after: Outcome
    shows: tuple[str, ...] = field(default=())


def outcome(
    model: nn.Module, ids: Sequence[int] | torch.Tensor, k: int = 5, n_new: int = 8
) -> Outcome:
    """Loss on `ids`, the top-`k` next tokens and `n_new` greedy tokens, under whatever
    knockouts are open in this thread. One forward pass of the text gives the loss and fills
    the KV cache the greedy tokens then read.

    >>> from gpt.config import PRESETS
    >>> out = outcome(GPT(PRESETS["tiny"]).eval(), [1, 2, 3], k=2, n_new=3)
    >>> out.top_ids.shape, len(out.continuation)
    (torch.Size([2]), 3)
    """
    gpt = body(model)
    if is_classifier(model):
        raise TypeError("knockout comparisons are for language models (loss, next tokens)")
    idx = as_ids(gpt, ids, min_len=2)  # (1, T)
    T = idx.shape[1]
    cont: list[int] = []
    with torch.inference_mode():
        fits = T + n_new <= gpt.config.block_size
        cache = gpt.new_cache(1, T + n_new) if fits else None
        logits = gpt(idx, cache)[0].float()  # (T, V)
        loss = F.cross_entropy(logits[:-1], idx[0, 1:])
        top = torch.topk(torch.softmax(logits[-1], dim=-1), k)
        nxt = logits[-1]
        for _ in range(n_new if fits else 0):  # greedy: temperature 0 in gpt.sampling's terms
            cont.append(int(torch.argmax(nxt)))
            nxt = gpt(torch.tensor([[cont[-1]]], device=idx.device), cache)[0, -1]
    if not fits and n_new:  # past the context: gpt.sampling re-encodes the recent tail
        cfg = SamplingConfig(temperature=0, max_new_tokens=n_new, stop_at_eot=False)
        cont = generate_ids(gpt, idx[0].tolist(), cfg)
    return Outcome(idx[0].cpu(), float(loss), top.indices.cpu(), top.values.cpu(), cont)


def compare_knockouts(
    model: nn.Module,
    ids: Sequence[int] | torch.Tensor,
    specs: Iterable[Any],
    k: int = 5,
    n_new: int = 8,
    before: Outcome | None = None,
) -> KnockoutComparison:
    """The text before and after one or more knockouts together: loss, top-`k` next tokens,
    `n_new` greedy tokens. `before`: the intact model's `outcome` if already known.

    A "shuffle" acts on the input alone, so the `after` side runs the shuffled text
    (`after.ids`: its loss, what follows it) with the other knockouts open.

    >>> from gpt.config import PRESETS
    >>> cmp = compare_knockouts(GPT(PRESETS["tiny"]).eval(), [1, 2, 3, 4], ["positions"], n_new=2)
    >>> cmp.before.top_ids.shape, len(cmp.after.continuation)
    (torch.Size([5]), 2)
    """
    kos = tuple(Knockout.of(s) for s in specs)
    idx = as_ids(model, ids, min_len=2)[0]  # (T,)
    if before is None:
        before = outcome(model, idx, k, n_new)
    seen = idx
    for ko in kos:
        seen = seen[ko.order(seen.shape[0]).to(seen.device)]
    with knockouts(model, [ko for ko in kos if ko.kind != "shuffle"]):
        after = outcome(model, seen, k, n_new)
    return KnockoutComparison(kos, before, after, tuple(ko.shows for ko in kos))


__all__ = [
    "KINDS",
    "KNOCKOUTS",
    "Knockout",
    "KnockoutComparison",
    "Outcome",
    "Source",
    "Step",
    "StepStats",
    "Trace",
    "compare_knockouts",
    "knockout",
    "knockouts",
    "outcome",
    "source_at",
    "source_of",
    "trace",
]
