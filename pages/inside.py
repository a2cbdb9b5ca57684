"""Inside tab: the logit lens, per-token surprisal, head ablation, input attribution, two models
compared on one text, and activation patching. The numbers come from `gpt.inside`; this page only
draws them."""

from __future__ import annotations

import functools
import html
import inspect
import re
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch

from gpt import inside
from gpt.lab.registry import default_registry
from pages.common import Page, Picker, friendly_errors, heavy, layout, ticks, token_labels, visible
from pages.common.inputs import announce, cap_text, said_by_twin
from pages.common.models import get_model, model_header, model_note, model_picker, model_shape
from pages.common.render import GREEN, RED, WHITE, coloured_text, labeller, mix, token_text
from pages.common.texts import follow, text_for
from pages.common.views import (
    FLOP_BUDGET,
    MAX_TOKENS,
    METHODS,
    GiveWay,
    KeptNumbers,
    Recent,
    attribution_result,
    look_for,
    numbers_button,
    pick_target,
    read_text,
    token_cap,
)

TASKS = ("lm", "instruct")
ATTRIBUTION_TASKS = ("lm", "instruct", "classify")
TOP_K = 5
CELL_TEXT_MAX = 48  # beyond this many positions the lens cells are too narrow for their text
SURPRISAL_MAX = 10.0  # nats: the darkest colour of the surprisal view
COMPARE_SCALE = [[0.0, f"rgb{RED}"], [0.5, f"rgb{WHITE}"], [1.0, f"rgb{GREEN}"]]  # B - A
MODES = [("Zero", "zero"), ("Mean over positions", "mean")]
PATCH_MAX = 32  # tokens per prompt in the patching view (fewer on big models: `patch_cap`)
PATCH_CHARS = 1_000
FIRST = "the first token has no prediction"

# The intact model's predictions of the last few texts: surprisal computes them, ablation reuses
# them as its baseline.
_predictions = Recent(8)
kept = KeptNumbers(16)  # each view's numbers, written to CSV + JSON when the button asks


def cached_predictions(name: str, model, ids: list[int]) -> inside.Predictions:
    key = (name, id(model), tuple(ids))
    return _predictions.get(key, lambda: inside.predictions(model, ids, TOP_K))


def layer_rows(n_rows: int) -> list[str]:
    """The y labels of a lens heatmap: the embeddings, then each block's output."""
    return ["embeddings"] + [f"layer {i}" for i in range(1, n_rows)]


def heatmap(z, x, y: list[str], hover, colorbar: str, template: str, **kw: Any) -> go.Figure:
    """A layer × position heatmap, its hover text all in one box (a trace name would sit in a
    tag of its own beside it, over cells)."""
    return go.Figure(go.Heatmap(
        z=z, x=x, y=y, customdata=hover, hovertemplate=template + "<extra></extra>",
        colorbar=dict(title=colorbar, thickness=12), **kw,
    ))  # fmt: skip


def lens_layout(fig: go.Figure, title: str, n_rows: int, xtitle: str, ticktext: list[str]) -> None:
    """The layout both lens heatmaps share: one row per layer, at most 40 labelled columns."""
    xaxis = dict(title=xtitle, tickangle=-60, **ticks(ticktext))
    layout(fig, title, min(1400, 140 + 30 * n_rows), 90, 90, xaxis=xaxis, yaxis=dict(title=None))


def lens_figure(lens: inside.LogitLens, labels: list[str], decode) -> go.Figure:
    L1, T, k = lens.top_ids.shape
    rows = layer_rows(L1)
    ids, probs = lens.top_ids.tolist(), lens.top_probs.tolist()  # plain lists: fast to index
    escaped = {i: html.escape(decode(i)) for i in set(lens.top_ids.flatten().tolist())}
    reading = [
        f"reading {html.escape(label)!r} (#{t}), top 5 next tokens:<br>"
        for t, label in enumerate(labels)
    ]
    hover = [
        [
            f"after {rows[r]}, {reading[t]}"
            + "<br>".join(
                f"{j + 1}. {escaped[i]}  {p:.3f}" for j, (i, p) in enumerate(zip(ids_rt, probs_rt))
            )
            for t, (ids_rt, probs_rt) in enumerate(zip(ids[r], probs[r]))
        ]
        for r in range(L1)
    ]
    show_text = T <= CELL_TEXT_MAX
    # numpy arrays: Plotly keeps them as they are instead of checking every cell
    fig = heatmap(
        lens.top_probs[:, :, 0].numpy(), np.arange(T), rows, np.array(hover), "P(top-1)", "%{customdata}",
        text=np.array([[decode(row[0]) for row in ids[r]] for r in range(L1)]),
        texttemplate="%{text}" if show_text else None, textfont=dict(size=10),
        colorscale="Blues", zmin=0, zmax=1, hoverlabel=dict(align="left"),
    )  # fmt: skip
    note = "" if show_text else " · hover (or zoom in) for the tokens"
    title = f"Logit lens: the top next-token guess after each layer{note}"
    lens_layout(fig, title, L1, "Input token (the guess is for the token after it)", labels)
    return fig


def decide_figure(lens: inside.LogitLens, target_text: str, where: str) -> go.Figure:
    logp = lens.target_logprobs[:, -1]
    fig = go.Figure(go.Scatter(
        x=layer_rows(lens.n_rows), y=logp.exp().tolist(), customdata=logp.tolist(),
        mode="lines+markers", line=dict(color="#e4572e", width=2),
        hovertemplate="%{x}: P = %{y:.4f} (log p = %{customdata:.2f})<extra></extra>",
    ))  # fmt: skip
    title = f"When does the model decide? P({visible(target_text)}) after each layer, {where}"
    layout(fig, title, 340, 60, 60, yaxis=dict(title="probability", range=[0, 1.02]))
    return fig


@friendly_errors
def lens(model_name: str, text: str, target: str):
    """(note, lens heatmap, 'when does it decide' chart); `lens_numbers` writes its numbers."""
    model, tok = get_model(model_name, TASKS)
    ids, notes = read_text(model, tok, text, "lens", model_name)
    tid, ttext, tnote = pick_target(tok, target)
    # fast: rows projected in bf16, each position's top candidates (and the model's own
    # distribution after the last token) exact
    result = inside.logit_lens(model, ids, k=TOP_K, target=tid, fast=True)
    ttext = ttext if ttext is not None else tok.decode([result.target])
    notes += [tnote] if tnote else []
    labels = token_labels(tok, ids)
    heat = lens_figure(result, labels, labeller(tok))
    decide = decide_figure(result, ttext, f"reading the last token {labels[-1]!r}")
    key = view_key("lens", model_name, text, target)
    kept.put(key, ("logit-lens", lambda: lens_export(model_name, tok, ids, result, ttext)))
    return " ".join(notes), heat, decide, key


def lens_export(model_name: str, tok, ids: list[int], result, ttext: str):
    """(CSV rows, JSON data) of a lens: a row per layer and position, the top 5 and the target."""
    raw = functools.cache(lambda token_id: tok.decode([token_id]))
    L1, T, _ = result.top_ids.shape
    top_ids, top_probs = result.top_ids.tolist(), result.top_probs.tolist()
    target_lp, names = result.target_logprobs.tolist(), layer_rows(L1)
    rows = []
    for r in range(L1):
        for t in range(T):
            row = dict(row=r, layer=names[r], position=t, input_token=tok.decode([ids[t]]))
            for j in range(TOP_K):
                row |= {f"top{j + 1}_token": raw(top_ids[r][t][j]), f"top{j + 1}_prob": top_probs[r][t][j]}
            rows.append(row | {"target_logprob": target_lp[r][t]})
    target = {"id": result.target, "text": ttext}  # describe() has top_ids, top_probs
    return rows, {"model": model_name, "ids": ids, **inside.describe(result), "target": target}


@friendly_errors
def surprisal(model_name: str, text: str):
    """(text coloured by surprisal as HTML, summary with the perplexity); `surprisal_numbers`
    writes the numbers."""
    model, tok = get_model(model_name, TASKS)
    ids, notes = read_text(model, tok, text, "surprisal", model_name)
    if len(ids) < 2:
        raise gr.Error("Surprisal needs at least 2 tokens: the first one has no prediction.")
    p = cached_predictions(model_name, model, ids)
    decode = labeller(tok)
    pieces, rows = [(token_text(tok, ids[0]), "#e8e8e8", FIRST)], []
    for t in range(len(ids) - 1):
        s, prob, rank, entropy = float(p.surprisal[t]), float(p.prob[t]), int(p.rank[t]), float(p.entropy[t])
        alts = ", ".join(
            f"{decode(int(i))!r} {float(q):.3f}" for i, q in zip(p.top_ids[t], p.top_probs[t])
        )
        tip = (
            f"p = {prob:.4f} · rank {rank} · surprisal {s:.2f} nats · "
            f"entropy {entropy:.2f} nats\ntop {TOP_K}: {alts}"
        )
        pieces.append((token_text(tok, ids[t + 1]), mix(WHITE, RED, s / SURPRISAL_MAX), tip))
        rows.append(dict(
            position=t + 1, token=tok.decode([ids[t + 1]]), surprisal_nats=s, prob=prob, rank=rank,
            entropy_nats=entropy, top_alternatives=alts,
        ))  # fmt: skip
    legend = (
        f"White: expected (0 nats); dark red: surprising ({SURPRISAL_MAX:g}+ nats). "
        "Hover a token for its probability, rank and the top 5 alternatives."
    )
    worst = int(torch.argmax(p.surprisal))
    notes.insert(0, (
        f"Perplexity **{p.perplexity:.2f}** (mean surprisal {p.loss:.3f} nats over "
        f"{len(ids) - 1} predicted tokens). Most surprising: "
        f"{token_text(tok, ids[worst + 1])!r} ({float(p.surprisal[worst]):.2f} nats, "
        f"rank {int(p.rank[worst])})."
    ))  # fmt: skip
    key = view_key("surprisal", model_name, text)
    kept.put(key, ("surprisal", lambda: surprisal_export(model_name, tok, ids, p, rows)))
    return coloured_text(pieces, legend, "surprisal-view"), " ".join(notes), key


def surprisal_export(model_name: str, tok, ids: list[int], p: inside.Predictions, rows: list):
    data = {"model": model_name, "ids": ids, **inside.describe(p), "perplexity": p.perplexity}
    nxt = torch.topk(p.next_probs, min(20, p.next_probs.shape[0]))  # not all V probabilities
    data["next_probs"] = [
        {"id": int(i), "token": tok.decode([int(i)]), "prob": float(v)}
        for v, i in zip(nxt.values, nxt.indices)
    ]
    return rows, data


def head_choices(n_layer: int, n_head: int) -> list[tuple[str, str]]:
    """The head grid's (label, value) pairs: one notation, L<layer>H<head>, in the grid, the text
    box and the notes."""
    return [(f"L{i}H{h}",) * 2 for i in range(n_layer) for h in range(n_head)]


def grid_style(n_head: int) -> str:
    """CSS laying the head checkboxes out as a layer × head grid (one row per layer)."""
    return (
        f"<style>#ins-heads .wrap {{ display: grid; grid-template-columns: repeat({n_head}, "
        "minmax(3.2em, max-content)); gap: 2px 4px; }</style>"
        f'<div class="note">Each row is a layer, each column a head: <code>L1H3</code> is layer 1, '
        f"head 3; {n_head} heads per layer.</div>"
    )


def parse_head_values(values: Any) -> list[tuple[int, int]]:
    """["L0H1", ...] (or "L0H1, L2H3") as (layer, head) pairs; a gr.Error names a bad one."""
    if isinstance(values, str):
        values = [v for v in values.replace(" ", "").split(",") if v]
    pairs = []
    for v in values or []:
        if (pair := re.fullmatch(r"L(-?\d+)H(-?\d+)", str(v).upper())) is None:
            raise gr.Error(f"{v!r} is not a head; write heads as L<layer>H<head>, e.g. L0H3.")
        pairs.append((int(pair[1]), int(pair[2])))
    return pairs


def ablation_figures(result: inside.Ablation, ids, decode, labels: list[str]):
    before, after = result.next_before, result.next_after
    top = torch.topk(torch.maximum(before, after), 10).indices.tolist()
    names = [f"{decode(i)}" for i in top]
    nxt = go.Figure()
    for probs, name, colour in ((before, "intact", "#9db4d6"), (after, "heads ablated", "#e4572e")):
        x = [float(probs[i]) for i in top]
        nxt.add_bar(y=names, x=x, orientation="h", name=name, marker_color=colour)
    axes = dict(xaxis=dict(title="probability"), yaxis=dict(autorange="reversed"))
    title = f"Next token after {labels[-1]!r}: intact vs ablated"
    layout(nxt, title, 420, 110, 60, barmode="group", legend=dict(orientation="h", y=-0.15), **axes)
    b, a = result.before.surprisal.tolist(), result.after.surprisal.tolist()
    delta = (result.after.surprisal - result.before.surprisal).tolist()
    loss = go.Figure(go.Bar(
        x=list(range(1, len(ids))), y=delta, hovertext=labels[1:], customdata=list(zip(b, a)),
        marker_color=["#c0392b" if d > 0 else "#2e86c1" for d in delta],
        hovertemplate="%{hovertext}: %{customdata[0]:.2f} → %{customdata[1]:.2f} nats"
        " (%{y:+.2f})<extra></extra>",
    ))  # fmt: skip
    title = (
        f"Per-token loss change: mean {result.before.loss:.3f} → {result.after.loss:.3f} nats "
        "(up: the ablation hurt)"
    )
    xaxis = dict(title="Predicted token", tickangle=-60, **ticks(labels, start=1))
    layout(loss, title, 360, 60, 90, xaxis=xaxis, yaxis=dict(title="Δ loss (nats)"))
    return nxt, loss


@friendly_errors
def ablate(model_name: str, text: str, heads: Any, mode: str):
    """(note, next-token chart, per-token loss-change chart); `ablate_numbers` writes the
    numbers."""
    model, tok = get_model(model_name, TASKS)
    ids, notes = read_text(model, tok, text, "ablate", model_name)
    if len(ids) < 2:
        raise gr.Error("Ablation needs at least 2 tokens.")
    if not (pairs := parse_head_values(heads)):
        raise gr.Error("Pick at least one head to ablate.")
    before = cached_predictions(model_name, model, ids)
    try:
        result = inside.ablate(model, ids, pairs, mode, TOP_K, before=before)
    except ValueError as e:
        raise gr.Error(f"{e}.") from None
    decode = labeller(tok)
    nxt, loss = ablation_figures(result, ids, decode, token_labels(tok, ids))
    shown = ", ".join(f"L{i}H{h}" for i, hs in result.heads.items() for h in hs)
    verb = "zeroed" if mode == "zero" else "replaced by their mean over positions"
    b, a = int(result.next_before.argmax()), int(result.next_after.argmax())
    change = f"stays {decode(b)!r}" if a == b else f"changes from {decode(b)!r} to {decode(a)!r}"
    notes.insert(0, (
        f"Heads {shown} {verb}: loss {result.before.loss:.3f} → **{result.after.loss:.3f}** "
        f"nats; the top next token {change}."
    ))  # fmt: skip
    key = view_key("ablate", model_name, text, heads, mode)
    kept.put(key, ("ablation", lambda: ablate_export(model_name, tok, ids, result)))
    return " ".join(notes), nxt, loss, key


def ablate_export(model_name: str, tok, ids: list[int], result: inside.Ablation):
    b, a = result.before.surprisal.tolist(), result.after.surprisal.tolist()
    rows = [
        dict(position=t + 1, token=tok.decode([ids[t + 1]]), loss_before=b[t], loss_after=a[t])
        for t in range(len(ids) - 1)
    ]
    nb, na = result.next_before, result.next_after
    top = torch.topk(torch.maximum(nb, na), 20).indices.tolist()
    heads = {str(k): v for k, v in result.heads.items()}
    data = dict(model=model_name, ids=ids, heads=heads, mode=result.mode, loss_before=b, loss_after=a)
    data["next_token"] = [
        {"id": i, "token": tok.decode([i]), "before": float(nb[i]), "after": float(na[i])}
        for i in top
    ]
    return rows, data


@friendly_errors
def attribution(model_name: str, text: str, method: str, target: str):
    """(coloured HTML, note). Any model: a classifier's class (target: a label, blank = the
    predicted one) or a language model's next token (blank = its top guess)."""
    view, note, rows, data = attribution_result(model_name, text, method, target, ATTRIBUTION_TASKS)
    key = view_key("attribution", model_name, text, method, target)
    kept.put(key, ("attribution", lambda: (rows, data)))
    return view, note, key


@friendly_errors
def compare(model_a: str, model_b: str, text: str):
    """(note, per-token coloured difference HTML, lens-difference heatmap); `compare_numbers`
    writes the numbers."""
    ma, tok_a = get_model(model_a, TASKS)
    mb, tok_b = get_model(model_b, TASKS)
    ids, notes = read_text(ma, tok_a, text, "compare", model_a)
    cap_b = token_cap(inside.body(mb).config, "compare")
    if len(ids) > cap_b:
        notes.append(f"**Capped:** {model_b} reads at most {cap_b} tokens here.")
        ids = ids[:cap_b]
    same_vocab = inside.body(ma).config.vocab_size == inside.body(mb).config.vocab_size
    if not same_vocab or tok_b.encode(tok_a.decode(ids)) != ids:
        raise gr.Error(
            f"{model_a} and {model_b} do not share a tokenizer, so their token-by-token "
            "probabilities cannot be compared. Pick two models with the same tokenizer (e.g. "
            "starter and a job fine-tuned from it)."
        )
    if len(ids) < 2:
        raise gr.Error("Comparing needs at least 2 tokens.")
    c = inside.compare(ma, mb, ids, fast=True)
    labels = token_labels(tok_a, ids)
    shown = [token_text(tok_a, i) for i in ids]  # split characters as their bytes
    scale = max(float(c.diff.abs().max()), 1e-9)
    pieces = [(shown[0], "#e8e8e8", FIRST)]
    for t in range(len(ids) - 1):
        d = float(c.diff[t])
        tip = (
            f"log p: A {float(c.logprobs_a[t]):.3f} · B {float(c.logprobs_b[t]):.3f} · "
            f"B − A {d:+.3f} · KL(A‖B) {float(c.kl[t]):.3f} nats"
        )
        pieces.append((shown[t + 1], mix(WHITE, GREEN if d > 0 else RED, abs(d) / scale), tip))
    view = coloured_text(
        pieces,
        f"Green: B ({model_b}) found the token more likely than A ({model_a}); red: less "
        f"likely (strongest: {scale:.3f} nats). Hover for both log-probabilities.",
        "compare-view",
    )
    loss_a, loss_b = float(-c.logprobs_a.mean()), float(-c.logprobs_b.mean())
    notes.insert(0, (
        f"Loss A ({model_a}) **{loss_a:.3f}** · B ({model_b}) **{loss_b:.3f}** nats per token; "
        f"mean KL(A‖B) {float(c.kl.mean()):.3f} nats."
    ))  # fmt: skip
    fig = None
    if c.lens_diff is None:
        notes.append("The models differ in depth, so their logit lenses are not compared.")
    else:
        L1 = c.lens_diff.shape[0]
        bound = max(float(c.lens_diff.abs().max()), 1e-6)
        fig = heatmap(
            c.lens_diff.tolist(), list(range(len(ids) - 1)), layer_rows(L1), [labels[1:]] * L1, "B − A",
            "%{y}, predicting %{customdata}: log p B − A = %{z:+.3f}",
            colorscale=COMPARE_SCALE, zmid=0, zmin=-bound, zmax=bound,  # green: B more sure
        )  # fmt: skip
        title = "Logit lens, B − A: log p(actual next token) after each layer (green: B more sure)"
        lens_layout(fig, title, L1, "Predicted token", labels[1:])
    key = view_key("compare", model_a, model_b, text)
    texts = [tok_a.decode([i]) for i in ids]  # as they are, for the exported numbers
    kept.put(key, ("compare", lambda: compare_export(model_a, model_b, ids, texts, c)))
    return " ".join(notes), view, fig, key


def compare_export(model_a: str, model_b: str, ids: list[int], texts: list[str], c):
    a, b, diff, kl = (x.tolist() for x in (c.logprobs_a, c.logprobs_b, c.diff, c.kl))
    rows = [
        dict(position=t + 1, token=texts[t + 1], logprob_a=a[t], logprob_b=b[t],
             b_minus_a=diff[t], kl_a_b=kl[t])
        for t in range(len(ids) - 1)
    ]  # fmt: skip
    return rows, {"model_a": model_a, "model_b": model_b, "ids": ids, **inside.describe(c)}


def patch_cap(cfg) -> int:
    """How many tokens patching reads on a model of config `cfg`: it runs (n_layer + 1) × T
    variants of T tokens through the blocks after the patched layer, about 12·n_embd²·T²·L(L+1)
    operations, kept under FLOP_BUDGET (near 10 s on a 2-core CPU), and at most PATCH_MAX
    (gpt2: 30, gpt2-xl: 3)."""
    per_t2 = 12 * cfg.n_embd**2 * cfg.n_layer * (cfg.n_layer + 1)
    return max(2, min(PATCH_MAX, cfg.block_size, int((FLOP_BUDGET / per_t2) ** 0.5)))


@friendly_errors
def patch(model_name: str, clean: str, corrupt: str, target: str):
    """(note, layer × position heatmap of the restored probability); `patch_numbers` writes the
    numbers. Runs the corrupted prompt with the clean run's residual stream put back at one
    (layer, position) at a time; the target is the clean run's top token unless typed."""
    model, tok = get_model(model_name, TASKS)
    texts = [cap_text(t, PATCH_CHARS, what)[0]
             for what, t in (("Clean prompt", clean), ("Corrupted prompt", corrupt))]  # fmt: skip
    clean_ids, corrupt_ids = (tok.encode(t) for t in texts)
    a, b = len(clean_ids), len(corrupt_ids)
    if a != b:
        raise gr.Error(
            f"The clean prompt is {a} tokens and the corrupted one {b}: patching puts a clean "
            "position in place of the same corrupted position, so both need the same number of "
            "tokens. Change a word for one of the same token length."
        )
    if a > (cap := patch_cap(inside.body(model).config)):
        raise gr.Error(
            f"The prompts are {a} tokens; patching on {model_name} reads at most {cap} (it runs "
            f"(layers + 1) × tokens variants, so a request stays near 10 s). Shorten them."
        )
    if a < 1:
        raise gr.Error("The prompts have no tokens: type something first.")
    with torch.inference_mode():
        logits = model(torch.tensor([clean_ids, corrupt_ids], device=inside.body(model).device))
    probs = torch.softmax(logits[:, -1].float(), -1).cpu()
    tid, _, tnote = pick_target(tok, target)
    tid = int(probs[0].argmax()) if tid == "top" else tid
    ttext = tok.decode([tid])
    grid = inside.patch(model, clean_ids, corrupt_ids, tid)  # (L+1, T)
    p_clean, p_corrupt = float(probs[0, tid]), float(probs[1, tid])
    flat = abs(p_clean - p_corrupt) < 1e-6
    restored = (grid - p_corrupt) / (1.0 if flat else p_clean - p_corrupt)
    notes = [
        f"**{a}** tokens each. P({visible(ttext)}) after the clean prompt **{p_clean:.4f}**, "
        f"after the corrupted one **{p_corrupt:.4f}**.",
        *([tnote] if tnote else []),
        "The two runs give the target the same probability, so nothing is to restore: the "
        "colour shows the change from the corrupted value."
        if flat
        else "Each cell: the corrupted run with the clean residual stream put back at that "
        "(layer, position); 1 = the clean probability fully restored, 0 = none of it.",
    ]
    clean_labels, corrupt_labels = token_labels(tok, clean_ids), token_labels(tok, corrupt_ids)
    xlabels = [c if c == d else f"{c} / {d}" for c, d in zip(clean_labels, corrupt_labels)]
    rows, raw = layer_rows(grid.shape[0]), grid.numpy()
    hover = np.array([
        [
            f"{rows[r]}, position {t} ({html.escape(clean_labels[t])!r} clean, "
            f"{html.escape(corrupt_labels[t])!r} corrupted):<br>P = {raw[r, t]:.4f}"
            for t in range(a)
        ]
        for r in range(len(rows))
    ])  # fmt: skip
    fig = heatmap(
        restored.numpy(), np.arange(a), rows, hover, "restored", "%{customdata}<br>restored %{z:.1%}",
        colorscale="Purples", zmin=0, zmax=1,
    )
    title = f"Activation patching: how much of P({visible(ttext)}) each clean (layer, position) restores"
    xaxis = dict(title="Position (clean token / corrupted token where they differ)", tickangle=-40,
                 **ticks(xlabels))  # fmt: skip
    layout(fig, title, min(900, 160 + 34 * len(rows)), 90, 110, xaxis=xaxis, yaxis=dict(title=None))
    key = view_key("patch", model_name, clean, corrupt, target)
    kept.put(key, ("patch", lambda: patch_export(
        model_name, tok, clean_ids, corrupt_ids, tid, grid, restored, p_clean, p_corrupt)))  # fmt: skip
    return " ".join(notes), fig, key


def patch_export(model_name, tok, clean_ids, corrupt_ids, tid, grid, restored, p_clean, p_corrupt):
    names = layer_rows(grid.shape[0])
    g, r = grid.tolist(), restored.tolist()
    rows = [
        dict(row=i, layer=names[i], position=t, clean_token=tok.decode([clean_ids[t]]),
             corrupt_token=tok.decode([corrupt_ids[t]]), prob=g[i][t], restored=r[i][t])
        for i in range(len(names))
        for t in range(len(clean_ids))
    ]  # fmt: skip
    data = {
        "model": model_name, "clean_ids": clean_ids, "corrupt_ids": corrupt_ids,
        "target": {"id": tid, "text": tok.decode([tid])}, "p_clean": p_clean,
        "p_corrupt": p_corrupt, "prob": g, "restored": r,
    }  # fmt: skip
    return rows, data


# Each view by the name that starts its key: what `shown_numbers` draws again when needed.
VIEWS = dict(
    lens=lens, surprisal=surprisal, ablate=ablate, attribution=attribution, compare=compare,
    patch=patch,
)  # fmt: skip
# Views drawn by the same click as another that checks the same model and text first: their
# refusals are said once, by that view (`said_by_twin`).
TWINS = {"surprisal": "lens"}


def view_key(view: str, *inputs: Any) -> tuple:
    """What a view keeps its numbers under, and the page remembers for its Export button: the
    view's name and the inputs it was drawn from (None as "")."""
    return (view, *("" if x is None else x for x in inputs))


@friendly_errors
def shown_numbers(key: Any) -> list[str]:
    """CSV + JSON of the view shown on the page: `key`, which the view returned when drawn, is
    its inputs then (the text box may have changed since)."""
    if not key:
        raise gr.Error("Nothing to export yet: run the view first.")
    view, *inputs = key
    return kept.files(tuple(key), lambda: VIEWS[view](*inputs))


def numbers_endpoint(view: str):
    """The API's `/<view>_numbers`: CSV + JSON of the view drawn from these inputs (drawn again
    when no longer kept); its parameters are the view's own."""

    def numbers(*inputs: Any) -> list[str]:
        return shown_numbers(view_key(view, *inputs))

    numbers.__name__ = numbers.__qualname__ = f"{view}_numbers"
    numbers.__signature__ = inspect.signature(VIEWS[view]).replace(return_annotation=list[str])
    return numbers


def caps_markdown() -> str:
    """The token caps of each view for the GPT-2 sizes, as a Markdown table."""
    from gpt.config import PRESETS

    views = {"lens": "Logit lens", "surprisal": "Surprisal", "ablate": "Ablation"}
    views |= {"gradient": "Gradient × input", "compare": "Compare (per model)"}
    head = "| Model | " + " | ".join(views.values()) + " | Occlusion (tokens dropped) |"
    lines = [head, "|---" * (len(views) + 2) + "|"]
    for size in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"):
        cells = [token_cap(PRESETS[size], v) for v in views]
        cells.append(token_cap(PRESETS[size], "occlusion", cells[3]))  # drops of a gradient's cap
        lines.append(f"| {size} | " + " | ".join(map(str, cells)) + " |")
    return (
        f"Each view reads at most {MAX_TOKENS} tokens (and never more than the model's context). "
        "On big models it reads fewer, so that a request stays near 10 s on a 2-core CPU; the "
        "note under the text says when a cap cut the text. Tokens per view:\n\n" + "\n".join(lines)
    )


def on_model_change(
    model_name: str, heads: Any, text: str = "", clean: str = "", corrupt: str = ""
):
    """The head grid fitted to the picked model (heads it lacks unticked, and said); the texts
    the model's world's own, unless the visitor wrote theirs (`pages.common.texts.follow`)."""
    n_layer, n_head = model_shape(model_name)
    valid = {v for _, v in head_choices(n_layer, n_head)}
    still = [h for h in (heads or []) if h in valid]
    if dropped := [h for h in (heads or []) if h not in valid]:
        announce(
            f"{model_name} has {n_layer} layers of {n_head} heads: unticked "
            f"{', '.join(dropped)}, which it does not have."
        )
    return (
        gr.CheckboxGroup(choices=head_choices(n_layer, n_head), value=still),
        grid_style(n_head),
        ", ".join(still),
        *(follow(page, box, model_name) for page, box in
          (("inside", text), ("patch-clean", clean), ("patch-corrupt", corrupt))),
    )  # fmt: skip


give_way = GiveWay()  # the page-load and model-change draws give way to the visitor's own


def first_draw(view: str):
    """`view` drawn on page load and on a model change; with no model yet, nothing (the lens
    note says why). It gives way to the visitor's own request for the view (`GiveWay`)."""

    def draw(*inputs: Any):
        if default_registry().default(TASKS) is None:
            return (model_note(TASKS), None, None, None) if view == "lens" else ("", "", None)
        return VIEWS[view](*inputs)

    return give_way.auto(view, draw)


def build(demo: gr.Blocks) -> Page:
    with gr.Tab("Inside", id="inside"):
        gr.Markdown(
            "Look inside a language model: what it would predict after each layer (the *logit "
            "lens*), how surprised it is by each token, what happens when you silence attention "
            "heads, which tokens pushed a prediction, and how two models differ on the same "
            f"text. Up to {MAX_TOKENS} tokens; big models read fewer, and the note says so. "
            "Save any chart with its camera button; each view's Export button writes its numbers "
            "as CSV and JSON."
        )
        model = model_header(TASKS, "ins")
        with gr.Accordion("Caps for big models", open=False, elem_id="ins-caps-box"):
            gr.Markdown(caps_markdown(), elem_id="ins-caps")
        text = gr.Textbox(label="Text", value=text_for("inside"), lines=3, elem_id="ins-text")
        with gr.Row():
            label = "Token to follow through the layers (blank: the model's own guess)"
            target = gr.Textbox(label=label, elem_id="ins-target", max_lines=1, scale=3)
            run_btn = gr.Button("Look inside", variant="primary", elem_id="ins-run", scale=1)
        note = gr.Markdown(elem_id="ins-note")
        numbers = {}  # each view's Export button and the download box it fills

        with gr.Accordion("Logit lens", open=True, elem_id="ins-lens-box"):
            lens_plot = gr.Plot(label="Logit lens", elem_id="ins-lens")
            look_for("the layer where a column's guess becomes the right next token: early layers "
                     "often just repeat the input word.")  # fmt: skip
            decide_plot = gr.Plot(label="When does the model decide?", elem_id="ins-decide")
            look_for("a late jump: the last blocks make the decision; a steady rise: it builds up "
                     "block by block.")  # fmt: skip
            numbers["lens"] = numbers_button("Lens numbers", "ins-lens-files")

        with gr.Accordion("Surprisal", open=True, elem_id="ins-surprisal-box"):
            ppl = gr.Markdown(elem_id="ins-ppl")
            surprisal_view = gr.HTML(elem_id="ins-surprisal")
            look_for("names and new facts are dark (surprising); the ends of familiar phrases are "
                     "white.")  # fmt: skip
            numbers["surprisal"] = numbers_button("Surprisal numbers", "ins-surprisal-files")

        with gr.Accordion("Head ablation", open=False, elem_id="ins-ablate-box"):
            gr.Markdown(
                "Tick heads to silence, then run: *zero* removes a head's output, *mean* "
                "replaces it by its average over the text's positions (it keeps the head's "
                "constant part). Compare the next-token distribution and each token's loss."
            )
            n_layer, n_head = model_shape(model.value)
            style = gr.HTML(grid_style(n_head), elem_id="ins-heads-style")
            choices = head_choices(n_layer, n_head)
            heads = gr.CheckboxGroup(choices, label="Heads (L<layer>H<head>)", elem_id="ins-heads")
            # What /ablate reads: the ticked heads as text, so the API takes any model's heads
            # (a checkbox group only accepts the choices it was built with).
            label = "Heads to ablate (L<layer>H<head>, comma-separated; the grid fills this)"
            heads_text = gr.Textbox(label=label, elem_id="ins-heads-text", max_lines=1)
            with gr.Row():
                mode = gr.Radio(MODES, value="zero", label="Ablation", elem_id="ins-mode")
                ablate_btn = gr.Button("Ablate and re-run", elem_id="ins-ablate-run")
            ablate_note = gr.Markdown(elem_id="ins-ablate-note")
            with gr.Row(equal_height=False):
                ablate_next = gr.Plot(label="Next token", elem_id="ins-ablate-next")
                look_for("a head whose silencing raises the loss at a few tokens only: that is the "
                         "job it does.")  # fmt: skip
                ablate_loss = gr.Plot(label="Per-token loss", elem_id="ins-ablate-loss")
            numbers["ablate"] = numbers_button("Ablation numbers", "ins-ablate-files")

        with gr.Accordion("Which tokens pushed the prediction", open=False, elem_id="ins-attr-box"):
            method = gr.Radio(METHODS, value="occlusion", label="Method", elem_id="ins-method")
            attr_btn = gr.Button("Explain the next token", elem_id="ins-attr-run")
            attr_note = gr.Markdown(elem_id="ins-attr-note")
            attr_view = gr.HTML(elem_id="ins-attr")
            look_for("the few tokens that carry the prediction; most of the text barely matters.")
            numbers["attribution"] = numbers_button("Attribution numbers", "ins-attr-files")

        with gr.Accordion("Compare two models", open=False, elem_id="ins-compare-box"):
            gr.Markdown(
                "Pick a second model with the same tokenizer (e.g. `starter` and a job fine-tuned "
                "from it) and see, token by token, which one found the text more likely."
            )
            with gr.Row():
                model_b = model_picker(TASKS, "ins-model-b", label="Model B (A is the one above)")
                compare_btn = gr.Button("Compare", elem_id="ins-compare-run")
            compare_note = gr.Markdown(elem_id="ins-compare-note")
            compare_view = gr.HTML(elem_id="ins-compare")
            compare_lens = gr.Plot(label="Logit lens difference", elem_id="ins-compare-lens")
            look_for("green where the fine-tuned model learned the text's style; the layers where "
                     "the difference appears.")  # fmt: skip
            numbers["compare"] = numbers_button("Comparison numbers", "ins-compare-files")

        with gr.Accordion("Activation patching", open=False, elem_id="ins-patch-box"):
            gr.Markdown(
                "Where does the model keep what makes its answer? Run a *corrupted* prompt, "
                "but put back the *clean* prompt's residual stream at one layer and position: "
                "how much of the clean answer's probability comes back? Both prompts need the "
                "same number of tokens."
            )
            with gr.Row():
                patch_clean, patch_corrupt = (
                    gr.Textbox(label=f"{what} prompt", value=text_for(f"patch-{name}"),
                               elem_id=f"ins-patch-{name}", max_lines=2)
                    for what, name in (("Clean", "clean"), ("Corrupted", "corrupt"))
                )  # fmt: skip
            with gr.Row():
                label = "Target token (blank: the clean run's top token)"
                patch_target = gr.Textbox(label=label, elem_id="ins-patch-target", max_lines=1,
                                          scale=3)  # fmt: skip
                patch_btn = gr.Button("Patch", elem_id="ins-patch-run", scale=1)
            patch_note = gr.Markdown(elem_id="ins-patch-note")
            patch_plot = gr.Plot(label="Activation patching", elem_id="ins-patch")
            look_for("a bright cell at the changed word in early layers, moving to the last "
                     "position in late layers: where the fact travels.")  # fmt: skip
            numbers["patch"] = numbers_button("Patching numbers", "ins-patch-files")

        run = heavy("inside", 2)
        # What each view shows is remembered per visitor (its inputs when drawn), so an Export
        # button writes the numbers of the chart on the page, whatever the boxes say since.
        shown = {v: gr.State(None) for v in VIEWS}
        views = {  # each view's triggers (a button's click, a text box's submit), inputs, outputs
            "lens": ([run_btn, text, target], [model, text, target], [note, lens_plot, decide_plot]),
            "surprisal": ([run_btn, text], [model, text], [surprisal_view, ppl]),
            "ablate": ([ablate_btn], [model, text, heads_text, mode],
                       [ablate_note, ablate_next, ablate_loss]),
            "attribution": ([attr_btn], [model, text, method, target], [attr_view, attr_note]),
            "compare": ([compare_btn], [model, model_b, text],
                        [compare_note, compare_view, compare_lens]),
            "patch": ([patch_btn], [model, patch_clean, patch_corrupt, patch_target],
                      [patch_note, patch_plot]),
        }  # fmt: skip
        heads.input(lambda values: ", ".join(values or []), heads, heads_text,
                    api_visibility="private", queue=False)  # fmt: skip
        fit = (
            [model, heads, text, patch_clean, patch_corrupt],
            [heads, style, heads_text, text, patch_clean, patch_corrupt],
        )
        # The views drawn on their own (on page load, on a model change) give way to the
        # visitor's own click or Enter (`first_draw`), which `give_way.on` notes at once.
        auto = ("lens", "surprisal")
        for start in (  # queued on a change: its warning (heads the new model lacks) needs it
            model.change(on_model_change, *fit, api_visibility="private"),
            demo.load(on_model_change, *fit, api_visibility="private", queue=False),
        ):
            for view in auto:  # drawn at once, one after the other
                _, inputs, outputs = views[view]
                start = start.then(first_draw(view), inputs, [*outputs, shown[view]],
                                   api_visibility="private", **run)  # fmt: skip
        for view, (triggers, inputs, outputs) in views.items():
            triggers = [t.click if isinstance(t, gr.Button) else t.submit for t in triggers]
            draw = said_by_twin(VIEWS[view]) if view in TWINS else VIEWS[view]
            gr.on(triggers, draw, inputs, [*outputs, shown[view]], api_name=view, **run)
            if view in auto:
                give_way.on(view, triggers)
            # its numbers, written when asked (thousands of rows for the lens): the page's
            # button exports the view shown; the API takes the view's inputs
            button, files = numbers[view]
            button.click(shown_numbers, shown[view], files, api_visibility="private", **run)
            api_only = gr.Button(visible=False, elem_id=f"ins-{view}-numbers-api")
            api_only.click(numbers_endpoint(view), inputs, files, api_name=f"{view}_numbers", **run)
    return Page([Picker("Inside", TASKS, model)])
