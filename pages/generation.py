"""Generation tab: stream a continuation and watch the sampling settings shape every token."""

from __future__ import annotations

import time

import gradio as gr
import plotly.graph_objects as go

from gpt.registry import default_registry
from gpt.sampling import MIN_TEMPERATURE, Candidate, SamplingError, stream
from pages.common import (
    check_text,
    clamp,
    friendly_errors,
    model_card_box,
    model_note,
    model_picker,
    model_status,
    progress_lines,
    wait_model,
)

TASKS = ("lm", "instruct")
MAX_NEW_TOKENS = 256
MAX_PROMPT_CHARS = 10_000
N_CANDIDATES = 10
CHART_EVERY = 3  # redraw the candidates chart every few tokens so streaming stays smooth
EXAMPLES = [
    ["Once upon a time, in a small village by the sea,", 0.8, 40, 0.95, 1.1, 60, 0],
    ["The robot looked at the garden and said", 0.0, 0, 1.0, 1.0, 40, -1],
    ["Tom and Lily went to the market to buy", 1.3, 0, 0.9, 1.3, 60, 7],
]


def visible(text: str) -> str:
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "→") or "∅"


def sampling_args(temperature, top_k, top_p, repetition_penalty, max_new_tokens, seed) -> dict:
    """Server-side guard of every slider: clamp to its range, reject NaN, say what happened."""
    t = clamp(temperature, 0, 2, "Temperature")
    if 0 < t < MIN_TEMPERATURE:
        t = MIN_TEMPERATURE
    seed = clamp(seed, -1, 2**31 - 1, "Seed", integer=True)
    return dict(
        temperature=t,
        top_k=clamp(top_k, 0, 200, "Top-k", integer=True),
        top_p=clamp(top_p, 0.05, 1, "Top-p"),
        repetition_penalty=clamp(repetition_penalty, 1, 2, "Repetition penalty"),
        max_new_tokens=clamp(max_new_tokens, 1, MAX_NEW_TOKENS, "Max new tokens", integer=True),
        seed=None if seed < 0 else seed,
    )


def candidates_figure(step: int, event, chosen_text: str) -> go.Figure:
    """Horizontal bars of the top candidates at one step, the chosen token in orange (added as
    an extra bar when sampling picked a token outside the top N)."""
    cands = list(event.candidates)
    chosen_in_top = any(c.token_id == event.token_id for c in cands)
    if not chosen_in_top:
        cands.append(Candidate(event.token_id, event.prob, float("nan"), chosen_text))
    labels = [f"{i + 1}. {visible(c.text)}" for i, c in enumerate(cands)]
    if not chosen_in_top:
        labels[-1] = f"chosen: {visible(chosen_text)}"
    colours = ["#e4572e" if c.token_id == event.token_id else "#4a6fa5" for c in cands]
    fig = go.Figure()
    fig.add_bar(
        y=labels,
        x=[c.prob for c in cands],
        orientation="h",
        marker_color=colours,
        name="sampled from",
        hovertemplate="%{y}: %{x:.3f}<extra>after settings</extra>",
    )
    fig.add_bar(
        y=labels,
        x=[c.raw_prob if c.raw_prob == c.raw_prob else None for c in cands],  # NaN: unknown
        orientation="h",
        marker=dict(color="rgba(0,0,0,0)", line=dict(color="#333", width=1)),
        name="model alone",
        hovertemplate="%{y}: %{x:.3f}<extra>model alone</extra>",
    )
    extra = "" if chosen_in_top else f" (outside the top {len(cands) - 1})"
    top = max([c.prob for c in cands] + [c.raw_prob for c in cands if c.raw_prob == c.raw_prob])
    fig.update_layout(
        title=dict(
            text=f"Step {step}: top candidates, chosen {visible(chosen_text)!r}{extra}",
            font=dict(size=14),
        ),
        barmode="overlay",
        height=380,
        margin=dict(l=140, r=20, t=50, b=50),
        xaxis=dict(title="probability", range=[0, min(1.0, top * 1.15) or 1.0]),
        yaxis=dict(autorange="reversed"),
        legend=dict(orientation="h", y=-0.18),
    )
    return fig


@friendly_errors
def generate(
    model_name: str,
    prompt: str,
    temperature: float,
    top_k: float,
    top_p: float,
    repetition_penalty: float,
    max_new_tokens: float,
    seed: float,
):
    """Yield (continuation so far, candidates chart or skip, status line or skip) per token."""
    prompt = check_text(prompt, MAX_PROMPT_CHARS, "Prompt")
    args = sampling_args(temperature, top_k, top_p, repetition_penalty, max_new_tokens, seed)
    model, tok = yield from progress_lines(
        wait_model(model_name, TASKS), lambda line: (gr.skip(), gr.skip(), f"Downloading {line}")
    )
    text = ""
    start = time.perf_counter()
    try:
        events = stream(model, tok, prompt, n_candidates=N_CANDIDATES, **args)
        for step, event in enumerate(events, 1):
            text += event.text
            last = event.finish_reason is not None
            if step == 1 or last or step % CHART_EVERY == 0:
                rate = step / max(time.perf_counter() - start, 1e-6)
                status = f"{step} / {args['max_new_tokens']} tokens · {rate:.0f} tokens/s"
                if last:
                    why = {
                        "eot": "the model wrote <|endoftext|>",
                        "length": "max new tokens",
                        "stop": "a stop string",
                    }[event.finish_reason]
                    status += f" · stopped: {why}"
                chosen = tok.token_bytes(event.token_id).decode("utf-8", "replace")
                yield text, candidates_figure(step, event, chosen), status
            else:
                yield text, gr.skip(), gr.skip()
    except SamplingError as e:
        raise gr.Error(f"{e}. Adjust the setting and try again.") from None


def first_render(*args):
    """What the tab shows on page load: a short run of the default example (16 tokens)."""
    *rest, max_new_tokens, seed = args
    if default_registry().default(TASKS) is None:
        yield "", None, model_note(TASKS)
        return
    yield from generate(*rest, min(16, max_new_tokens or 16), seed)


def build(demo: gr.Blocks) -> None:
    with gr.Tab("Generate", id="generate"):
        gr.Markdown(
            "Write a prompt and watch the model continue it token by token. The chart shows the "
            "top candidates at each step (solid: after your settings; outline: the model alone)."
        )
        with gr.Row():
            model = model_picker(TASKS, "gen-model")
            model_status(model, TASKS, "gen-model-note")
        model_card_box(model, "gen-card")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                prompt = gr.Textbox(
                    label="Prompt",
                    value=EXAMPLES[0][0],
                    lines=3,
                    elem_id="gen-prompt",
                    max_length=MAX_PROMPT_CHARS,
                )
                with gr.Row():
                    run = gr.Button("Generate", variant="primary", elem_id="gen-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
                output = gr.Textbox(
                    label="Generated continuation",
                    lines=8,
                    elem_id="gen-out",
                    interactive=False,
                    autoscroll=True,
                )
                status = gr.Markdown(elem_id="gen-status")
            with gr.Column(scale=2):
                temperature = gr.Slider(
                    0,
                    2,
                    value=0.8,
                    step=0.05,
                    label="Temperature",
                    info="0 = greedy (always the most likely token); higher = more surprising",
                    elem_id="gen-temp",
                )
                top_k = gr.Slider(
                    0,
                    200,
                    value=40,
                    step=1,
                    label="Top-k",
                    info="keep only the k most likely tokens (0 = off)",
                    elem_id="gen-topk",
                )
                top_p = gr.Slider(
                    0.05,
                    1,
                    value=0.95,
                    step=0.01,
                    label="Top-p",
                    info="keep the fewest tokens whose probabilities sum to p",
                    elem_id="gen-topp",
                )
                rep = gr.Slider(
                    1,
                    2,
                    value=1.1,
                    step=0.05,
                    label="Repetition penalty",
                    info="> 1 discourages tokens already used",
                    elem_id="gen-rep",
                )
                max_new = gr.Slider(
                    1, MAX_NEW_TOKENS, value=60, step=1, label="Max new tokens", elem_id="gen-max"
                )
                seed = gr.Number(
                    value=0, precision=0, label="Seed (-1 = random)", elem_id="gen-seed"
                )
        chart = gr.Plot(label="Next-token candidates", elem_id="gen-chart")
        inputs = [model, prompt, temperature, top_k, top_p, rep, max_new, seed]
        gr.Examples(EXAMPLES, inputs[1:], label="Example prompts and settings")

        event = gr.on(
            [run.click, prompt.submit],
            generate,
            inputs,
            [output, chart, status],
            api_name="generate",
            concurrency_limit=4,
            concurrency_id="generate",
            show_progress="hidden",
        )
        stop.click(None, None, None, cancels=[event], api_visibility="private", queue=False)
        demo.load(
            first_render,
            inputs,
            [output, chart, status],
            api_visibility="private",
            concurrency_id="generate",
            show_progress="hidden",
        )
