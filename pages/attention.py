"""Attention tab: where each token looks, per layer and head, as heatmaps and bar charts."""

from __future__ import annotations

import warnings

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch

from gpt.lab.registry import default_registry
from pages.common.heavy import heavy
from pages.common.inputs import (
    announce,
    cap_text,
    check_text,
    clamp,
    clamp_note,
    friendly_errors,
    named_errors,
    number_input,
    slider_input,
)
from pages.common.models import Page, Picker, get_model, model_header, model_note, model_shape
from pages.common.render import layout, ticks, token_labels
from pages.common.texts import follow, text_for
from pages.common.views import GiveWay, Recent, export_files, look_for, numbers_box

TASKS = ("lm", "instruct")
MAX_TOKENS = 256
MAX_CHARS = 20_000
GRID_CELLS = 32  # each map in the all-heads grid is pooled to at most this many cells a side
MASKED = "#d4d4d4"  # background shown where the causal mask hides future tokens
SINK_MODES = ("Show", "Hide", "Renormalise")
SINK_HELP = (
    "Many heads park most of their attention on the first token when nothing else is relevant "
    "(an *attention sink*). Hide that column, or renormalise each row without it, to see the rest."
)

_maps = Recent(8)  # the attention maps of the last few texts


def attention_maps(name: str, model, ids: list[int]) -> np.ndarray:
    """Attention weights `(L, H, T, T)` as float32 numpy, kept for the last few (model, ids)."""

    def compute() -> np.ndarray:
        gpt_model = getattr(model, "gpt", model)
        with torch.inference_mode():
            maps = gpt_model.attention_maps(torch.tensor([ids], device=gpt_model.device))
        return torch.stack([a[0] for a in maps]).float().cpu().numpy()

    return _maps.get((name, id(model), tuple(ids)), compute)


def apply_sink(maps: np.ndarray, mode: str) -> np.ndarray:
    """Future positions as NaN; the first column shown, hidden (NaN) or dropped and renormalised."""
    T = maps.shape[-1]
    out = np.where(np.tril(np.ones((T, T), dtype=bool)), maps, np.nan).astype(np.float32)
    if mode == "Show" or T == 1:
        return out
    out[..., 0] = np.nan
    if mode == "Renormalise":
        with np.errstate(invalid="ignore", divide="ignore"):
            out = out / np.nansum(out, axis=-1, keepdims=True)
        out[..., 0, :] = np.nan  # the first token sees only itself: nothing left to show
    return out


def heatmap(z: np.ndarray, labels: list[str], title: str, height: int = 560) -> go.Figure:
    T = len(labels)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(T)),
            y=list(range(T)),
            colorscale="Viridis",
            zmin=0,
            zmax=float(np.nanmax(z)) if np.isfinite(z).any() else 1.0,
            hoverongaps=False,
            hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>",
            colorbar=dict(title="weight", thickness=12),
        )
    )
    return layout(
        fig, title, height, left=90, plot_bgcolor=MASKED,
        xaxis=dict(title="Key (attended-to token)", tickangle=-60, showgrid=False, **ticks(labels)),
        yaxis=dict(
            title="Query (attending token)", autorange="reversed", showgrid=False, **ticks(labels)
        ),
    )  # fmt: skip


def pooled(maps: np.ndarray, cells: int) -> np.ndarray:
    """Average-pool the last two axes to at most `cells` x `cells`, ignoring NaN."""
    T = maps.shape[-1]
    if cells >= T:
        return maps
    starts = np.linspace(0, T, cells + 1).astype(int)[:-1]
    valid = np.isfinite(maps)
    summed = np.where(valid, maps, 0.0)
    for axis in (-1, -2):
        summed = np.add.reduceat(summed, starts, axis=axis)
        valid = np.add.reduceat(valid.astype(np.float32), starts, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid > 0, summed / valid, np.nan).astype(np.float32)


def grid_figure(maps: np.ndarray, layer: int, head: int) -> go.Figure:
    """Every head of every layer as small multiples, tiled into one heatmap (fast to draw)."""
    L, H, T, _ = maps.shape
    small = pooled(maps, GRID_CELLS)
    s = small.shape[-1]
    mosaic = np.full((L * (s + 1) - 1, H * (s + 1) - 1), np.nan, dtype=np.float32)
    for li in range(L):
        for hi in range(H):
            mosaic[li * (s + 1) : li * (s + 1) + s, hi * (s + 1) : hi * (s + 1) + s] = small[li, hi]
    finite = mosaic[np.isfinite(mosaic)]
    fig = go.Figure(
        go.Heatmap(
            z=mosaic,
            colorscale="Viridis",
            zmin=0,
            zmax=float(np.percentile(finite, 99)) if finite.size else 1.0,
            hoverongaps=False,
            hoverinfo="skip",
            showscale=False,
        )
    )
    centres = [i * (s + 1) + (s - 1) / 2 for i in range(max(L, H))]
    x0, y0 = head * (s + 1) - 0.5, layer * (s + 1) - 0.5
    fig.add_shape(type="rect", x0=x0, x1=x0 + s, y0=y0, y1=y0 + s, line=dict(color="red", width=2))
    pooled_note = f", each pooled to {s}×{s}" if s < T else ""
    # the grid fills the width: cells up to 140 px, the whole at most 1,200 px tall
    height = min(1200, 90 + round(min(1100 / H, 140)) * L)
    return layout(
        fig, f"All heads: {L} layers × {H} heads{pooled_note}", height, left=70, bottom=40,
        plot_bgcolor="white",
        xaxis=dict(
            tickmode="array",
            tickvals=centres[:H],
            ticktext=[f"head {h}" for h in range(H)],
            showgrid=False,
            zeroline=False,
            side="top",
            title=None,
        ),
        yaxis=dict(
            tickmode="array",
            tickvals=centres[:L],
            ticktext=[f"layer {i}" for i in range(L)],
            showgrid=False,
            zeroline=False,
            autorange="reversed",
            scaleanchor="x",
        ),
    )  # fmt: skip


def bar_figure(row: np.ndarray, labels: list[str], index: int, where: str) -> go.Figure:
    keys = list(range(index + 1))
    values = np.nan_to_num(row[: index + 1], nan=0.0)
    fig = go.Figure(
        go.Bar(
            x=keys,
            y=values,
            marker_color=["#e4572e" if k == index else "#4a6fa5" for k in keys],
            hovertext=[labels[k] for k in keys],
            hovertemplate="key %{x} %{hovertext}: %{y:.3f}<extra></extra>",
        )
    )
    return layout(
        fig, f"Where token #{index} {labels[index]!r} attends ({where})", 360,
        xaxis=dict(title="Key (attended-to token)", tickangle=-60, **ticks(labels[: index + 1])),
        yaxis=dict(title="attention weight", rangemode="tozero"),
    )  # fmt: skip


@friendly_errors
def attention(
    model_name: str,
    text: str,
    layer: float,
    head: float,
    sink: str,
    token_index: float,
    progress=gr.Progress(),  # noqa: B008 (Gradio's way): shows a GPT-2 download
) -> tuple[str, go.Figure, go.Figure, go.Figure, go.Figure]:
    """(note, chosen head heatmap, head average, all-heads grid, one token's bar chart)."""
    model, tok = get_model(model_name, TASKS, progress)
    text, cut = cap_text(text, MAX_CHARS, "Text")
    gpt_model = getattr(model, "gpt", model)
    cap = min(MAX_TOKENS, gpt_model.config.block_size)
    ids = tok.encode(text)
    notes = [announce(cut)] if cut else []
    notes.append(f"**{min(len(ids), cap)}** tokens (cap {cap}).")
    if len(ids) > cap:
        notes.append(f"The text was **truncated** from {len(ids)} to its first {cap} tokens.")
        ids = ids[:cap]
    maps = attention_maps(model_name, model, ids)
    L, H, T, _ = maps.shape
    layer, layer_note = clamp_note(layer, 0, L - 1, "Layer", integer=True)
    head, head_note = clamp_note(head, 0, H - 1, "Head", integer=True)
    if sink not in SINK_MODES:
        sink = "Show"
    index, index_note = clamp_note(token_index, -1, T - 1, "Token to inspect", integer=True)
    if index_note:  # a clamp lands on -1 or T - 1: both mean the last token
        index_note = index_note.removesuffix(".") + ": the last token."
    index = T - 1 if index < 0 else index
    notes += [announce(n) for n in (layer_note, head_note, index_note) if n]
    shown = apply_sink(maps, sink)
    labels = token_labels(tok, ids)
    sink_note = {
        "Show": "",
        "Hide": " (first column hidden)",
        "Renormalise": " (renormalised without the first token)",
    }[sink]
    main = heatmap(shown[layer, head], labels, f"Layer {layer}, head {head}{sink_note}")
    with warnings.catch_warnings():  # rows that are all NaN (masked) average to NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        avg_maps = np.nanmean(shown[layer], axis=0) if H > 1 else shown[layer, 0]
    avg = heatmap(avg_maps, labels, f"Layer {layer}, average of {H} heads{sink_note}", 460)
    grid = grid_figure(shown, layer, head)
    bars = bar_figure(shown[layer, head, index], labels, index, f"layer {layer}, head {head}")
    notes.append("Grey cells are masked: a token cannot attend to tokens after it.")
    return " ".join(notes), main, avg, grid, bars


@friendly_errors
def attention_numbers(model_name: str, text: str, layer: float, head: float) -> list[str]:
    """CSV + JSON of the chosen head's map and its layer's head average (the two heatmaps)."""
    model, tok = get_model(model_name, TASKS)
    text = check_text(text, MAX_CHARS, "Text")
    cap = min(MAX_TOKENS, getattr(model, "gpt", model).config.block_size)
    ids = tok.encode(text)[:cap]
    maps = attention_maps(model_name, model, ids)
    L, H, T, _ = maps.shape
    layer = clamp(layer, 0, L - 1, "Layer", integer=True)
    head = clamp(head, 0, H - 1, "Head", integer=True)
    one, avg = maps[layer, head], maps[layer].mean(axis=0)
    labels = [tok.decode([i]) for i in ids]
    rows = [
        {
            "query": q,
            "query_token": labels[q],
            "key": k,
            "key_token": labels[k],
            "weight": float(one[q, k]),
            "head_average": float(avg[q, k]),
        }
        for q in range(T)
        for k in range(q + 1)
    ]
    data = {
        "model": model_name,
        "ids": ids,
        "layer": layer,
        "head": head,
        "weights": one.tolist(),
        "head_average": avg.tolist(),
    }
    return export_files(f"attention-L{layer}H{head}", rows, data)


def _first_render(*args):
    if default_registry().default(TASKS) is None:
        return model_note(TASKS), None, None, None, None
    return attention(*args)


give_way = GiveWay()
# The page-load and model-change render; quiet (no error pop-up) when no model is available
# yet; it gives way to the visitor's own redraw (typing, a slider, the button) that came while
# it ran.
first_render = give_way.auto("attention", _first_render)


def on_model_change(model_name: str, layer: float, head: float, text: str):
    """The Layer and Head sliders fitted to the picked model, a value it lacks said; the text
    the model's world's own, unless the visitor wrote theirs (`pages.common.texts.follow`)."""
    n_layer, n_head = model_shape(model_name)
    layer, layer_note = clamp_note(layer or 0, 0, n_layer - 1, "Layer", integer=True)
    head, head_note = clamp_note(head or 0, 0, n_head - 1, "Head", integer=True)
    if notes := " ".join(n for n in (layer_note, head_note) if n):
        announce(f"{model_name} has {n_layer} layers of {n_head} heads. {notes}")
    return (
        gr.Slider(maximum=n_layer - 1, value=layer),
        gr.Slider(maximum=n_head - 1, value=head),
        follow("attention", text, model_name),
    )


def build(demo: gr.Blocks) -> Page:
    with gr.Tab("Attention", id="attention"):
        gr.Markdown(
            "Each row of a heatmap is one token (the *query*) and shows how much it attends to "
            "every earlier token (the *keys*). Up to 256 tokens; longer text is truncated."
        )
        model = model_header(TASKS, "att")
        # Slider ranges fit the largest listed model (so the API accepts any of them); the page
        # narrows them to the picked model on load and on every model change.
        shapes = [model_shape(n) for n in default_registry().names(TASKS)] or [(12, 12)]
        n_layer, n_head = max(s[0] for s in shapes), max(s[1] for s in shapes)
        text = gr.Textbox(label="Text", value=text_for("attention"), lines=3, elem_id="att-text")
        with gr.Row():
            layer = slider_input(
                0, n_layer - 1, value=0, step=1, label="Layer", elem_id="att-layer"
            )
            head = slider_input(0, n_head - 1, value=0, step=1, label="Head", elem_id="att-head")
            token = number_input(
                value=-1, precision=0, label="Token to inspect (-1 = last)", elem_id="att-token"
            )
        with gr.Row():
            sink = named_errors(
                gr.Radio(
                    list(SINK_MODES),
                    value="Show",
                    label="First token (attention sink)",
                    elem_id="att-sink",
                    scale=1,
                )
            )
            gr.Markdown(SINK_HELP, elem_classes="note")
        show_btn = gr.Button("Show attention", variant="primary", elem_id="att-run")
        note = gr.Markdown(elem_id="att-note")
        with gr.Row(equal_height=False):
            main = gr.Plot(label="Chosen head", elem_id="att-heatmap")
            avg = gr.Plot(label="Head average", elem_id="att-avg")
        look_for(
            "a diagonal stripe (a head reading the previous token); a column lit all the way down (the first token, an attention sink); a pronoun's row lighting up the noun it means."
        )
        bars = gr.Plot(label="One token", elem_id="att-bars")
        grid = gr.Plot(label="All heads", elem_id="att-grid")
        look_for(
            "heads in early layers that look one token back, and later ones that spread out or fix on one word."
        )
        with gr.Row():
            numbers_btn = gr.Button("Numbers of the chosen head (CSV, JSON)", elem_id="att-export")
            numbers = numbers_box("Attention numbers", "att-files")
        numbers_btn.click(
            attention_numbers, [model, text, layer, head], numbers, api_visibility="private"
        )

        inputs = [model, text, layer, head, sink, token]
        outputs = [note, main, avg, grid, bars]
        run = heavy("attention", 2)
        show_btn.click(attention, inputs, outputs, api_name="attention", **run)
        # typing redraws too (the latest text wins; a model change's new text does not count)
        asks = [text.input, text.submit, layer.release, head.release, sink.change, token.submit]
        give_way.on("attention", [show_btn.click, *asks])
        gr.on(
            asks,
            attention,
            inputs,
            outputs,
            api_visibility="private",
            trigger_mode="always_last",
            **run,
        )
        fit = ([model, layer, head, text], [layer, head, text])
        # queued: its warning (a layer or head the model lacks) needs the queue
        model.change(on_model_change, *fit, api_visibility="private").then(
            first_render, inputs, outputs, api_visibility="private", **run
        )
        demo.load(on_model_change, *fit, api_visibility="private", queue=False).then(
            first_render, inputs, outputs, api_visibility="private", **run
        )
    return Page([Picker("Attention", TASKS, model)])
