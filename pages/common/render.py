"""How the tabs draw things: CSS, escaping, token texts, coloured spans, axis ticks, chart
layouts, durations."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import Any

from gpt.train.estimate import duration  # noqa: F401 (the tabs' durations: one formatter)

CSS = """
.tok-view { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 14px;
  line-height: 2.1; white-space: normal; word-break: break-word; padding: 6px 2px; }
.tok { padding: 2px 1px; margin: 0 1px; border-radius: 3px; white-space: pre; color: #111; }
.tok.c0 { background: #fde2a7; } .tok.c1 { background: #bfe3f5; } .tok.c2 { background: #cdeac0; }
.tok.c3 { background: #f6c6d5; } .tok.c4 { background: #ddd1f4; }
.tok.special { background: #333; color: #fff; }
.tok-ws { color: #8a6d00; }
.tok-group { border: 1.5px dashed #b04; border-radius: 4px; padding: 1px 2px; margin: 0 2px;
  white-space: nowrap; }
.tok-group .grp-char { font-size: 15px; margin-right: 2px; }
.tok-group .tok { font-size: 11px; }
.tok-table { border-collapse: collapse; font-size: 13px; width: 100%; }
.tok-table th, .tok-table td { border: 1px solid #ccc; padding: 3px 6px; text-align: left;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.tok-table th { background: #f3f3f3; }
.note { font-size: 13px; }
#tok-bytes th, #tok-bytes td:not(:nth-child(3)) { white-space: nowrap; }
.numbers-box:has(> .empty) { display: none !important; }
.running { background: var(--button-cancel-background-fill) !important;
  color: var(--button-cancel-text-color) !important;
  border-color: var(--button-cancel-border-color) !important; }
"""


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def md(text: str) -> str:
    """Text from files (card.json of any folder) in Markdown: no HTML tags survive."""
    return html.escape(text, quote=False)

WHITESPACE = {" ": "·", "\n": "↵", "\t": "⇥", "\r": "␍"}  # a tab is not "→", which text has
WHITESPACE_LEGEND = "`·` is a space, `↵` a newline, `⇥` a tab"
_MARKS = str.maketrans(WHITESPACE)


def visible(text: str) -> str:
    r"""A token's text with its whitespace marked (`WHITESPACE`); "∅" when it has none.

    >>> visible(" a\tb → c\n")
    '·a⇥b·→·c↵'
    >>> visible("")
    '∅'
    """
    return text.translate(_MARKS) or "∅"


def token_text(tok: Any, token_id: int) -> str:
    """One token's text; where it holds only part of a character (GPT-2 splits many a CJK
    character or emoji), those bytes in hex instead of "\ufffd", the same for every such token.

    >>> from gpt.tokenizer import Tokenizer
    >>> tok = Tokenizer.train("ab", 257)
    >>> token_text(tok, ord("a")), token_text(tok, 0xE6), token_text(tok, 0x97)
    ('a', '‹E6›', '‹97›')
    """
    text = tok.token_bytes(token_id).decode("utf-8", "surrogateescape")  # bad bytes: U+DC80..
    out, run = [], []
    for c in text + " ":  # the space ends a last run of bytes (it is not kept)
        if 0xDC80 <= ord(c) <= 0xDCFF:
            run.append(f"{ord(c) - 0xDC00:02X}")
            continue
        if run:
            out.append("‹" + "\u202f".join(run) + "›")  # a narrow space: not a marked " "
            run = []
        out.append(c)
    return "".join(out[:-1])


def token_labels(tok: Any, ids: list[int]) -> list[str]:
    return [visible(token_text(tok, i)) for i in ids]


def labeller(tok: Any) -> Callable[[int], str]:
    """Token id -> its label, memoised (a lens or a trace labels thousands of cells)."""
    return functools.cache(lambda token_id: token_labels(tok, [token_id])[0])


WHITE, RED, BLUE, GREEN = (255, 255, 255), (200, 30, 30), (40, 90, 200), (30, 150, 60)


def mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    """The colour `t` of the way from `a` to `b` (clipped to [0, 1]), as #rrggbb.

    >>> mix(WHITE, RED, 1.0), mix(WHITE, RED, 7)
    ('#c81e1e', '#c81e1e')
    """
    t = min(max(t, 0.0), 1.0)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def coloured_text(pieces: list[tuple[str, str, str]], legend: str, elem_class: str) -> str:
    """HTML of (text, background colour, hover text) spans, with a legend line."""
    spans = "".join(
        f'<span class="tok" style="background:{bg}" title="{esc(tip)}">{html.escape(text)}</span>'
        for text, bg, tip in pieces
    )
    return f'<div class="tok-view {elem_class}">{spans}</div><div class="note">{esc(legend)}</div>'


def ticks(labels: list[str], start: int = 0, most: int = 40) -> dict:
    """Plotly tick settings labelling every n-th of `labels` from `start` (n = len // most).

    >>> ticks(["a", "b", "c"])["ticktext"], len(ticks([str(i) for i in range(100)])["tickvals"])
    (['a', 'b', 'c'], 50)
    """
    step = max(1, len(labels) // most)
    vals = list(range(start, len(labels), step))
    return dict(tickmode="array", tickvals=vals, ticktext=[labels[i] for i in vals])


def layout(fig: Any, title: str, height: int, left: int = 60, bottom: int = 90, top: int = 50,
           **kw: Any) -> Any:
    """`fig` in the tabs' chart layout: its title, `height` and margins (px), and `kw`."""
    margin = dict(l=left, r=20, t=top, b=bottom)
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=height, margin=margin, **kw)
    return fig


_TEMPLATE: dict | None = None


def fast_figure(spec: dict) -> Any:
    """A plotly `go.Figure` from a plain dict in plotly's own schema, built without its
    per-property validation: about 1 ms instead of 30 for a bar chart redrawn while a stream
    runs. The default template is added, as `go.Figure` would; tests validate the same specs.

    >>> fig = fast_figure({"data": [{"type": "bar", "x": [1, 2]}], "layout": {"height": 200}})
    >>> fig.layout.height, "template" in fig.to_dict()["layout"]
    (200, True)
    """
    import plotly.graph_objects as go
    import plotly.io as pio

    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = pio.templates[pio.templates.default].to_plotly_json()
    spec = {**spec, "layout": {"template": _TEMPLATE, **spec.get("layout", {})}}
    try:
        return go.Figure(spec, _validate=False)
    except TypeError:  # a plotly without the private switch: validated, slower
        return go.Figure(spec)
