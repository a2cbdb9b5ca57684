"""The model a tab runs: `model_header` (picker + note + card) and the one loader, `wait_model`
(`get_model` runs it to its end; the picker runs it to download a GPT-2 size once picked)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.context import Context

from gpt.checkpoint import CheckpointError
from gpt.config import HUB_IDS
from gpt.lab import hub
from gpt.lab.cards import ModelCard, model_card, params_text
from gpt.lab.examples import examples_of
from gpt.lab.names import resolve
from gpt.lab.registry import ModelEntry, RegistryError, default_registry
from pages.common.render import esc, md
from pages.visitors import EVERYONE, viewer_of

log = logging.getLogger("gpt2lab")

POLL_S = 0.5  # how often a waiting event reports download progress
QUIET = dict(api_visibility="private", show_progress="hidden", queue=False)
LABEL_WORDS = 80  # characters of a model's description in the picker (the card has it all)


@dataclass(frozen=True)
class Picker:
    """A tab's model picker: the Fine-tune tab's "Open in other tabs" sets a finished job's model
    in every picker whose tasks fit the job."""

    tab: str
    tasks: tuple[str, ...]
    dropdown: gr.Dropdown


@dataclass
class Page:
    """What a tab's `build()` returns to app.py: its model pickers.

    >>> Page().pickers
    []
    """

    pickers: list[Picker] = field(default_factory=list)


def is_mine(entry: ModelEntry, me: str | None) -> bool:
    """Whether `entry` is a job model of the visitor `me` (EVERYONE, in single-user mode: any)."""
    return entry.source == "job" and me is not None and me in (EVERYONE, entry.owner)


def picker_state(
    tasks: Iterable[str], me: str | None = None
) -> tuple[list[tuple[str, str]], str | None, str | None]:
    """From one listing of the registry (it reads the jobs database and the hub cache): the
    picker's (label, name) pairs, `me`'s own job models first (newest first); the visitor's
    default (their newest own job model, else the registry's); the registry's default."""
    tasks = tuple(tasks)
    reg = default_registry()
    entries = reg.entries(tasks)
    own = [e for e in entries if is_mine(e, me)]
    general = reg.default(tasks, names=[e.name for e in entries])
    choices = [
        (f"{e.name} — {shorten(e.description, LABEL_WORDS)}", e.name)
        for e in own + [e for e in entries if not is_mine(e, me)]
    ]
    return choices, (own[0].name if own else general), general


def model_choices(tasks: Iterable[str], me: str | None = None) -> list[tuple[str, str]]:
    return picker_state(tasks, me)[0]


def shorten(text: str, most: int) -> str:
    """`text` cut at a word to at most `most` characters, with "…" when cut.

    >>> shorten("starter model adapted to SMS and fine-tuned on real SMS", 30)
    'starter model adapted to SMS…'
    >>> shorten("short", 30)
    'short'
    """
    if len(text) <= most:
        return text
    return text[: text.rfind(" ", 0, most)].rstrip(" ,;:") + "…"


def gpt2_help() -> str:
    """How to get GPT-2 here, for the hub's current state."""
    state = hub.status()
    if state.online or hub.downloads_listed():
        return "GPT-2 sizes not on this machine download from the Hugging Face hub when picked."
    if state.state in (hub.UNKNOWN, hub.CHECKING):
        return (
            "Checking whether the Hugging Face hub answers; once it does, GPT-2 appears in the "
            "list (open it again)."
        )
    if hub.skip_reason() is not None:  # a variable rules the network out: no check will run
        how = "unset that variable and restart the app"
    else:
        how = "go online (opening the list checks again, at most once a minute)"
    return (
        f"GPT-2 is not on this machine and cannot be downloaded now ({esc(state.reason)}). To "
        f"use it, {how}, or set `GPT2LAB_MODELS_DIR` to a folder holding `gpt2/` (config.json "
        "+ model.safetensors)."
    )


def model_note(tasks: Iterable[str], picked: str | None = None) -> str:
    """Which model is the default here, and how to get GPT-2 when it is missing; with `picked`
    another model than the default, that one first (no stale "Default model: X" beside it)."""
    reg, tasks = default_registry(), tuple(tasks)
    default = reg.default(tasks)
    if default is None:
        return (
            "**No model for this tab is available yet.** The starter models appear once "
            f"`assets/models/` holds them. {gpt2_help()}"
        )
    if "lm" not in tasks:
        note = f"Default model: **{default}**."
    elif default != "gpt2":
        note = f"Default model: **{default}**. {gpt2_help()}"
    elif reg.needs_download("gpt2"):
        size = hub.size_label(hub.download_bytes("gpt2"))
        note = f"Default model: **gpt2** ({size} download on first use). {gpt2_help()}"
    else:
        note = "Default model: **gpt2**."
    if picked and picked != default:
        return f"Picked: **{esc(picked)}**. " + note.replace("Default model:", "The default is", 1)
    return note


def model_shape(name: str | None) -> tuple[int, int]:
    """(n_layer, n_head) of a listed model from its config, without loading weights."""
    try:
        config = default_registry().ref(name).config if name else None
    except LookupError:  # not listed
        config = None
    return (config.n_layer, config.n_head) if config else (12, 12)


def _fetching(name: str) -> bool:
    """Whether loading `name` means waiting for a download (to start, or running)."""
    if _typed_hub_id(name):
        return True
    try:
        ref = default_registry().ref(name)
    except RegistryError:
        return False
    return ref.needs_download or (ref.kind == "gpt2" and hub.download_progress(ref.name) is not None)


def _typed_hub_id(name: Any) -> bool:
    """Whether `name` is a hub id typed into a picker (`org/name[@revision]`), not listed yet."""
    return (isinstance(name, str) and hub.parse_hub_id(name) is not None
            and name not in default_registry().names())


def _in_background(
    work: Callable[[], Any], thread: str, first: str, download: str, idle: str | None = None
) -> Generator[str, None, Any]:
    """`work()` in a daemon thread, returned (or its error raised) by this generator, which
    yields `first`, then every POLL_S s the progress of the download `download` (else `idle`)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["ok"] = work()
        except Exception as e:  # handed to the waiting generator
            result["error"] = e

    worker = threading.Thread(target=run, name=thread, daemon=True)
    worker.start()
    yield first
    while worker.is_alive():
        worker.join(POLL_S)
        progress = hub.download_progress(download)
        if progress is not None:
            yield progress.line()
        elif idle and worker.is_alive():
            yield idle
    if "error" in result:
        raise result["error"]
    return result["ok"]


def _add_hub_model(name: str, tasks: tuple[str, ...]) -> Generator[str, None, None]:
    """Resolve a typed hub id through `gpt.lab.names` (its config first: a model of another
    task, or not GPT-2, is refused before any weights come), download it with progress lines,
    and list it. A language model typed into an instruct-only picker is listed as instruct."""
    try:
        ref = resolve(name, weights=False)
    except CheckpointError as e:
        raise gr.Error(f"{e}") from e
    task = "instruct" if ref.task == "lm" and "instruct" in tasks and "lm" not in tasks else ref.task
    if task not in tasks:
        raise gr.Error(f"{name} is a {ref.task} model; this tab needs {' or '.join(tasks)}.")

    def work() -> None:
        ref = resolve(name, download=True)
        about = f"from the hub, {params_text(ref.config.n_params())} parameters"
        default_registry().add(name, ref.folder, task=task, description=about)

    try:
        yield from _in_background(work, f"gpt2lab-hub-{name}", f"{name}: asking the hub", name)
    except Exception as e:
        raise gr.Error(f"{e} Pick another model.") from e


def wait_model(name: Any, tasks: Iterable[str]) -> Generator[str, None, tuple[Any, Any]]:
    """(model, tokenizer) of a picked model (blank: the tab's default), returned by this
    generator, which yields a progress line every POLL_S s while a download runs. A name not
    listed for `tasks`, a failed download or load is a gr.Error that says what to do."""
    tasks = tuple(tasks)
    reg = default_registry()
    name = name or reg.default(tasks)
    if name is None:
        raise gr.Error(f"No model is available for this tab. {gpt2_help()}")
    if name not in reg.names(tasks) and _typed_hub_id(name):
        yield from _add_hub_model(name, tasks)
    if name not in reg.names(tasks):
        names = ", ".join(reg.names(tasks)) or "none"
        hint = f" {gpt2_help()}" if name in HUB_IDS else ""
        raise gr.Error(f"Model {name!r} is not available for this tab; pick one of: {names}.{hint}")
    try:
        if not _fetching(name):
            return reg.get(name)
        return (yield from _in_background(
            lambda: reg.get(name), f"gpt2lab-load-{name}", f"{name}: starting the download",
            reg.ref(name).name, idle=f"{name}: loading the downloaded weights",
        ))
    except Exception as error:
        if not isinstance(error, RegistryError):
            error = RegistryError(f"could not load model {name!r}: {error}")
        raise gr.Error(f"{error} Pick another model.") from error


def progress_lines(steps: Generator[str, None, Any], wrap: Any) -> Generator[Any, None, Any]:
    """`model, tok = yield from progress_lines(wait_model(...), wrap)` in a streaming event."""
    while True:
        try:
            line = next(steps)
        except StopIteration as stop:
            return stop.value
        yield wrap(line)


def get_model(name: Any, tasks: Iterable[str], progress: Any = None) -> tuple[Any, Any]:
    """`wait_model` run to its end, its lines to `progress` (a `gr.Progress`) when given."""
    steps = wait_model(name, tasks)
    while True:
        try:
            line = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(None, desc=f"Downloading {line}")
def model_picker(
    tasks: Iterable[str],
    elem_id: str,
    label: str = "Model",
    token: gr.BrowserState | None = None,
) -> gr.Dropdown:
    """A dropdown of the models fitting `tasks`; its list refreshes when opened. With the page's
    visitor `token` (`pages.visitors.token_state`), the visitor's own job models come first and,
    on page load, the newest of them is picked (unless the visitor picked another already); on
    page load, the registry's default as of then (it skips a model that failed to load)."""
    tasks = tuple(tasks)
    choices, _, default = picker_state(tasks)
    picker = gr.Dropdown(
        choices=choices, value=default, label=label, elem_id=elem_id, interactive=True,
        info="pick one, or type any GPT-2 model's hub id (org/name)",
        allow_custom_value=True,  # models added at run time; wait_model checks the name
    )
    inputs = [picker] if token is None else [picker, token]

    def refresh(current: str | None, visitor_token: Any = None, profile: gr.OAuthProfile | None = None):
        hub.maybe_recheck()  # offline a while ago? ask again (the next opening shows it)
        me = viewer_of(visitor_token, profile) if token is not None else None
        choices, mine, _ = picker_state(tasks, me)
        if current in (name for _, name in choices):  # only the list: setting the value
            return gr.Dropdown(choices=choices)  # could undo a pick made meanwhile
        return gr.Dropdown(choices=choices, value=mine)

    def on_load(current: str | None, visitor_token: Any = None, profile: gr.OAuthProfile | None = None):
        me = viewer_of(visitor_token, profile) if token is not None else None
        choices, mine, _ = picker_state(tasks, me)  # the list as of this page load
        # not picked yet (the value built with the app): the visitor's own model, else today's
        # default (a job finished since, or the default failed to load at start-up)
        if current == default and mine != current:
            return gr.Dropdown(choices=choices, value=mine)
        return gr.Dropdown(choices=choices)

    picker.focus(refresh, inputs, picker, **QUIET)
    if Context.root_block is not None:
        Context.root_block.load(on_load, inputs, picker, **QUIET)
    return picker


def card_of(name: Any) -> ModelCard | None:
    """The card of a picked model, or None (never raises)."""
    if not name or not isinstance(name, str):
        return None
    try:
        return model_card(name, default_registry())
    except RegistryError:
        return None
    except Exception:  # a card is a courtesy: a broken model folder must not break a tab
        log.exception("no model card for %r", name)
        return None


def card_markdown(card: ModelCard | None, name: Any = None) -> str:
    """A model card as Markdown (the one renderer of cards): what it is, facts, results, limits."""
    if card is None:
        if not name:
            return "No model is picked."
        return f"No card for **{md(str(name))}**: it is not in the model list (any more)."
    lines = [f"**{md(card.name)}**" + (f": {md(card.summary)}" if card.summary else "")]
    facts = []
    if card.parameters:
        size = f"{params_text(card.parameters)} parameters"
        facts.append(("Size", size + (f" ({card.architecture})" if card.architecture else "")))
    elif card.architecture:
        facts.append(("Architecture", card.architecture))
    facts += [("Tokenizer", card.tokenizer), ("Fine-tuned from", card.base),
              ("Trained on", card.data), ("Training", card.training), ("Licence", card.licence)]
    if card.task == "instruct":  # the Chat tab wraps each message in it (`gpt.lab.prompts`)
        fmt = card.prompt_format or "alpaca"
        facts.append(("Prompt format", fmt + (", remembers earlier turns" * card.multi_turn)))
    if card.metrics:
        shown = " · ".join(f"{m.label} **{m.text}**" for m in card.metrics)
        on = f" (on {card.metrics_on})" if card.metrics_on else ""
        facts.append(("Held-out results", shown + on))
        if card.baseline:
            before = " · ".join(f"{m.label} {m.text}" for m in card.baseline)
            facts.append((f"Before fine-tuning{f' ({card.base})' if card.base else ''}", before))
    else:
        facts.append(("Held-out results", "none recorded for this model"))
    lines += ["", *(f"- **{label}:** {md(text)}" for label, text in facts if text)]
    if card.limits:
        lines += ["", "**Limits**", "", *(f"- {md(limit)}" for limit in card.limits)]
    if card.location and card.source != "starter":
        lines += ["", f"Loaded from `{card.location}`."]
    return "\n".join(lines)


def model_card_box(
    picker: gr.Dropdown, elem_id: str, label: str = "About this model"
) -> gr.Markdown:
    """An "About this model" accordion (put it under the picker) showing the picked model's card."""

    def text(name: Any) -> str:
        card = card_of(name)
        return card_markdown(card, name) + data_markdown(card)

    with gr.Accordion(label, open=False, elem_id=f"{elem_id}-box"):
        card = gr.Markdown(text(picker.value), elem_id=elem_id)
    picker.change(text, picker, card, api_visibility="private", queue=False)
    if Context.root_block is not None:  # fresh on each page load (a hub model downloaded since)
        Context.root_block.load(text, picker, card, **QUIET)
    return card


def data_markdown(card: ModelCard | None) -> str:
    """"About the data": three examples the model was trained on, or why none are shown."""
    if card is None or not card.data:
        return ""
    try:
        examples = examples_of(card)
    except Exception:  # a courtesy, like the card: a broken data file must not break a tab
        log.exception("no training examples for %r", card.name)
        examples = []
    if not examples:
        return "\n\n**About the data:** the training data is not on this machine to show."
    lines = ["", "", "**About the data: three training examples**", ""]
    for e in examples:
        text = re.sub(r"\n+", " ↵ ", md(e.text))
        if e.label is not None:
            lines.append(f"- `{md(e.label)}` {text}")
        elif e.answer is not None:
            lines.append(f"- *{text}* → {md(e.answer)}")
        else:
            lines.append(f"- {text}")
    return "\n".join(lines)


def model_header(
    tasks: Iterable[str], prefix: str, token: gr.BrowserState | None = None
) -> gr.Dropdown:
    """A tab's model picker (`<prefix>-model`, with `token` the visitor's own models first), the
    note beside it (`<prefix>-model-note`) and its card (`<prefix>-card`); returns the picker.

    The note is fresh on each page load and opening of the list. Picking a model that is not
    cached downloads it at once, the note showing its progress; the tab's own action waits for the
    same download. When it fails the note says why and the picker goes back to its last model.
    """
    tasks = tuple(tasks)
    with gr.Row():
        with gr.Column(scale=3, min_width=360):  # wide enough that a whole label shows
            picker = model_picker(tasks, f"{prefix}-model", token=token)
        with gr.Column(scale=2):
            note = gr.Markdown(model_note(tasks), elem_id=f"{prefix}-model-note", elem_classes="note")
    previous = gr.State(picker.value)
    if Context.root_block is not None:  # fresh on each page load (the hub may have answered)
        Context.root_block.load(lambda: model_note(tasks), None, note, **QUIET)

    def prepare(name: str | None, before: str | None):
        if name and name == before:  # the picker was just put back: keep the failure note
            yield gr.skip(), gr.skip(), gr.skip()
            return
        if not name or not _fetching(name):
            yield gr.skip(), model_note(tasks, name), name
            return
        try:
            for line in wait_model(name, tasks):
                yield gr.skip(), f"Downloading {line}", gr.skip()
        except gr.Error as e:
            reason = str(e.__cause__ or e.message)
            gr.Warning(reason)
            back = before if before and before != name else default_registry().default(tasks)
            back = None if back == name else back
            kept = f" The tab keeps **{esc(back)}**." if back else ""
            yield back, f"**Download failed.** {esc(reason)}{kept}", back
            return
        ready = gr.Dropdown(choices=model_choices(tasks))  # its label loses "download"
        yield ready, f"**{esc(name)}** is downloaded and ready.", name

    picker.change(prepare, [picker, previous], [picker, note, previous], api_visibility="private",
                  show_progress="hidden", concurrency_limit=None)
    picker.focus(lambda name: model_note(tasks, name), picker, note, **QUIET)
    model_card_box(picker, f"{prefix}-card")
    return picker
