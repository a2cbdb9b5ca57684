"""Walk tab: one forward pass, one step at a time, each step beside the line of code that computed
it; and knockouts, the same text with one part of the model taken away.

The trace comes from `gpt.walk.trace` (the model's own forward pass, recorded); this page only
draws it. A trace is kept on the server (`_traces`, the last few, bounded in bytes) under the
model and the token ids, and the page remembers its key per visitor (`gr.State`), so moving
between steps (Previous / Next, the step slider, the jump to a block, another token or head)
redraws from the kept trace without running the model again.
"""

from __future__ import annotations

import functools
import linecache
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from gpt import walk as core
from gpt.inside import body, is_classifier
from pages.common.heavy import heavy, light
from pages.common.inputs import (
    cap_text,
    clamp_note,
    friendly_errors,
    named_errors,
    number_input,
    slider_input,
)
from pages.common.models import Page, Picker, get_model, model_header, model_shape
from pages.common.render import esc, labeller, layout, ticks, token_labels, token_text
from pages.common.texts import follow, text_for
from pages.common.views import GiveWay, KeptNumbers, Recent, look_for, numbers_button

TASKS = ("lm", "instruct", "classify")
MAX_TOKENS = 64  # the tab's cap: a trace keeps 3 (heads × T × T) matrices per block
MAX_CHARS = 2_000
TRACE_BYTES = 800_000_000  # the kept traces together (the newest one is always kept)
TOP_BARS = 20  # a distribution over the vocabulary: its best 20 tokens drawn
MAX_COLUMNS = 768  # a (T, C) heatmap wider than this averages its channels in groups
CONTEXT_LINES = 2  # lines of the file shown before and after a step's statement
ORANGE, GREY = "#e4572e", "#d9d9d9"
KNOCKOUTS = [
    ("Causal mask (tokens see the future)", "causal_mask"),
    ("Position embeddings (no wpe)", "positions"),
    ("GELU → ReLU", "gelu"),
    ("LayerNorm (identity)", "layernorm"),
    ("Residual connections (output replaces the stream)", "residual"),
    ("Attention output (zeroed)", "attention"),
    ("Token order (shuffled, seed 0)", "shuffle"),
]
BLOCKED = {"causal_mask", "gelu", "layernorm", "residual", "attention"}  # kinds that take a block


# --- the kept traces -----------------------------------------------------------------------------


class Traces:
    """The last traces by key, the least recently used dropped first while they hold more than
    `budget` bytes together (the newest is always kept). Thread-safe."""

    def __init__(self, budget: int = TRACE_BYTES, most: int = 8) -> None:
        self.budget, self.most = budget, most
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> Any:
        with self._lock:
            self._items[key] = (value, nbytes)
            self._items.move_to_end(key)
            while len(self._items) > 1 and (
                len(self._items) > self.most
                or sum(n for _, n in self._items.values()) > self.budget
            ):
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_traces = Traces()
_before = Recent(8)  # the intact model's outcome of the last few texts (knockouts' "before")
kept = KeptNumbers(16)  # each view's numbers, written to CSV + JSON when asked


class Walk:
    """A kept trace and what the page needs to draw it: the model's name, token labels, the
    model's class names (classifiers)."""

    def __init__(self, name: str, tr: core.Trace, labels: list[str], tok, classes) -> None:
        self.name, self.trace, self.labels, self.tok, self.classes = name, tr, labels, tok, classes

    @functools.cached_property
    def decode(self) -> Callable[[int], str]:
        return labeller(self.tok)


def read_ids(model, tok, text: Any, name: str) -> tuple[list[int], list[str]]:
    """The text's ids, cut to the tab's cap (or the model's context), and the notes saying so."""
    text, cut = cap_text(text, MAX_CHARS, "Text")
    cap = min(MAX_TOKENS, body(model).config.block_size)
    ids = tok.encode(text)
    if not ids:
        raise gr.Error("Text has no tokens: type something first.")
    notes = [f"**{min(len(ids), cap)}** tokens (the tab reads at most {cap})."]
    if cut:
        notes.append(f"**Cut:** {cut}")
    if len(ids) > cap:
        why = f"the context of {name}" if cap < MAX_TOKENS else "the tab's cap"
        notes.append(f"**Capped:** walked the first {cap} of {len(ids)} tokens ({why}).")
        ids = ids[:cap]
    return ids, notes


def traced(model_name: Any, text: Any) -> tuple[Walk, list[str], tuple]:
    """(the kept walk of this model and text, notes, its key): traced now unless kept."""
    model, tok = get_model(model_name, TASKS)
    ids, notes = read_ids(model, tok, text, str(model_name))
    key = (model_name, id(model), tuple(ids))
    w = _traces.get(key)
    if w is None:
        whole = isinstance(text, str) and tok.encode(text) == ids  # not cut: its first step
        source = text if whole else ids  # is "text → ids", with the tokenizer's code
        tr = core.trace(model, source, tokenizer=tok, max_tokens=MAX_TOKENS)
        classes = list(getattr(model, "labels", []) or []) if is_classifier(model) else None
        w = _traces.put(key, Walk(model_name, tr, token_labels(tok, ids), tok, classes), tr.nbytes)
    return w, notes, key


# --- one step as the page shows it ---------------------------------------------------------------


def check_step(w: Walk, step: Any) -> int:
    n = len(w.trace.steps)
    try:
        i = float(step)
    except (TypeError, ValueError):
        raise gr.Error(f"Step must be a number between 0 and {n - 1}, not {step!r}.") from None
    if i != i or not 0 <= i <= n - 1 or i != int(i):
        raise gr.Error(
            f"Step {step:g} is out of range: this trace has {n} steps, numbered 0 to {n - 1}."
        )
    return int(i)


def check_position(w: Walk, token: Any) -> tuple[int, str]:
    """The followed token's position (-1 = the last), clamped with a note."""
    T = len(w.labels)
    t, note = clamp_note(-1 if token is None else token, -T, T - 1, "Token to follow", True)
    return t % T, note


def check_head(w: Walk, head: Any) -> tuple[int, str]:
    H = w.trace.config.n_head
    return clamp_note(0 if head is None else head, 0, H - 1, "Head", True)


def where_label(w: Walk, s: core.Step) -> str:
    if s.block is not None:
        return f"block {s.block}"
    return "before the blocks" if s.index < w.trace.block_start(0) else "after the blocks"


def header_html(w: Walk, s: core.Step, t: int) -> str:
    """The step's title line and the text's tokens, the followed one marked."""
    n = len(w.trace.steps)
    module = f" · <code>{esc(s.module)}</code>" if s.module else ""
    path = {
        "explain": "computed by the explain path (the fast path fuses this into SDPA)",
        "fast": "computed by the fast path (fused SDPA)",
        "derived": "derived here from the recorded input (one fused kernel in the model)",
        "sampling": "computed by gpt.sampling",
        "input": "the tokenizer; no model yet",
        "model": "computed by the model's forward",
    }.get(s.path, s.path)
    toks = "".join(
        f'<span class="tok" style="background:{ORANGE if i == t else "#eee"};'
        f'{"color:#fff;" if i == t else ""}" title="position {i}">{esc(label)}</span>'
        for i, label in enumerate(w.labels)
    )
    return (
        f'<div class="walk-head"><b>Step {s.index} of 0–{n - 1}</b> · {esc(where_label(w, s))} · '
        f"<b>{esc(s.name)}</b>{module} · {esc(path)}</div>"
        f'<div class="tok-view" style="margin-top:4px">{toks}</div>'
        f'<div class="note">Following token {t} ({esc(w.labels[t])}): its row is outlined '
        "in every matrix.</div>"
    )


def _char_col(line: str, byte_col: int) -> int:
    """A column in characters from a UTF-8 byte offset (what code positions count)."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def code_html(s: core.Step) -> str:
    """The step's source lines with line numbers and the file's name, a few lines around them
    dimmed, the statement shaded and the expression that made the value highlighted."""
    src = s.source
    if src is None:
        return (
            '<div class="walk-code note">The token ids were given as they are: no code ran.</div>'
        )
    lines = src.text.splitlines()
    first, last = src.first_line, src.last_line
    filename = str(src.file)
    linecache.checkcache(filename)
    file_lines = linecache.getlines(filename)
    lo, hi = max(1, first - CONTEXT_LINES), min(len(file_lines), last + CONTEXT_LINES)
    if len(lines) > 40:  # a whole function (the tokenizer's encode): no context
        lo, hi = first, last
    rows = []
    for n in range(lo, hi + 1):
        inside = first <= n <= last
        line = lines[n - first] if inside else file_lines[n - 1].rstrip("\n")
        text = esc(line)
        if inside and src.expr is not None:
            eline, ecol, eend_line, eend_col = src.expr
            if eline <= n <= eend_line:
                a = _char_col(line, ecol) if n == eline else len(line) - len(line.lstrip())
                b = _char_col(line, eend_col) if n == eend_line else len(line)
                text = (
                    esc(line[:a])
                    + f'<mark style="background:#ffc46b;padding:0">{esc(line[a:b])}</mark>'
                    + esc(line[b:])
                )
        style = "background:#fff7d6;" if inside else "color:#888;"
        rows.append(
            # A long line wraps under itself (not under the line number), so the highlighted
            # expression is never cut off in the half-width pane.
            f'<div style="{style}display:flex"><span style="color:#999;flex:0 0 3.2em;'
            f'text-align:right;margin-right:1em;user-select:none">{n}</span>'
            f'<span style="white-space:pre-wrap;overflow-wrap:anywhere;min-width:0">{text}</span></div>'
        )
    return (
        f'<div class="walk-code"><div class="note"><code>{esc(src.path)}</code>, lines '
        f"{first}–{last}, in <code>{esc(src.function)}</code></div>"
        '<div style="font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;'
        "border:1px solid #ddd;border-radius:6px;padding:6px 4px;overflow-x:auto;"
        f'max-height:340px;overflow-y:auto">{"".join(rows)}</div></div>'
    )


_PLURAL = {"query": "queries", "class": "classes"}


def numbers_md(w: Walk, s: core.Step, t: int, h: int) -> str:
    positional = "position" in s.axes or "query" in s.axes
    st = s.stats(t if positional else None)
    part = "the whole value"
    if positional:
        part = f"token {t}" + (", all heads" if s.axes[0] == "head" else "")
    shape = " × ".join(
        f"{n} {a if n == 1 else _PLURAL.get(a, a + 's')}" for n, a in zip(st.shape, s.axes)
    )  # 18 positions × 768 channels
    lines = [
        f"**Shape** ({', '.join(map(str, st.shape))}): {shape} · **dtype** {st.dtype}",
        "",
        "| Over | min | mean | max | std | norm |",
        "|---|---|---|---|---|---|",
        f"| {part} | {st.min:.3g} | {st.mean:.3g} | {st.max:.3g} | {st.std:.3g} | {st.norm:.3g} |",
    ]
    if s.axes[0] == "head":
        x = s.value[h, t].float()
        x = x[torch.isfinite(x)]
        if x.numel():
            lines.append(
                f"| head {h} only | {float(x.min()):.3g} | {float(x.mean()):.3g} | "
                f"{float(x.max()):.3g} | {float(x.std()) if x.numel() > 1 else 0:.3g} | "
                f"{float(x.norm()):.3g} |"
            )
    return "\n".join(lines)


def why_md(s: core.Step) -> str:
    return f"**Why.** {s.why}\n\n`{s.equation}`" if s.equation else f"**Why.** {s.why}"


# --- charts ---------------------------------------------------------------------------------------


# the Walk's charts: wider left margin, no legend
_layout = functools.partial(layout, left=70, bottom=60, top=60, showlegend=False)


def _row_box(fig: go.Figure, t: int, width: int, **where: Any) -> None:
    fig.add_shape(
        type="rect", x0=-0.5, x1=width - 0.5, y0=t - 0.5, y1=t + 0.5,
        line=dict(color=ORANGE, width=2.5), **where,
    )  # fmt: skip


def _columns(x: np.ndarray) -> tuple[np.ndarray, int]:
    """`x` (rows, C) with its channels averaged in groups so that at most MAX_COLUMNS remain."""
    group = -(-x.shape[1] // MAX_COLUMNS)
    if group == 1:
        return x, 1
    C = x.shape[1] // group * group
    return x[:, :C].reshape(x.shape[0], -1, group).mean(-1), group


def matrix_figure(w: Walk, s: core.Step, t: int, h: int) -> go.Figure:
    """(T, C) or one head's (T, head_dim): every token's row as a heatmap, the followed row
    outlined, and that row's numbers as bars below."""
    value = s.value[h] if s.axes[0] == "head" else s.value
    x = value.float().cpu().numpy()
    shown, group = _columns(x)
    head = f", head {h}" if s.axes[0] == "head" else ""
    ylabels = [f"{i} {label}" for i, label in enumerate(w.labels)]
    fig = make_subplots(
        rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.14,
        subplot_titles=(
            "Every token's row" + (f" (channels averaged in groups of {group})" if group > 1 else ""),
            f"Token {t}'s {x.shape[1]} numbers",
        ),
    )  # fmt: skip
    bound = float(np.abs(shown).max()) or 1.0
    fig.add_trace(
        go.Heatmap(
            z=shown, colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound,
            colorbar=dict(title="value", thickness=12, len=0.55, y=0.78),
            hovertemplate="token %{y}, channel %{x}: %{z:.4f}<extra></extra>",
        ),
        row=1, col=1,
    )  # fmt: skip
    _row_box(fig, t, shown.shape[1], row=1, col=1)
    row = x[t]
    fig.add_trace(
        go.Bar(x=np.arange(len(row)), y=row, marker_color=ORANGE, marker_line_width=0,
               hovertemplate="channel %{x}: %{y:.4f}<extra></extra>"),
        row=2, col=1,
    )  # fmt: skip
    fig.update_yaxes(
        title_text="token", autorange="reversed", row=1, col=1, **ticks(ylabels, most=16)
    )
    fig.update_xaxes(title_text="channel" + (" group" if group > 1 else ""), row=1, col=1)
    fig.update_xaxes(title_text="channel", row=2, col=1)
    fig.update_yaxes(title_text="value", row=2, col=1)
    return _layout(fig, f"{s.name}{head}: {' × '.join(map(str, value.shape))}", 560)


def attention_figure(w: Walk, s: core.Step, t: int, h: int) -> go.Figure:
    """One head's T × T matrix with the causal mask visible (grey), the followed query's row
    outlined, and that row as bars: where the token looks."""
    x = s.value[h].float().cpu().numpy().copy()
    T = x.shape[0]
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    masked = s.kind != "attn.scores"
    if masked:
        x[future] = np.nan  # −∞ (mask) or exactly 0 (softmax): drawn grey
    probs = s.kind == "attn.softmax"
    finite = x[np.isfinite(x)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    colour = (
        dict(colorscale="Blues", zmin=0, zmax=1)
        if probs
        else dict(colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound)
    )
    labels = [f"{i} {label}" for i, label in enumerate(w.labels)]
    fig = make_subplots(
        rows=2, cols=1, row_heights=[0.66, 0.34], vertical_spacing=0.24,
        subplot_titles=("Query (row) × key (column)", f"Token {t}'s row: where it looks"),
    )  # fmt: skip
    fig.add_trace(
        go.Heatmap(
            z=x, **colour, customdata=np.array([[labels[j] for j in range(T)]] * T),
            colorbar=dict(title="weight" if probs else "score", thickness=12, len=0.6, y=0.76),
            hovertemplate="query %{y} → key %{customdata}: %{z:.4f}<extra></extra>",
        ),
        row=1, col=1,
    )  # fmt: skip
    if not masked:  # the scores before the mask: the cells it will remove, shaded
        path = f"M -0.5,-0.5 L {T - 0.5},-0.5 L {T - 0.5},{T - 1.5} Z"
        fig.add_shape(type="path", path=path, fillcolor="rgba(120,120,120,0.45)",
                      line=dict(width=0), row=1, col=1)  # fmt: skip
    _row_box(fig, t, T, row=1, col=1)
    row = s.value[h, t].float().cpu().numpy()
    keys = np.arange(T)
    shown = np.where(np.isfinite(row) & (keys <= t if masked else True), row, 0.0)
    fig.add_trace(
        go.Bar(x=keys, y=shown, marker_color=[ORANGE if j <= t else GREY for j in keys],
               customdata=labels, hovertemplate="key %{customdata}: %{y:.4f}<extra></extra>"),
        row=2, col=1,
    )  # fmt: skip
    fig.update_xaxes(title_text="key token", row=1, col=1, **ticks(labels, most=24))
    fig.update_yaxes(
        title_text="query token", autorange="reversed", row=1, col=1, **ticks(labels, most=24)
    )
    fig.update_xaxes(title_text="key position", row=2, col=1)
    fig.update_yaxes(title_text="weight" if probs else "score", row=2, col=1)
    note = {
        "attn.scores": "shaded: future keys the mask will remove",
        "attn.mask": "grey: −∞, the future is masked",
        "attn.softmax": "grey: exactly 0 after the mask",
    }.get(s.kind, "")
    return _layout(
        fig, f"{s.name}, block {s.block}, head {h} ({note})", 700,
        plot_bgcolor=GREY if masked else None,
    )  # fmt: skip


def gelu_figure(w: Walk, s: core.Step, t: int) -> go.Figure:
    """GELU's curve over the range of its inputs, this token's inputs marked on it."""
    before = w.trace.steps[s.index - 1]  # c_fc: GELU's input
    xin = before.value[t].float().cpu().numpy()
    yout = s.value[t].float().cpu().numpy()
    lo, hi = min(-4.0, float(xin.min())), max(4.0, float(xin.max()))
    grid = torch.linspace(lo, hi, 300)
    curve = torch.nn.functional.gelu(grid, approximate="tanh")
    fig = go.Figure(
        [
            go.Scatter(x=grid.numpy(), y=curve.numpy(), mode="lines", line=dict(color="#4a6fa5"),
                       name="GELU", hoverinfo="skip"),
            go.Scatter(x=xin, y=yout, mode="markers", name=f"token {t}",
                       marker=dict(color=ORANGE, size=5, opacity=0.6),
                       customdata=np.arange(len(xin)),
                       hovertemplate="channel %{customdata}: GELU(%{x:.3f}) = %{y:.3f}<extra></extra>"),
        ]
    )  # fmt: skip
    neg = int((xin < 0).sum())
    title = (f"GELU, block {s.block}: token {t}'s {len(xin)} inputs on the curve "
             f"({neg} negative, squashed towards 0)")  # fmt: skip
    return _layout(fig, title, 480, xaxis=dict(title="input (c_fc output)"),
                   yaxis=dict(title="GELU(input)"), showlegend=True, legend=dict(x=0.02, y=0.98))  # fmt: skip


def bars_figure(values: np.ndarray, labels: list[str], title: str, xtitle: str, ytitle: str,
                mark: int | None = None) -> go.Figure:  # fmt: skip
    colours = [ORANGE if i == mark else "#4a6fa5" for i in range(len(values))]
    fig = go.Figure(
        go.Bar(x=np.arange(len(values)), y=values, marker_color=colours, customdata=labels,
               hovertemplate="%{customdata}: %{y:.4f}<extra></extra>")
    )  # fmt: skip
    return _layout(fig, title, 420, xaxis=dict(title=xtitle, tickangle=-50, **ticks(labels)),
                   yaxis=dict(title=ytitle))  # fmt: skip


def top_figure(w: Walk, values: torch.Tensor, title: str, ytitle: str) -> go.Figure:
    """A distribution over the vocabulary (or the classes): its best TOP_BARS entries."""
    v = values.float()
    k = min(TOP_BARS, v.numel())
    top = torch.topk(torch.nan_to_num(v, neginf=-1e30), k)
    ids = top.indices.tolist()
    names = [w.classes[i] if w.classes else w.decode(i) for i in ids]
    return bars_figure(
        v[ids].cpu().numpy(), names, title, "token" if not w.classes else "class", ytitle
    )


def step_figure(w: Walk, s: core.Step, t: int, h: int) -> go.Figure:
    """The chart that fits the step's kind."""
    axes = s.axes
    if s.kind == "mlp.gelu":
        return gelu_figure(w, s, t)
    if axes == ("head", "query", "key"):
        return attention_figure(w, s, t, h)
    if axes in (("position", "channel"), ("head", "position", "channel")):
        return matrix_figure(w, s, t, h)
    if s.kind == "ids":
        labels = [f"{i} {label}" for i, label in enumerate(w.labels)]
        return bars_figure(s.value.float().numpy(), labels, "Token ids, one per position",
                           "token", "id", mark=t)  # fmt: skip
    if axes == ("position",):
        labels = [f"{i} {label}" for i, label in enumerate(w.labels)]
        return bars_figure(s.value.float().cpu().numpy(), labels, f"{s.name}, block {s.block}"
                           if s.block is not None else s.name, "token", s.name, mark=t)  # fmt: skip
    if axes == ("position", "token"):
        return top_figure(w, s.value[t], f"Logits at token {t}: the {TOP_BARS} highest of "
                          f"{s.value.shape[-1]:,}", "logit")  # fmt: skip
    if axes in (("token",), ("class",)):
        probs = s.kind in ("sample.softmax", "sample.top_p", "sample.greedy", "class_probs")
        where = "after the last token" if axes == ("token",) else "for the text"
        return top_figure(
            w, s.value, f"{s.name} {where}: the highest", "probability" if probs else "score"
        )
    return bars_figure(s.value.float().flatten().cpu().numpy(), [], s.name, "index", "value")


def path_figure(w: Walk, s: core.Step, t: int) -> go.Figure:
    """The followed token's residual-stream norm after the embeddings and after each block."""
    norms = w.trace.residual_norms(t).numpy()
    names = ["emb"] + [f"{b}" for b in range(len(norms) - 1)]
    here = (
        0
        if s.block is None and s.index < w.trace.block_start(0)
        else (len(norms) - 1 if s.block is None else s.block + 1)
    )
    colours = [ORANGE if i == here else "#4a6fa5" for i in range(len(norms))]
    fig = go.Figure(
        go.Scatter(x=names, y=norms, mode="lines+markers", marker=dict(color=colours, size=9),
                   line=dict(color="#4a6fa5"),
                   hovertemplate="after %{x}: ‖x‖ = %{y:.2f}<extra></extra>")
    )  # fmt: skip
    return _layout(fig, f"Token {t}'s residual norm, block by block", 250,
                   xaxis=dict(title="after (emb = embeddings, n = block n)", type="category"),
                   yaxis=dict(title="‖x‖"))  # fmt: skip


def jump_choices(w: Walk | None, n_layer: int) -> list[tuple[str, str]]:
    return (
        [("the start (text → embeddings)", "start")]
        + [(f"block {b}", str(b)) for b in range(n_layer)]
        + [("the end (ln_f → logits → sampling)", "end")]
    )


def jump_index(w: Walk, where: Any) -> int:
    L = w.trace.config.n_layer
    if where in (None, "", "start"):
        return 0
    if where == "end":
        return w.trace.steps[w.trace.block_start(L - 1)].index + sum(
            1 for s in w.trace.steps if s.block == L - 1
        )
    try:
        b = int(where)
    except (TypeError, ValueError):
        raise gr.Error(f"Jump to must be start, end or a block number, not {where!r}.") from None
    if not 0 <= b < L:
        raise gr.Error(f"Block {b} is out of range: {w.name} has blocks 0 to {L - 1}.")
    return w.trace.block_start(b)


def draw(w: Walk, step: int, t: int, h: int) -> tuple:
    """(header, code, numbers, chart, why, path chart) of step `step`."""
    s = w.trace.steps[step]
    return (
        header_html(w, s, t),
        code_html(s),
        numbers_md(w, s, t, h),
        step_figure(w, s, t, h),
        why_md(s),
        path_figure(w, s, t),
    )


def step_export(w: Walk, step: int, t: int, h: int):
    """(CSV rows, JSON data) of one step: the followed token's part, one row per number."""
    s = w.trace.steps[step]
    positional = "position" in s.axes or "query" in s.axes
    part = s.row(t) if positional else s.value
    part = part.float().cpu()
    rest = [a for i, a in enumerate(s.axes) if not (positional and s.axes[i] in ("position", "query")
            and (i == 0 or s.axes[0] == "head"))]  # fmt: skip
    rows = []
    for index in np.ndindex(*part.shape):
        rows.append({**dict(zip(rest, index)), "value": float(part[index])})
    st = s.stats(t if positional else None)
    data = {
        "model": w.name,
        "ids": w.trace.ids.tolist(),
        "step": s.index, "name": s.name, "kind": s.kind, "block": s.block, "path": s.path,
        "module": s.module, "axes": list(s.axes), "followed_token": t, "head": h,
        "why": s.why, "equation": s.equation,
        "source": None if s.source is None else {
            "path": s.source.path, "first_line": s.source.first_line,
            "last_line": s.source.last_line, "text": s.source.text,
            "function": s.source.function,
        },
        "stats": {"shape": list(st.shape), "dtype": st.dtype, "min": st.min, "mean": st.mean,
                  "max": st.max, "std": st.std, "norm": st.norm},
        "followed_axes": rest,
        "followed": part.tolist(),
        "residual_norms": w.trace.residual_norms(t).tolist(),
    }  # fmt: skip
    if s.value.numel() <= 1_000_000:
        data["value"] = s.value.float().cpu().tolist()  # −∞ of the mask: null in JSON
    return rows, data


# --- events ---------------------------------------------------------------------------------------


def walked(model_name: Any, text: Any, step: Any, token: Any, head: Any):
    """(walk, key, step, token position, head, notes): checked inputs, the trace kept."""
    w, notes, key = traced(model_name, text)
    i = check_step(w, step)
    t, tnote = check_position(w, token)
    h, hnote = check_head(w, head)
    notes += [n for n in (tnote, hnote) if n]
    n = len(w.trace.steps)
    per_block = sum(1 for s in w.trace.steps if s.block == 0)
    notes.append(
        f"**{n}** steps ({w.trace.config.n_layer} blocks of {per_block}); Previous / Next and "
        "the slider move through the kept trace without running the model."
    )
    kept.put(("walk", key, i, t, h), ("walk-step", lambda: step_export(w, i, t, h)))
    return w, key, i, t, h, notes


@friendly_errors
def walk(model_name: str, text: str, step: float, token: float, head: float):
    """(note, header, code, numbers, chart, why, path chart): step `step` of the forward pass of
    `text` (traced unless kept), following the token at position `token` (-1 = the last) and
    attention head `head`."""
    w, _, i, t, h, notes = walked(model_name, text, step, token, head)
    return (" ".join(notes), *draw(w, i, t, h))


@friendly_errors
def walk_page(model_name: Any, text: Any, step: Any, token: Any, head: Any):
    """The Walk button: `walk` from step 0, and the sliders, the jump list and the kept key."""
    w, key, i, t, h, notes = walked(model_name, text, step, token, head)
    cfg = w.trace.config
    return (
        " ".join(notes),
        *draw(w, i, t, h),
        gr.Slider(maximum=len(w.trace.steps) - 1, value=i),
        gr.Slider(maximum=cfg.n_head - 1, value=h),
        gr.Dropdown(choices=jump_choices(w, cfg.n_layer), value=None),
        (key, i, t, h),
    )


@friendly_errors
def move(state: Any, step: Any, token: Any, head: Any, by: int = 0, jump: Any = None):
    """A step of the kept trace (no model run): `step + by`, or the start of block `jump`."""
    if not state:
        raise gr.Error("Press Walk first: there is no trace to move through yet.")
    key = state[0]
    w = _traces.get(key)
    if w is None:
        raise gr.Error(
            "This trace was dropped to make room for newer ones (the app keeps the last few). "
            "Press Walk to trace it again."
        )
    n = len(w.trace.steps)
    i = jump_index(w, jump) if jump is not None else int(min(max(int(step or 0) + by, 0), n - 1))
    t, tnote = check_position(w, token)
    h, hnote = check_head(w, head)
    for note in (tnote, hnote):
        if note:
            gr.Warning(note)
    kept.put(("walk", key, i, t, h), ("walk-step", lambda: step_export(w, i, t, h)))
    return (*draw(w, i, t, h), i, (key, i, t, h))


@friendly_errors
def walk_numbers(model_name: str, text: str, step: float, token: float, head: float) -> list[str]:
    """CSV + JSON of step `step` (the followed token's numbers, and the whole value when it is
    under a million numbers)."""
    w, _, key = traced(model_name, text)
    i = check_step(w, step)
    t, _ = check_position(w, token)
    h, _ = check_head(w, head)
    kept.put(("walk", key, i, t, h), ("walk-step", lambda: step_export(w, i, t, h)))
    return kept.files(("walk", key, i, t, h), lambda: None)


@friendly_errors
def shown_step_numbers(state: Any) -> list[str]:
    if not state:
        raise gr.Error("Nothing to export yet: press Walk first.")
    key, i, t, h = state
    return kept.files(("walk", key, i, t, h), lambda: move(state, i, t, h))


def parse_knockouts(knockouts: Any, block: Any, L: int) -> tuple[list[tuple[str, dict]], str]:
    """The ticked kinds as specs for `gpt.walk.compare_knockouts`, and the block they act on."""
    kinds = [k for k in (knockouts or []) if k]
    if isinstance(knockouts, str):
        kinds = [k.strip() for k in knockouts.split(",") if k.strip()]
    if not kinds:
        raise gr.Error("Tick at least one knockout.")
    unknown = [k for k in kinds if k not in core.KNOCKOUTS]
    if unknown:
        raise gr.Error(
            f"Knockouts: {', '.join(unknown)} unknown; kinds: {', '.join(core.KNOCKOUTS)}."
        )
    b = -1 if block is None else block
    if b != int(b) or not -1 <= b < L:
        raise gr.Error(f"Block {b:g} is out of range: pick -1 (every block) or 0 to {L - 1}.")
    b = int(b)
    where = "every block" if b < 0 else f"block {b}"
    specs = [(k, {"block": b} if b >= 0 and k in BLOCKED else {}) for k in kinds]
    return specs, where


def knockout_table(tok, cmp: core.KnockoutComparison) -> str:
    def cell(o: core.Outcome) -> tuple[str, str, str]:
        top = "<br>".join(
            f"{j + 1}. <code>{esc(token_text(tok, int(i)))}</code> {float(p):.3f}"
            for j, (i, p) in enumerate(zip(o.top_ids, o.top_probs))
        )
        cont = esc(tok.decode(o.continuation))
        return f"<b>{o.loss:.3f}</b>", top, f"<code>{cont}</code>"

    b, a = cell(cmp.before), cell(cmp.after)
    delta = cmp.after.loss - cmp.before.loss
    names = ["Loss on the text (nats / token)", "Top 5 next tokens", "Greedy continuation"]
    rows = "".join(f"<tr><th>{n}</th><td>{x}</td><td>{y}</td></tr>" for n, x, y in zip(names, b, a))
    return (
        '<table class="tok-table walk-ko"><tr><th></th><th>Intact</th>'
        f"<th>Knocked out (loss {delta:+.3f})</th></tr>{rows}</table>"
    )


def knockout_figure(tok, cmp: core.KnockoutComparison) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Intact", "Knocked out"), shared_yaxes=True)
    for col, (o, colour) in enumerate(((cmp.before, "#4a6fa5"), (cmp.after, ORANGE)), start=1):
        labels = [f"{j + 1}. {token_labels(tok, [int(i)])[0]}" for j, i in enumerate(o.top_ids)]
        fig.add_trace(
            go.Bar(x=labels, y=o.top_probs.numpy(), marker_color=colour,
                   hovertemplate="%{x}: %{y:.4f}<extra></extra>"),
            row=1, col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text="next token", row=1, col=col)
    fig.update_yaxes(title_text="probability", row=1, col=1)
    return _layout(fig, "The 5 most likely next tokens, intact and knocked out", 340)


@friendly_errors
def knockout(model_name: str, text: str, knockouts: list[str], block: float):
    """(note, before / after table, top-5 chart): the text run intact and with the ticked
    knockouts together (in `block`, -1 = every block, for the kinds that take a block): loss,
    top-5 next tokens, 8 greedy tokens."""
    model, tok = get_model(model_name, TASKS)
    if is_classifier(model):
        raise gr.Error(
            f"{model_name} is a classifier: knockouts compare losses and next tokens, so pick a "
            "language model."
        )
    ids, notes = read_ids(model, tok, text, str(model_name))
    if len(ids) < 2:
        raise gr.Error("Knockouts need at least 2 tokens: the loss predicts each next one.")
    specs, where = parse_knockouts(knockouts, block, body(model).config.n_layer)
    before = _before.get((model_name, id(model), tuple(ids)), lambda: core.outcome(model, ids))
    try:
        cmp = core.compare_knockouts(model, ids, specs, before=before)
    except ValueError as e:
        raise gr.Error(f"{e}.") from None
    names = dict((v, k) for k, v in KNOCKOUTS)
    blocked = [k for k, _ in specs if k in BLOCKED]
    lines = [" ".join(notes), ""]
    lines.append(
        "**Knocked out:** " + ", ".join(names[k] for k, _ in specs)
        + (f" (in {where})" if blocked else "") + "."
    )  # fmt: skip
    lines += [f"- **{names[ko.kind]}.** {shows}" for ko, shows in zip(cmp.knockouts, cmp.shows)]
    key = (
        "knockout",
        model_name,
        text,
        tuple(k for k, _ in specs),
        -1 if block is None else int(block),
    )
    kept.put(key, ("knockout", lambda: knockout_export(model_name, tok, ids, specs, cmp)))
    return "\n".join(lines), knockout_table(tok, cmp), knockout_figure(tok, cmp)


def knockout_export(model_name: str, tok, ids: list[int], specs, cmp: core.KnockoutComparison):
    rows = []
    for side, o in (("intact", cmp.before), ("knocked_out", cmp.after)):
        for j, (i, p) in enumerate(zip(o.top_ids.tolist(), o.top_probs.tolist())):
            rows.append(
                dict(side=side, loss=o.loss, rank=j + 1, token=tok.decode([i]), id=i, prob=p)
            )

    def side(o: core.Outcome) -> dict:
        return {
            "ids": o.ids.tolist(), "loss": o.loss, "top_ids": o.top_ids.tolist(),
            "top_probs": o.top_probs.tolist(), "continuation_ids": o.continuation,
            "continuation": tok.decode(o.continuation),
        }  # fmt: skip

    data = {
        "model": model_name, "ids": ids, "knockouts": [{"kind": k, **w} for k, w in specs],
        "shows": list(cmp.shows), "intact": side(cmp.before), "knocked_out": side(cmp.after),
    }  # fmt: skip
    return rows, data


@friendly_errors
def knockout_numbers(model_name: str, text: str, knockouts: list[str], block: float) -> list[str]:
    """CSV + JSON of a knockout comparison (computed again when no longer kept)."""
    model, tok = get_model(model_name, TASKS)
    ids, _ = read_ids(model, tok, text, str(model_name))
    specs, _ = parse_knockouts(knockouts, block, body(model).config.n_layer)
    key = (
        "knockout",
        model_name,
        text,
        tuple(k for k, _ in specs),
        -1 if block is None else int(block),
    )
    return kept.files(key, lambda: knockout(model_name, text, knockouts, block))


def _first_draw(model_name: Any, text: Any, step: Any, token: Any, head: Any):
    from gpt.lab.registry import default_registry

    if default_registry().default(TASKS) is None:
        from pages.common.models import model_note

        return (model_note(TASKS), *(gr.skip() for _ in range(10)))
    return walk_page(model_name, text, 0, token, head)


give_way = GiveWay()
# Step 0 of the picked model (on page load and when the picker changes); with no model yet, the
# note says how to get one. It gives way to the visitor's own Walk that came while it ran.
first_draw = give_way.auto("walk", _first_draw)


def first_knockout(model_name: Any, text: Any, knockouts: Any, block: Any):
    """The ticked knockout on page load, so its charts are not empty; nothing (no error) when
    there is no model yet or the model is a classifier."""
    try:
        return knockout(model_name, text, knockouts, block)
    except gr.Error:
        return gr.skip(), gr.skip(), gr.skip()


# --- the page -------------------------------------------------------------------------------------


def build(demo: gr.Blocks) -> Page:
    with gr.Tab("Walk", id="walk"):
        gr.Markdown(
            "Walk through one forward pass, one step at a time: each step beside the lines of "
            "`gpt/model.py` that computed it, its numbers for the token you follow, a chart and "
            f"why it is there. The text is cut to {MAX_TOKENS} tokens (the note says so). Then "
            "take a part away (a *knockout*) and see what breaks."
        )
        model = model_header(TASKS, "walk")
        n_layer, n_head = model_shape(model.value)
        with gr.Row():
            text = gr.Textbox(label=f"Text (up to {MAX_TOKENS} tokens)", value=text_for("walk"),
                              lines=2, elem_id="walk-text", scale=4)  # fmt: skip
            run_btn = gr.Button("Walk", variant="primary", elem_id="walk-run", scale=1)
        with gr.Row():
            token = number_input(label="Token to follow (position; -1 = the last)", value=-1,
                                 precision=0, elem_id="walk-token")  # fmt: skip
            head = slider_input(0, max(0, n_head - 1), value=0, step=1,
                                label="Attention head (for per-head steps)", elem_id="walk-head")  # fmt: skip
            jump = named_errors(
                gr.Dropdown(
                    jump_choices(None, n_layer),
                    value=None,
                    label="Jump to",
                    elem_id="walk-jump",
                    allow_custom_value=True,
                )  # fmt: skip
            )
        note = gr.Markdown(elem_id="walk-note")
        with gr.Row(equal_height=True):
            prev_btn = gr.Button("◀ Previous", elem_id="walk-prev", scale=0, min_width=120)
            step = slider_input(0, 4 + 24 * n_layer + 8, value=0, step=1, label="Step",
                                elem_id="walk-step", scale=6)  # fmt: skip
            next_btn = gr.Button("Next ▶", elem_id="walk-next", scale=0, min_width=120)
        header = gr.HTML(elem_id="walk-header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                code = gr.HTML(elem_id="walk-code")
                numbers = gr.Markdown(elem_id="walk-numbers")
                why = gr.Markdown(elem_id="walk-why")
                path = gr.Plot(label="The followed token's path", elem_id="walk-path")
                look_for(
                    "the residual norm grows block by block: each block adds to the stream, none replaces it."
                )
            with gr.Column(scale=7):
                chart = gr.Plot(label="This step", elem_id="walk-chart")
                step_button, step_files = numbers_button("Step numbers", "walk-files")
        state = gr.State(None)

        with gr.Accordion("Knockouts: what if the model lacked…", open=True, elem_id="walk-ko-box"):
            gr.Markdown(
                "Tick one or more parts to take away, then compare the intact model with the "
                "knocked-out one on the text above: the loss, the 5 most likely next tokens and "
                "8 greedy tokens. The model itself is never changed."
            )
            kinds = named_errors(
                gr.CheckboxGroup(
                    KNOCKOUTS, value=["causal_mask"], label="Knockouts", elem_id="walk-ko-kinds"
                )  # fmt: skip
            )
            with gr.Row():
                ko_block = number_input(
                    label="Block (-1 = every block; for the mask, GELU, LayerNorm, residual and "
                    "attention)", value=-1, precision=0, elem_id="walk-ko-block", scale=3,
                )  # fmt: skip
                ko_btn = gr.Button("Compare", elem_id="walk-ko-run", scale=1)
            ko_note = gr.Markdown(elem_id="walk-ko-note")
            with gr.Row(equal_height=False):
                ko_table = gr.HTML(elem_id="walk-ko-table")
                ko_chart = gr.Plot(label="Next tokens", elem_id="walk-ko-chart")
            ko_button, ko_files = numbers_button("Knockout numbers", "walk-ko-files")

        run = heavy("walk", 2)
        shown = [header, code, numbers, chart, why, path]
        walk_outputs = [note, *shown, step, head, jump, state]
        walk_inputs = [model, text, step, token, head]
        gr.on([run_btn.click, text.submit], lambda *a: walk_page(*a[:2], 0, *a[3:]),
              walk_inputs, walk_outputs, api_visibility="private", **run)  # fmt: skip
        give_way.on("walk", [run_btn.click, text.submit])
        # The API's /walk takes numbers: the sliders only accept the range of the model the page
        # was built with (their range follows the model per visitor, after a walk).
        api_step = number_input(label="Step", precision=0, visible=False, elem_id="walk-api-step")
        api_head = number_input(label="Head", precision=0, visible=False, elem_id="walk-api-head")
        api_inputs = [model, text, api_step, token, api_head]
        hidden = gr.Button(visible=False, elem_id="walk-api")
        hidden.click(walk, api_inputs, [note, *shown], api_name="walk", **run)
        hidden_numbers = gr.Button(visible=False, elem_id="walk-numbers-api")
        hidden_numbers.click(walk_numbers, api_inputs, step_files, api_name="walk_numbers", **run)
        nav = light("walk-step", None)
        moved = [*shown, step, state]
        step_inputs = [state, step, token, head]
        prev_btn.click(lambda *a: move(*a, by=-1), step_inputs, moved, api_visibility="private",
                       show_progress="hidden", **nav)  # fmt: skip
        next_btn.click(lambda *a: move(*a, by=1), step_inputs, moved, api_visibility="private",
                       show_progress="hidden", **nav)  # fmt: skip
        gr.on([step.release, token.submit, head.release], move, step_inputs, moved,
              api_visibility="private", show_progress="hidden", **nav)  # fmt: skip
        jump.input(lambda s, i, t, h, j: move(s, i, t, h, jump=j), [*step_inputs, jump], moved,
                   api_visibility="private", show_progress="hidden", **nav)  # fmt: skip
        step_button.click(shown_step_numbers, state, step_files, api_visibility="private", **nav)

        ko_inputs = [model, text, kinds, ko_block]
        ko_btn.click(knockout, ko_inputs, [ko_note, ko_table, ko_chart], api_name="knockout", **run)
        ko_button.click(knockout_numbers, ko_inputs, ko_files, api_name="knockout_numbers", **run)
        first = (first_draw, walk_inputs, walk_outputs)
        ko_first = (first_knockout, ko_inputs, [ko_note, ko_table, ko_chart])
        demo.load(*first, api_visibility="private", **run).then(
            *ko_first, api_visibility="private", **run
        )
        model.change(  # a default text follows the model's world first (`texts.follow`)
            lambda name, now: follow("walk", now, name), [model, text], text,
            api_visibility="private", queue=False,
        ).then(*first, api_visibility="private", **run)  # fmt: skip
    return Page([Picker("Walk", TASKS, model)])
