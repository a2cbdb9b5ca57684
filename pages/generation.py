"""Generation tab: stream a continuation and watch the sampling settings shape every token."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from typing import Any

import gradio as gr
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from gpt.lab.registry import default_registry
from gpt.sampling import Candidate, SamplingConfig, SamplingError, sampling_stages, stream
from pages.common.heavy import batched, heavy, sampler_for
from pages.common.inputs import (
    announce,
    check_text,
    clamp,
    clamp_note,
    friendly_errors,
    number_input,
    sampling_args,
    slider_input,
)
from pages.common.limits import state_budget
from pages.common.models import Page, Picker, model_header, model_note, progress_lines, wait_model
from pages.common.pace import CHART_RATE, STREAMS, TEXT_RATE, Pace
from pages.common.render import fast_figure, layout, token_labels, visible
from pages.common.texts import GENERATE_EXAMPLES, follow, text_for, world
from pages.common.views import export_files, look_for, numbers_box

TASKS = ("lm", "instruct")
MAX_NEW_TOKENS = 256
MAX_PROMPT_CHARS = 10_000
N_CANDIDATES = 10
PIPELINE_TOKENS = 12  # tokens shown in each panel of the sampling pipeline
CHOSEN, KEPT, CUT = "#e4572e", "#4a6fa5", "#d0d0d0"


STOPPED = "stopped: you pressed Stop"
FINISH = {
    "eot": "the model wrote <|endoftext|>",
    "length": "max new tokens",
    "stop": "a stop string",
}


def candidates_figure(
    step: int, token_id: int, prob: float, candidates, chosen_text: str
) -> go.Figure:
    """Horizontal bars of the top `candidates` at one step, the chosen token (`token_id`,
    sampled with probability `prob`) in orange, added as an extra bar when sampling picked a
    token outside the top N."""
    cands = list(candidates)
    chosen_in_top = any(c.token_id == token_id for c in cands)
    if not chosen_in_top:
        cands.append(Candidate(token_id, prob, float("nan"), chosen_text))
    labels = [f"{i + 1}. {visible(c.text)}" for i, c in enumerate(cands)]
    if not chosen_in_top:
        labels[-1] = f"chosen: {visible(chosen_text)}"
    colours = [CHOSEN if c.token_id == token_id else KEPT for c in cands]
    extra = "" if chosen_in_top else f" (outside the top {len(cands) - 1})"
    top = max([c.prob for c in cands] + [c.raw_prob for c in cands if c.raw_prob == c.raw_prob])
    return fast_figure(candidates_spec(step, labels, cands, colours, chosen_text, extra, top))


def candidates_spec(step, labels, cands, colours, chosen_text, extra, top) -> dict:
    """The candidates chart as plotly's plain dict (built unvalidated: see `fast_figure`)."""
    bar = dict(type="bar", y=labels, orientation="h")
    return {
        "data": [
            {
                **bar,
                "x": [c.prob for c in cands],
                "marker": {"color": colours},
                "name": "sampled from",
                "hovertemplate": "%{y}: %{x:.3f}<extra>after settings</extra>",
            },
            {
                **bar,
                "x": [c.raw_prob if c.raw_prob == c.raw_prob else None for c in cands],  # NaN
                "marker": {"color": "rgba(0,0,0,0)", "line": {"color": "#333", "width": 1}},
                "name": "model alone",
                "hovertemplate": "%{y}: %{x:.3f}<extra>model alone</extra>",
            },
        ],
        "layout": {
            "title": {
                "text": f"Step {step}: top candidates, chosen {visible(chosen_text)!r}{extra}",
                "font": {"size": 14},
            },
            "barmode": "overlay",
            "height": 380,
            "margin": {"l": 140, "r": 20, "t": 50, "b": 50},
            "xaxis": {"title": {"text": "probability"}, "range": [0, min(1.0, top * 1.15) or 1.0]},
            "yaxis": {"autorange": "reversed"},
            "legend": {"orientation": "h", "y": -0.18},
        },
    }


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
    request: gr.Request | None = None,
):
    """Yield (continuation so far, candidates chart or skip, status line, the run) as the run
    streams: the text at most `TEXT_RATE` times a second, the chart at most `CHART_RATE` times,
    both at the end. The page's Stop button (`request_stop`) ends the run after the current
    token, its status saying "stopped: you pressed Stop"."""
    settings = (temperature, top_k, top_p, repetition_penalty, max_new_tokens, seed)
    stop = _stop_flag(request)  # from the start: Stop while the model loads counts too
    try:
        yield from _generate(stop, model_name, prompt, settings)
    finally:
        _drop_flag(request, stop)


def _generate(stop: threading.Event, model_name: str, prompt: str, settings: tuple):
    """`generate`'s run, `settings` its sliders in order, ended early once `stop` is set."""
    prompt = check_text(prompt, MAX_PROMPT_CHARS, "Prompt")
    cfg = sampling_args(*settings, MAX_NEW_TOKENS, n_candidates=N_CANDIDATES, keep_logits=True)
    seed_note = ""
    if cfg.seed is None:  # -1: draw one, and say which, so the run can be repeated
        cfg = dataclasses.replace(cfg, seed=random.randrange(2**31))
        seed_note = f" · seed {cfg.seed} (drawn for -1)"
    model, tok = yield from progress_lines(
        wait_model(model_name, TASKS),
        lambda line: (gr.skip(), gr.skip(), f"Downloading {line}", gr.skip()),
    )
    text = ""
    start = time.perf_counter()
    # The last run, kept for the sampling-pipeline view: each step's raw logits, so moving a
    # slider redraws the pipeline without running the model again.
    run = {"prompt_ids": tok.encode(prompt), "tokens": [], "logits": [], "tok": tok, "steps": []}
    block = getattr(model, "gpt", model).config.block_size
    if len(run["prompt_ids"]) > block:  # the sampler keeps the prompt's last `block` tokens
        seed_note += " · " + announce(
            f"The prompt is {len(run['prompt_ids']):,} tokens; the model reads only its last "
            f"{block:,} (its context)."
        )
    if stop.is_set():  # pressed while the model was loading or downloading
        yield gr.skip(), gr.skip(), f"0 / {cfg.max_new_tokens} tokens · {STOPPED}", gr.skip()
        return
    text_pace, chart_pace = Pace(TEXT_RATE, streams=STREAMS), Pace(CHART_RATE, streams=STREAMS)
    # Concurrent runs share decode steps (`sampler_for`: the model's batcher); this loop, the
    # candidates and the charts run in this visitor's thread. Closing the stream (Stop, the
    # end) takes the run's row out of the batch at once.
    events = stream(model, tok, prompt, cfg=cfg, sampler=sampler_for(model))
    try:
        with STREAMS.running():  # past 4 streams at once, each gets a share of the rates
            for step, event in enumerate(events, 1):
                text += event.text
                run["tokens"].append(event.token_id)
                run["steps"].append((event.prob, event.candidates))
                run["logits"].append(event.logits)
                last = event.finish_reason is not None or stop.is_set()
                if not (last or text_pace.due()):
                    continue  # coalesced: the page gets a few updates a second, not one a token
                rate = step / max(time.perf_counter() - start, 1e-6)
                status = f"{step} / {cfg.max_new_tokens} tokens · {rate:.0f} tokens/s{seed_note}"
                if event.finish_reason is not None:
                    status += f" · stopped: {FINISH[event.finish_reason]}"
                elif last:
                    status += f" · {STOPPED}"
                chart = gr.skip()
                if last or chart_pace.due():
                    chart = step_chart(run, step)
                keep(run)
                yield text, chart, status, run
                if last:
                    break
    except SamplingError as e:
        raise gr.Error(f"{e}. Adjust the setting and try again.") from None
    finally:
        events.close()


DROPPED = (
    "The last run's kept logits were dropped to make room for newer runs (the server keeps a "
    "fixed amount for all visitors, oldest dropped first); generate again to explore its "
    "sampling pipeline."
)


def _drop_logits(run: dict) -> None:
    run["logits"] = []
    run["dropped"] = True


def keep(run: dict) -> None:
    """Count `run`'s kept logits against the app's session-state budget (`state_budget`); the
    oldest runs' logits are dropped first when it is full."""
    size = sum(t.numel() * t.element_size() for t in run["logits"] if t is not None)
    state_budget().keep(run, size, _drop_logits)


# The Stop flags of each page session's runs in progress (usually one; the page-load run and a
# click can overlap). Stop sets them all.
_stops: dict[str, set[threading.Event]] = {}
_stops_lock = threading.Lock()


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def _stop_flag(request: gr.Request | None) -> threading.Event:
    """A fresh Stop flag for a run of this session (none to share when there is no session)."""
    flag = threading.Event()
    if _session(request):
        with _stops_lock:
            _stops.setdefault(_session(request), set()).add(flag)
    return flag


def _drop_flag(request: gr.Request | None, flag: threading.Event) -> None:
    with _stops_lock:
        flags = _stops.get(_session(request), set())
        flags.discard(flag)
        if not flags:
            _stops.pop(_session(request), None)


def request_stop(request: gr.Request):
    """Stop: the session's runs end after their current token and say so (see `generate`)."""
    with _stops_lock:
        flags = list(_stops.get(_session(request), ()))
    for flag in flags:
        flag.set()


def _pipeline_rows(run: dict, step: int, cfg: SamplingConfig):
    """The stages at one step of the last run, from its kept logits (no model call)."""
    logits = run["logits"][step - 1]
    seen = torch.zeros(logits.shape[-1], dtype=torch.bool)
    seen[run["prompt_ids"] + run["tokens"][: step - 1]] = True  # what the sampler had seen
    return sampling_stages(logits, seen, cfg), seen


def pipeline_figure(run: dict, step: int, cfg: SamplingConfig) -> tuple[go.Figure, list[dict]]:
    """Six panels: raw logits, repetition penalty, ÷ temperature, top-k cut, top-p cut (with the
    cumulative line and the cutoff), final probabilities; the chosen token in orange."""
    st, seen = _pipeline_rows(run, step, cfg)
    tok, chosen = run["tok"], run["tokens"][step - 1]
    order = torch.topk(st.raw, min(PIPELINE_TOKENS, st.raw.shape[-1])).indices.tolist()
    if chosen not in order:
        order.append(chosen)
    label = dict(zip(order, token_labels(tok, order)))
    greedy = cfg.temperature == 0
    fig = make_subplots(
        rows=2,
        cols=3,
        vertical_spacing=0.22,
        horizontal_spacing=0.07,
        subplot_titles=[
            "1. Raw logits (the model)",
            f"2. Repetition penalty {cfg.repetition_penalty:g} on seen tokens",
            "3. ÷ temperature" + (" (greedy: skipped)" if greedy else f" {cfg.temperature:g}"),
            "4. Top-k cut" + (f" (k = {cfg.top_k})" if cfg.top_k and not greedy else " (off)"),
            "5. Top-p cut"
            + (f" (p = {cfg.top_p:g})" if cfg.top_p < 1 and not greedy else " (off)"),
            "6. Final probabilities (sampled from)",
        ],
    )

    def bars(values, row, col, kept=None, hover="%{y:.3f}"):
        names = [label[i] for i in order]
        colours = [
            CHOSEN if i == chosen else (KEPT if kept is None or kept[i] else CUT) for i in order
        ]
        shown = [float(values[i]) if torch.isfinite(values[i]) else None for i in order]
        fig.add_bar(
            x=names,
            y=shown,
            marker_color=colours,
            row=row,
            col=col,
            showlegend=False,
            hovertemplate=f"%{{x}}: {hover}<extra></extra>",
        )

    bars(st.raw, 1, 1)
    bars(st.penalized, 1, 2, kept=~seen | (st.penalized == st.raw))
    bars(st.scaled, 1, 3)
    bars(st.scaled, 2, 1, kept=torch.isfinite(st.top_k))
    # 5: tokens by probability before the cut, the running total and the cutoff
    by_p = torch.topk(st.softmax, min(PIPELINE_TOKENS, st.softmax.shape[-1])).indices.tolist()
    by_p = [i for i in by_p if st.softmax[i] > 0] or by_p[:1]  # not the tokens top-k removed
    cum = torch.cumsum(st.softmax[by_p], 0).tolist()
    names = token_labels(tok, by_p)
    fig.add_bar(
        x=names,
        y=st.softmax[by_p].tolist(),
        marker_color=[CHOSEN if i == chosen else (KEPT if st.probs[i] > 0 else CUT) for i in by_p],
        row=2,
        col=2,
        showlegend=False,
        hovertemplate="%{x}: %{y:.3f}<extra>before the cut</extra>",
    )
    fig.add_scatter(
        x=names,
        y=cum,
        mode="lines+markers",
        line=dict(color="#333"),
        row=2,
        col=2,
        showlegend=False,
        hovertemplate="%{x}: cumulative %{y:.3f}<extra></extra>",
    )
    if cfg.top_p < 1 and not greedy:
        fig.add_hline(y=cfg.top_p, line=dict(dash="dash", color=CHOSEN), row=2, col=2)
    bars(st.probs, 2, 3, kept=st.probs > 0)
    for col in (1, 2, 3):
        fig.update_yaxes(title_text="logit" if col == 1 else None, row=1, col=col)
    fig.update_yaxes(title_text="probability", range=[0, 1.02], row=2, col=2)
    fig.update_yaxes(range=[0, 1.02], row=2, col=3)
    fig.update_xaxes(tickangle=-50, tickfont=dict(size=10))
    fig.update_annotations(font_size=12)
    n_kept = int((st.probs > 0).sum())
    title = (
        f"Sampling pipeline at step {step}: chose {label[chosen]!r} (P = "
        f"{float(st.probs[chosen]):.3f} now; {n_kept} token{'' if n_kept == 1 else 's'} left to "
        "sample from)"
    )
    layout(fig, title, 640, left=50, bottom=60, top=80)
    rows = [
        {
            "token_id": i,
            "token": tok.decode([i]),
            "chosen": i == chosen,
            "seen": bool(seen[i]),
            "raw_logit": float(st.raw[i]),
            "penalized": float(st.penalized[i]),
            "scaled": float(st.scaled[i]),
            "after_top_k": float(st.top_k[i]),
            "prob_before_top_p": float(st.softmax[i]),
            "final_prob": float(st.probs[i]),
        }
        for i in dict.fromkeys(order + by_p)
    ]
    return fig, rows


@friendly_errors
def pipeline(run: dict | None, step: float, temperature, top_k, top_p, repetition_penalty):
    """(pipeline chart, CSV + JSON of its numbers) at one step of the last run, redrawn from the
    kept logits with the current sliders: no model call."""
    if not run or not run.get("tokens"):
        raise gr.Error("Generate some text first: the pipeline shows a step of the last run.")
    if run.get("dropped"):
        raise gr.Error(DROPPED)
    n = len(run["tokens"])
    step = clamp(step, 1, n, "Step", integer=True)
    cfg = sampling_args(temperature, top_k, top_p, repetition_penalty)
    fig, rows = pipeline_figure(run, step, cfg)
    settings = {f: getattr(cfg, f) for f in ("temperature", "top_k", "top_p", "repetition_penalty")}
    files = export_files("sampling-pipeline", rows, {"step": step, **settings, "tokens": rows})
    return fig, files


def quiet_pipeline(run: dict | None, step: Any, *settings: Any):
    """A sampling slider moved: redraw the pipeline if there is a last run (no error before the
    first), at the step slider's value fitted to that run without a word (the slider may still
    span an earlier, longer run: the visitor did not set it)."""
    if not run or not run.get("tokens"):
        return gr.skip(), gr.skip()
    step, _ = clamp_note(step, 1, len(run["tokens"]), "Step", integer=True)  # its note unsaid
    return pipeline(run, step, *settings)


def examples_for(model_name: str | None) -> list[list]:
    """The example prompts and settings that fit `model_name`'s world (None: the default
    model's): the starter stories for starter models, English for GPT-2."""
    return GENERATE_EXAMPLES[world(model_name)]


def on_model_change(model_name: str, prompt: str):
    """The prompt (unless the visitor wrote their own) and the examples of the picked model's
    world."""
    return follow("generate", prompt, model_name), gr.Dataset(samples=examples_for(model_name))


def step_chart(run: dict, step: int) -> go.Figure:
    """The candidates chart of one step (1-based) of `run`, from what the run kept."""
    token_id = run["tokens"][step - 1]
    prob, cands = run["steps"][step - 1]
    chosen = run["tok"].token_bytes(token_id).decode("utf-8", "replace")
    return candidates_figure(step, token_id, prob, cands, chosen)


def scrub(run: dict | None, step: float):
    """The step slider moved: that step's candidates chart (kept with the run; no model call)."""
    if not run or not run.get("tokens"):
        return gr.skip()
    return step_chart(run, int(clamp_note(step, 1, len(run["tokens"]), "Step", integer=True)[0]))


def run_export(run: dict) -> list[str]:
    """CSV + JSON of the candidates chart's numbers: every step's token and top candidates."""
    tok = run["tok"]
    rows = []
    for i, (token, (prob, cands)) in enumerate(zip(run["tokens"], run["steps"]), 1):
        row = {"step": i, "token_id": token, "token": tok.decode([token]), "prob": prob}
        for j, c in enumerate(cands, 1):
            row[f"cand{j}"] = c.text
            row[f"cand{j}_prob"] = c.prob
            row[f"cand{j}_model_prob"] = c.raw_prob
        rows.append(row)
    data = {"prompt_ids": run["prompt_ids"], "steps": rows}
    return export_files("generation", rows, data)


def after_run(run: dict | None, step, temperature, top_k, top_p, repetition_penalty):
    """Point the step slider at the last run's steps, draw its last step, export its numbers."""
    if not run or not run.get("tokens"):
        return gr.skip(), None, None, None
    n = len(run["tokens"])
    fig, files = pipeline(run, n, temperature, top_k, top_p, repetition_penalty)
    step = gr.Slider(minimum=1, maximum=max(n, 2), value=n, interactive=n > 1)
    return step, fig, files, run_export(run)


def first_render(
    model_name: str,
    prompt: str,
    temperature: float,
    top_k: float,
    top_p: float,
    repetition_penalty: float,
    max_new_tokens: float,
    seed: float,
    request: gr.Request | None = None,
):
    """What the tab shows on page load: a run of the default example with the page's own
    settings (the sliders' values), which Stop stops too."""
    if default_registry().default(TASKS) is None:
        yield "", None, model_note(TASKS), None
        return
    settings = (temperature, top_k, top_p, repetition_penalty, max_new_tokens, seed)
    yield from generate(model_name, prompt, *settings, request=request)


# The Stop button is grey while nothing runs and red (CSS class "running") while a run streams.
# Flipped in the browser: a server event (even queue=False) lands only after the run it marks.
# Runs are counted (the page-load run and a click can overlap): grey again when the last ends,
# or is refused (Gradio 6.31 runs an event's `.then` only after a success; `.failure` after not).
RUNNING = """(...args) => { window.gptLabRuns = (window.gptLabRuns || 0) + 1;
    document.querySelector('#gen-stop')?.classList.add('running');
    return args; }"""  # runs in the browser before the event, its inputs passed on as they are
IDLE = """() => { window.gptLabRuns = Math.max(0, (window.gptLabRuns || 0) - 1);
    if (!window.gptLabRuns) document.querySelector('#gen-stop')?.classList.remove('running'); }"""


def build(demo: gr.Blocks) -> Page:
    with gr.Tab("Generate", id="generate"):
        gr.Markdown(
            "Write a prompt and watch the model continue it token by token. The chart shows the "
            "top candidates at each step (solid: after your settings; outline: the model alone)."
        )
        model = model_header(TASKS, "gen")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                prompt = gr.Textbox(
                    label="Prompt",
                    value=text_for("generate"),
                    lines=3,
                    elem_id="gen-prompt",
                )
                with gr.Row():
                    run = gr.Button("Generate", variant="primary", elem_id="gen-run")
                    stop = gr.Button("Stop", variant="secondary", elem_id="gen-stop")
                output = gr.Textbox(
                    label="Generated continuation",
                    lines=8,
                    elem_id="gen-out",
                    interactive=False,
                    autoscroll=True,
                )
                status = gr.Markdown(elem_id="gen-status")
            with gr.Column(scale=2):
                temperature = slider_input(
                    0,
                    2,
                    value=0.8,
                    step=0.05,
                    label="Temperature",
                    info="0 = greedy (always the most likely token); higher = more surprising",
                    elem_id="gen-temp",
                )
                top_k = slider_input(
                    0,
                    200,
                    value=40,
                    step=1,
                    label="Top-k",
                    info="keep only the k most likely tokens (0 = off)",
                    elem_id="gen-topk",
                )
                top_p = slider_input(
                    0.05,
                    1,
                    value=0.95,
                    step=0.01,
                    label="Top-p",
                    info="keep the fewest tokens whose probabilities sum to p",
                    elem_id="gen-topp",
                )
                rep = slider_input(
                    1,
                    2,
                    value=1.1,
                    step=0.05,
                    label="Repetition penalty",
                    info="> 1 discourages tokens already used",
                    elem_id="gen-rep",
                )
                max_new = slider_input(
                    1, MAX_NEW_TOKENS, value=60, step=1, label="Max new tokens", elem_id="gen-max"
                )
                seed = number_input(
                    value=0, precision=0, label="Seed (-1 = random)", elem_id="gen-seed"
                )
        chart = gr.Plot(label="Next-token candidates", elem_id="gen-chart")
        look_for(
            "a tall first bar means the model is sure; many short bars mean temperature and top-k/top-p decide. Move the Step slider to see any step."
        )
        run_files = numbers_box(
            "The run's numbers: each step's token and candidates", "gen-run-files"
        )
        # The last run's raw logits, per session: up to 256 x vocab floats (51 MB for GPT-2),
        # dropped 15 minutes after the run.
        last_run = gr.State(None, time_to_live=900)
        with gr.Accordion("Sampling pipeline of the last run", open=True, elem_id="gen-pipe-box"):
            gr.Markdown(
                "Any step of the last run, from the model's raw logits to the probabilities "
                "sampled from. Move the sliders above: the pipeline is redrawn from that step's "
                "kept logits, without running the model again. (The repetition penalty and "
                "÷ temperature commute: both rescale a logit without changing its sign.)"
            )
            step = slider_input(
                1,
                MAX_NEW_TOKENS,
                value=1,
                step=1,
                label="Step",
                info="any step of the last run: its candidates chart above and its pipeline",
                elem_id="gen-step",
            )
            pipe = gr.Plot(label="Sampling pipeline", elem_id="gen-pipeline")
            look_for(
                "which tokens each setting cuts (grey) and how temperature flattens or sharpens what is left."
            )
            pipe_files = numbers_box("Pipeline numbers", "gen-pipe-files")
        inputs = [model, prompt, temperature, top_k, top_p, rep, max_new, seed]
        examples = gr.Examples(examples_for(None), inputs[1:], label="Example prompts and settings")
        model.change(  # the prompt and examples follow the model's world (`texts.follow`)
            on_model_change, [model, prompt], [prompt, examples.dataset],
            api_visibility="private", queue=False,
        )  # fmt: skip

        event = gr.on(
            [run.click, prompt.submit],
            generate,
            inputs,
            [output, chart, status, last_run],
            api_name="generate",
            show_progress="hidden",
            js=RUNNING,
            **batched("generate"),
        )
        pipe_inputs = [last_run, step, temperature, top_k, top_p, rep]
        after = [step, pipe, pipe_files, run_files]
        event.then(None, js=IDLE).then(after_run, pipe_inputs, after, api_visibility="private")
        event.failure(None, js=IDLE)
        redraw = dict(trigger_mode="always_last", show_progress="hidden")
        step.release(
            pipeline,
            pipe_inputs,
            [pipe, pipe_files],
            api_name="pipeline",
            **redraw,
            **heavy("pipeline", None),
        )
        step.release(scrub, [last_run, step], chart, api_visibility="private", **redraw)
        gr.on(
            [temperature.change, top_k.change, top_p.change, rep.change],
            quiet_pipeline,
            pipe_inputs,
            [pipe, pipe_files],
            api_visibility="private",
            concurrency_limit=None,
            **redraw,
        )
        stop.click(request_stop, None, None, api_visibility="private", queue=False)
        loaded = demo.load(
            first_render,
            inputs,
            [output, chart, status, last_run],
            api_visibility="private",
            show_progress="hidden",
            js=RUNNING,
            **batched("generate"),
        )
        loaded.then(None, js=IDLE).then(after_run, pipe_inputs, after, api_visibility="private")
        loaded.failure(None, js=IDLE)
    return Page([Picker("Generate", TASKS, model)])
