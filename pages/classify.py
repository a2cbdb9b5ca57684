"""Spam tab: a fine-tuned classifier's label, its spam probability, and how it evolved per token."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go
import torch

from gpt.jobs import JobManager
from gpt.lab.oneclick import ONE_CLICK
from pages import oneclick
from pages.common.heavy import heavy
from pages.common.inputs import announce, cap_text, friendly_errors, said_by_twin
from pages.common.models import Page, Picker, card_of, get_model, model_header, model_note
from pages.common.render import layout, md, ticks, token_labels
from pages.common.views import METHODS, attribution_result, export_files, look_for, numbers_box

TASKS = ("classify",)
MAX_CHARS = 5_000
NOT_DRAWN = "*Not drawn for this message: see the error above.*"
# Written for this tab in the style of real texts (none is taken from a dataset).
EXAMPLES = [
    "hey u still coming 2nite? running a bit l8 but will b there by 8. save me a seat x",
    "CONGRATS! Ur number has won a £750 cash prize! To claim txt CASH to 81234 now. "
    "T&Cs apply, 18+ only, 150p/msg",
    "ok cant do lunch 2day, mum needs the car :( tmrw instead? same place",
    "URGENT: ur mobile acct has an unclaimed reward. Call 09050001234 b4 midnight to collect. "
    "Landline only, 25p/min",
    "Did u get my last msg? Dont forget to pick up milk on ur way home pls",
    "FREE ringtone every week! Reply YES to get ur 1st tone free, then 3 per wk at 150p. "
    "Txt STOP to end",
]


def spam_index(labels: tuple[str, ...]) -> int:
    """The class read as "spam": a label named spam, else the last class."""
    lowered = [label.lower() for label in labels]
    return lowered.index("spam") if "spam" in lowered else len(labels) - 1


def trace_figure(labels: list[str], probs: list[float], name: str) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=list(range(len(probs))),
            y=probs,
            mode="lines+markers",
            line=dict(color="#c0392b", width=2),
            hovertext=labels,
            hovertemplate="after %{hovertext}: %{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(y=0.5, line=dict(dash="dash", color="#888"), annotation_text="0.5")
    return layout(
        fig, f"P({name}) after each token", 380,
        xaxis=dict(title="Token (message read up to here)", tickangle=-60, **ticks(labels)),
        yaxis=dict(title=f"P({name})", range=[0, 1]),
    )  # fmt: skip


def limit_line(model_name: str) -> str:
    """The model's most important limit from its card, as one line under the verdict ("" when
    the card names none)."""
    card = card_of(model_name)
    if card is None or not card.limits:
        return ""
    return f"⚠️ *Limit: {md(card.limits[0])}* (more under *About this model*)"


@friendly_errors
def classify(model_name: str, message: str) -> tuple[dict, str, go.Figure]:
    """(label confidences, summary line, per-token trace of the spam probability)."""
    message, cut = cap_text(message, MAX_CHARS, "Message")
    model, tok = get_model(model_name, TASKS)
    if not hasattr(model, "trace"):
        raise gr.Error(f"{model_name!r} is not a classifier; pick a spam model.")
    ids = tok.encode(message)
    cap = model.config.block_size
    note = f" {announce(cut)}" if cut else ""
    if len(ids) > cap:
        note += f" Only the first {cap} of {len(ids)} tokens were read."
        ids = ids[:cap]
    with torch.inference_mode():
        probs = model.trace(torch.tensor([ids], device=model.gpt.device)).float().cpu()
    final = probs[-1].tolist()
    labels = model.labels
    k = spam_index(labels)
    best = max(range(len(labels)), key=lambda i: final[i])
    summary = (
        f"**{labels[best]}** · P({labels[k]}) = **{final[k]:.3f}** over {len(ids)} tokens.{note}"
    )
    if limit := limit_line(model_name):
        summary += f"\n\n{limit}"
    fig = trace_figure(token_labels(tok, ids), probs[:, k].tolist(), labels[k])
    return {label: final[i] for i, label in enumerate(labels)}, summary, fig


@friendly_errors
def spam_attribution(model_name: str, message: str, method: str):
    """(coloured message, note, CSV + JSON): which tokens pushed P(spam) up or down."""
    model, _ = get_model(model_name, TASKS)
    spam = model.labels[spam_index(model.labels)] if hasattr(model, "labels") else ""
    view, note, rows, data = attribution_result(model_name, message, method, spam, TASKS)
    return view, note, export_files("attribution", rows, data)


@friendly_errors
def trace_numbers(model_name: str, message: str) -> list[str]:
    """CSV + JSON of the trace chart: the class probabilities after each token."""
    message, _ = cap_text(message, MAX_CHARS, "Message")  # `classify` said what was cut
    model, tok = get_model(model_name, TASKS)
    ids = tok.encode(message)[: model.config.block_size]
    with torch.inference_mode():
        probs = model.trace(torch.tensor([ids], device=model.gpt.device)).float().cpu()
    rows = [
        {
            "position": t,
            "token": tok.decode([i]),
            **{f"P({lab})": float(p) for lab, p in zip(model.labels, probs[t])},
        }
        for t, i in enumerate(ids)
    ]
    return export_files("spam-trace", rows, {"model": model_name, "ids": ids, "trace": rows})


def first_attribution(model_name: str, message: str, method: str):
    if not model_name:
        return "", "", None
    return spam_attribution(model_name, message, method)


def first_render(model_name: str, message: str):
    if not model_name:
        return None, model_note(TASKS), None
    return classify(model_name, message)


def build(
    demo: gr.Blocks, manager: JobManager | None = None, token: gr.BrowserState | None = None
) -> Page:
    """The tab; with a jobs `manager`, also the one-click GPT-2 fine-tune button."""
    with gr.Tab("Spam classifier", id="classify"):
        gr.Markdown(
            "A GPT fine-tuned to tell spam from ham reads the message; the chart shows what it "
            "would answer had the message ended at each token."
        )
        model = model_header(TASKS, "clf", token)
        if manager is not None:
            oneclick.build(manager, ONE_CLICK["gpt2-spam"], model, TASKS, demo, token)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                message = gr.Textbox(
                    label="Message",
                    value=EXAMPLES[1],
                    lines=4,
                    elem_id="clf-text",
                )
                classify_btn = gr.Button("Classify", variant="primary", elem_id="clf-run")
                gr.Examples(EXAMPLES, [message], label="Example messages")
            with gr.Column(scale=2):
                label = gr.Label(label="Prediction", elem_id="clf-label")
                summary = gr.Markdown(elem_id="clf-summary")
        chart = gr.Plot(label="Spam probability, token by token", elem_id="clf-chart")
        look_for(
            'the token where the line jumps: that word tipped the verdict ("FREE", "call", a price).'
        )
        trace_files = numbers_box("Trace numbers", "clf-trace-files")
        with gr.Accordion(
            "Which tokens pushed P(spam) up or down", open=True, elem_id="clf-attr-box"
        ):
            attr_method = gr.Radio(METHODS, value="occlusion", label="Method", elem_id="clf-method")
            attr_note = gr.Markdown(elem_id="clf-attr-note")
            attr_view = gr.HTML(elem_id="clf-attr")
            attr_files = numbers_box("Attribution numbers", "clf-attr-files")
        attr_io = ([model, message, attr_method], [attr_view, attr_note, attr_files])
        run = heavy("classify", 4)
        read = gr.on(
            [
                classify_btn.click,
                message.submit,
                model.change,
            ],  # a new pick (e.g. a finished job) re-reads
            classify,
            [model, message],
            [label, summary, chart],
            api_name="classify",
            **run,
        )
        # what follows reads the box again: should it hold a new text by then, `classify` (on
        # its run) is the one to say a refusal, not a pop-up while the visitor types
        read.then(said_by_twin(spam_attribution), *attr_io, api_visibility="private",
                  **run).then(said_by_twin(trace_numbers), [model, message], trace_files,
                              api_visibility="private")  # fmt: skip
        # `.then` runs only after a success: after a refusal, no attribution of the last text
        # stays beside the error as if it were this one's
        read.failure(lambda: ("", NOT_DRAWN, None, None), None,
                     [attr_view, attr_note, attr_files, trace_files], api_visibility="private",
                     queue=False)  # fmt: skip
        attr_method.change(spam_attribution, *attr_io, api_visibility="private", **run)
        demo.load(
            first_render, [model, message], [label, summary, chart], api_visibility="private", **run
        ).then(first_attribution, *attr_io, api_visibility="private", **run)
    return Page([Picker("Spam classifier", TASKS, model)])
