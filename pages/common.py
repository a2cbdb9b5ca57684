"""UI bits shared by the tabs: what a tab's `build()` returns, the model picker and its model card,
input guards that announce every clamp and cut (`clamp_note`, `cap_text`), the sampling settings'
guard, whitespace markers, error messages, page CSS."""

from __future__ import annotations

import functools
import html
import inspect
import logging
import math
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.context import Context

from gpt.config import HUB_IDS
from gpt.jobs import JobError, NotOwnerError, scrub
from gpt.lab import hub
from gpt.lab.cards import ModelCard, model_card, params_text
from gpt.lab.registry import RegistryError, default_registry
from gpt.sampling import MIN_TEMPERATURE

log = logging.getLogger("gpt2lab")

MODELS_DIR_HELP = (
    "set `GPT2LAB_MODELS_DIR` to a folder holding `gpt2/` (config.json + model.safetensors)"
)
GPT2_HELP = (  # the offline advice; `gpt2_help()` says what fits the hub's current state
    f"To use OpenAI's GPT-2, go online (the app checks the Hugging Face hub when it starts), "
    f"or {MODELS_DIR_HELP}."
)
POLL_S = 0.5  # how often a waiting event reports download progress

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
"""


# --- errors ---------------------------------------------------------------------------------------


def _unexpected(fn_name: str, e: Exception) -> gr.Error:
    """The visitor's words for an unexpected error (no server paths); its traceback goes to
    the server log once, here."""
    log.exception("unexpected error in %s", fn_name)
    return gr.Error(
        f"Something went wrong ({type(e).__name__}: {scrub(str(e))}). Try a shorter input or "
        "another model; if it keeps happening, reload the page.",
        print_exception=False,
    )


def _quiet(e: gr.Error) -> gr.Error:
    """A rejected input is the visitor's to fix, not the server's: no traceback in its log."""
    e.print_exception = False
    return e


def friendly_errors(fn: Callable) -> Callable:
    """Turn any exception other than gr.Error into a gr.Error that says what to do (its
    traceback logged on the server, no server path shown); a gr.Error, a rejected input, is
    passed on without a traceback in the server log.

    Works for plain functions and generators (streaming events), and keeps the signature so
    Gradio still sees `gr.Progress` parameters.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error as e:
                raise _quiet(e) from None
            except Exception as e:
                raise _unexpected(fn.__name__, e) from e

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            raise _quiet(e) from None
        except Exception as e:
            raise _unexpected(fn.__name__, e) from e

    return wrapper


# --- what a tab's build() returns -----------------------------------------------------------------


@dataclass(frozen=True)
class Picker:
    """One model picker of a tab: the tab's name (as the tab bar shows it), the tasks it lists,
    and its dropdown. The Fine-tune tab's "Open in other tabs" sets a finished job's model in
    every picker whose tasks fit the job."""

    tab: str
    tasks: tuple[str, ...]
    dropdown: gr.Dropdown


@dataclass
class Page:
    """What a tab's `build()` returns to app.py: its model pickers (the Tokenizer tab has none).

    >>> Page().pickers
    []
    """

    pickers: list[Picker] = field(default_factory=list)


# --- input guards: every clamp and cut is said ----------------------------------------------------

TEXT_REFUSE_FACTOR = 5  # text over 5 x a tab's limit is refused (a flood), shorter text is cut


def label_name(label: Any) -> str:
    """A component's label as a setting's name in a sentence, without its "(hint)".

    >>> label_name("Token to inspect (-1 = last)")
    'Token to inspect'
    """
    name = str(label or "This setting")
    return name.split(" (", 1)[0].strip() or name


def announce(note: str) -> str:
    """Show `note` as a warning pop-up (nothing when it is empty) and return it, so the tab can
    also put it in its own note line. The one way a tab says what it clamped or cut."""
    if note:
        gr.Warning(note)
    return note


def clamp_note(
    value: Any, lo: float, hi: float, name: str, integer: bool = False
) -> tuple[float | int, str]:
    """`value` within [lo, hi], and the sentence saying what was changed ("" when nothing was).
    NaN and non-numbers raise gr.Error naming the setting.

    >>> clamp_note(999, 0, 36, "Token index", integer=True)
    (36, 'Token index must be between 0 and 36; used 36 instead of 999.')
    >>> clamp_note("0.5", 0, 1, "Top-p")
    (0.5, '')
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number between {lo:g} and {hi:g}.") from None
    if math.isnan(x):
        raise gr.Error(f"{name} is not a number; set it between {lo:g} and {hi:g}.")
    note = ""
    if not lo <= x <= hi:
        clamped = min(max(x, lo), hi)
        note = f"{name} must be between {lo:g} and {hi:g}; used {clamped:g} instead of {x:g}."
        x = clamped
    return (int(round(x)) if integer else x), note


def clamp(value: Any, lo: float, hi: float, name: str, integer: bool = False) -> float | int:
    """`clamp_note`, its note shown as a warning pop-up (`announce`)."""
    x, note = clamp_note(value, lo, hi, name, integer)
    announce(note)
    return x


def cap_text(
    text: Any, max_chars: int, what: str = "Text", allow_empty: bool = False
) -> tuple[str, str]:
    """The text cut to its first `max_chars` characters, and the sentence saying so ("" when
    it fits). Characters are Python's (an emoji is one, as in every count the tabs show).
    Missing, empty (unless `allow_empty`) or flooding text (over TEXT_REFUSE_FACTOR x the
    limit) raises gr.Error.

    >>> cap_text("abcdef", 4)
    ('abcd', 'Text is 6 characters; the limit is 4, so only the first 4 were used.')
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise gr.Error(f"{what} must be text.")
    if not text.strip() and not allow_empty:
        raise gr.Error(f"{what} is empty: type something first.")
    if len(text) > max_chars * TEXT_REFUSE_FACTOR:
        raise gr.Error(
            f"{what} is {len(text):,} characters; the limit is {max_chars:,}. Shorten it."
        )
    if len(text) <= max_chars:
        return text, ""
    note = (
        f"{what} is {len(text):,} characters; the limit is {max_chars:,}, so only the first "
        f"{max_chars:,} were used."
    )
    return text[:max_chars], note


def check_text(text: Any, max_chars: int, what: str = "Text", allow_empty: bool = False) -> str:
    """`cap_text`, its note shown as a warning pop-up (`announce`)."""
    text, note = cap_text(text, max_chars, what, allow_empty)
    announce(note)
    return text


def sampling_args(
    temperature: Any,
    top_k: Any,
    top_p: Any,
    repetition_penalty: Any = 1.0,
    max_new_tokens: Any = 1,
    seed: Any = -1,
    max_new_cap: int = 256,
) -> dict[str, Any]:
    """The sampling sliders, checked as `gpt.sampling.SamplingConfig` needs them: each clamped to
    its slider's range (said), NaN rejected, a temperature between 0 and MIN_TEMPERATURE raised
    to it (said: 0 means greedy), seed -1 as None (the caller draws one).

    >>> sampling_args(0.8, 40, 0.95, 1.1, 60, 7)["top_k"]
    40
    """
    t = clamp(temperature, 0, 2, "Temperature")
    if 0 < t < MIN_TEMPERATURE:
        announce(
            f"Temperature {t:g} is too low to sample with; used {MIN_TEMPERATURE:g} "
            "(0 means greedy)."
        )
        t = MIN_TEMPERATURE
    seed = clamp(seed, -1, 2**31 - 1, "Seed", integer=True)
    return dict(
        temperature=t,
        top_k=clamp(top_k, 0, 200, "Top-k", integer=True),
        top_p=clamp(top_p, 0.05, 1, "Top-p"),
        repetition_penalty=clamp(repetition_penalty, 1, 2, "Repetition penalty"),
        max_new_tokens=clamp(max_new_tokens, 1, max_new_cap, "Max new tokens", integer=True),
        seed=None if seed < 0 else seed,
    )


def _number_payload(component: gr.components.Component, payload: Any) -> Any:
    """An API caller's value for a number input, or a gr.Error naming the input ("abc" where a
    number goes would otherwise fail inside Gradio with a generic message)."""
    name = label_name(component.label)
    if payload is None:
        return None
    if isinstance(payload, str):
        try:
            payload = float(payload.strip())
        except ValueError:
            raise gr.Error(f"{name} must be a number, not {payload!r}.") from None
    if isinstance(payload, bool) or not isinstance(payload, int | float):
        raise gr.Error(f"{name} must be a number, not {type(payload).__name__} {payload!r}.")
    if math.isnan(payload):
        raise gr.Error(f"{name} is not a number (NaN); give a number.")
    if math.isinf(payload) and getattr(component, "precision", None) == 0:
        raise gr.Error(f"{name} must be a whole number, not {payload}.")
    return payload


# (component class, elem_id or label) -> the name a bad API value's message gives it. Keyed by
# what a component keeps when Gradio rebuilds it for a session after an update (a Slider whose
# maximum an event changed is a new instance), so the check survives the rebuild.
_NAMED: dict[tuple[type, Any], str] = {}
_named_lock = threading.Lock()


def named_errors(component: Any) -> Any:
    """`component` with its API values checked first, so a bad one gets a message naming the
    input ("Seed must be a number, not 'abc'.", "Kind: Value: x is not in the list of
    choices: ...") instead of Gradio's generic "the upstream app raised an exception" or a
    message that does not say which input. Numbers (gr.Number, gr.Slider) are type-checked;
    every component's own rejections get its name. Returns the component.

    The check sits in the component class's `preprocess`, for the components registered here
    only: a subclass would make Gradio write a .pyi stub next to this file on every import,
    and a per-instance wrapper is lost when Gradio rebuilds the component after an update.
    """
    cls = type(component)
    with _named_lock:
        _NAMED[(cls, component.elem_id or component.label)] = label_name(component.label)
        if "_gpt2lab_preprocess" not in cls.__dict__:
            cls._gpt2lab_preprocess = cls.preprocess
            cls.preprocess = _named_preprocess
    return component


def _named_preprocess(self: Any, payload: Any) -> Any:
    original = type(self)._gpt2lab_preprocess
    name = _NAMED.get((type(self), self.elem_id or self.label))
    if name is None:  # not registered: Gradio's own behaviour
        return original(self, payload)
    if isinstance(self, gr.Number | gr.Slider):
        payload = _number_payload(self, payload)
        if payload is None and isinstance(self, gr.Slider):
            raise gr.Error(f"{name} must be a number, not None.")
    try:
        return original(self, payload)
    except gr.Error as e:
        raise gr.Error(f"{name}: {e.message}") from None


def number_input(*args: Any, **kwargs: Any) -> gr.Number:
    """gr.Number(...) whose bad API values are named (`named_errors`)."""
    return named_errors(gr.Number(*args, **kwargs))


def slider_input(*args: Any, **kwargs: Any) -> gr.Slider:
    """gr.Slider(...) whose bad API values are named (`named_errors`)."""
    return named_errors(gr.Slider(*args, **kwargs))


# --- whitespace made visible ----------------------------------------------------------------------

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
    """One token's text for display: its characters, and where it holds only part of a
    character (GPT-2 splits many a CJK character or emoji across tokens), those bytes in hex
    instead of "\ufffd", which would look the same for every such token.

    >>> from gpt.tokenizer import Tokenizer
    >>> tok = Tokenizer.train("ab", 257)
    >>> token_text(tok, ord("a")), token_text(tok, 0xE6), token_text(tok, 0x97)
    ('a', '‹E6›', '‹97›')
    """
    data = tok.token_bytes(token_id)
    text = data.decode("utf-8", "surrogateescape")  # undecodable bytes as U+DC80..U+DCFF
    if not any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        return text
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


# --- the jobs manager's errors --------------------------------------------------------------------


@contextmanager
def job_errors(words: Callable[[str], str] = str) -> Iterator[None]:
    """Turn the jobs manager's errors into messages for the visitor, each put in the page's
    `words` first: another visitor's job says what they can do instead, any other JobError is
    shown as its own sentence.

    >>> with job_errors(str.capitalize):
    ...     raise JobError("job j1 not found")
    Traceback (most recent call last):
    gradio.exceptions.Error: 'Job j1 not found.'
    """
    try:
        yield
    except NotOwnerError as e:
        raise gr.Error(
            f"{words(str(e))}. Start your own job, or use this one's model once it finishes."
        ) from None
    except JobError as e:
        raise gr.Error(f"{words(str(e))}.") from None


# --- models ---------------------------------------------------------------------------------------


def model_choices(tasks: Iterable[str]) -> list[tuple[str, str]]:
    """(label, name) pairs for a dropdown: the name plus its short description."""
    return [(f"{e.name} — {e.description}", e.name) for e in default_registry().entries(tasks)]


def gpt2_help() -> str:
    """How to get GPT-2 here, for the hub's current state (checking, online, offline)."""
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
        f"use it, {how}, or {MODELS_DIR_HELP}."
    )


def model_note(tasks: Iterable[str]) -> str:
    """A line saying which model is the default here, and how to get GPT-2 when it is missing."""
    reg = default_registry()
    tasks = tuple(tasks)
    default = reg.default(tasks)
    if default is None:
        return (
            "**No model for this tab is available yet.** The starter models appear once "
            f"`assets/models/` holds them. {gpt2_help()}"
        )
    if "lm" not in tasks:
        return f"Default model: **{default}**."
    if default != "gpt2":
        return f"Default model: **{default}**. {gpt2_help()}"
    if reg.needs_download("gpt2"):
        size = hub.size_label(hub.download_bytes("gpt2"))
        return f"Default model: **gpt2** ({size} download on first use). {gpt2_help()}"
    return "Default model: **gpt2**."


def model_picker(tasks: Iterable[str], elem_id: str, label: str = "Model") -> gr.Dropdown:
    """A dropdown of the registry's models fitting `tasks`; its list refreshes when opened."""
    tasks = tuple(tasks)
    choices = model_choices(tasks)
    picker = gr.Dropdown(
        choices=choices,
        value=default_registry().default(tasks),
        label=label,
        elem_id=elem_id,
        interactive=True,
        allow_custom_value=True,  # models added at run time; get_model checks the name
    )

    def refresh(current: str | None):
        hub.maybe_recheck()  # offline a while ago? ask again (the next opening shows it)
        names = default_registry().names(tasks)
        if current in names:  # only the list: setting the value could undo a pick made meanwhile
            return gr.Dropdown(choices=model_choices(tasks))
        return gr.Dropdown(choices=model_choices(tasks), value=default_registry().default(tasks))

    picker.focus(
        refresh, picker, picker, api_visibility="private", queue=False, show_progress="hidden"
    )
    root = Context.root_block
    if root is not None:  # the list as of this page load: "· 548 MB download" goes once cached
        root.load(
            lambda: gr.Dropdown(choices=model_choices(tasks)),
            None,
            picker,
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
    return picker


def model_status(picker: gr.Dropdown, tasks: Iterable[str], elem_id: str) -> gr.Markdown:
    """The note under a picker (`model_note`, fresh on each page load and opening of the list).

    Picking a GPT-2 size that is not cached downloads it at once, the note showing MB done,
    MB/s and time left; the tab's own action waits for the same download. When it fails the
    note says why and the picker goes back to the model it showed before.
    """
    tasks = tuple(tasks)
    note = gr.Markdown(model_note(tasks), elem_id=elem_id, elem_classes="note")
    previous = gr.State(picker.value)
    quiet = dict(api_visibility="private", show_progress="hidden", queue=False)
    root = Context.root_block
    if root is not None:  # fresh on each page load (the hub check may have answered since)
        root.load(lambda: model_note(tasks), None, note, **quiet)

    def prepare(name: str | None, before: str | None):
        reg = default_registry()
        if name and name == before:  # the picker was just put back: keep the failure note
            yield gr.skip(), gr.skip(), gr.skip()
            return
        if not name or not (reg.needs_download(name) or _downloading(name)):
            yield gr.skip(), model_note(tasks), name
            return
        steps = load_steps(name, tasks)
        try:
            while True:
                line = next(steps)
                yield gr.skip(), f"Downloading {line}", gr.skip()
        except StopIteration:
            ready = gr.Dropdown(choices=model_choices(tasks))  # its label loses "download"
            yield ready, f"**{esc(name)}** is downloaded and ready.", name
        except RegistryError as e:
            gr.Warning(f"{e}")
            back = before if before and before != name else reg.default(tasks)
            if back == name:
                back = None
            kept = f" The tab keeps **{esc(back)}**." if back else ""
            yield back, f"**Download failed.** {esc(str(e))}{kept}", back

    picker.change(
        prepare,
        [picker, previous],
        [picker, note, previous],
        api_visibility="private",
        show_progress="hidden",
        concurrency_limit=None,
    )
    picker.focus(lambda: model_note(tasks), None, note, **quiet)
    return note


def _downloading(name: str) -> bool:
    try:
        ref = default_registry().ref(name)
    except RegistryError:
        return False
    return ref.kind == "gpt2" and hub.download_progress(ref.name) is not None


def _check_name(name: Any, tasks: tuple[str, ...]) -> str:
    reg = default_registry()
    if not name:
        name = reg.default(tasks)
        if name is None:
            raise gr.Error(f"No model is available for this tab. {gpt2_help()}")
    if name not in reg.names(tasks):
        names = ", ".join(reg.names(tasks)) or "none"
        hint = f" {gpt2_help()}" if name in HUB_IDS else ""
        raise gr.Error(f"Model {name!r} is not available for this tab; pick one of: {names}.{hint}")
    return name


def load_steps(name: str, tasks: Iterable[str]) -> Generator[str, None, tuple[Any, Any]]:
    """Load a listed model; while a GPT-2 download runs, yield a progress line every 0.5 s
    ('gpt2: 120 / 548 MB · 35.0 MB/s · 12 s left'). Returns (model, tokenizer); raises
    RegistryError when the download or load fails (nothing is cached then)."""
    reg = default_registry()
    location = reg.entry(name).location
    if not (reg.needs_download(name) or _downloading(name)):
        return reg.get(name)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["ok"] = reg.get(name)
        except Exception as e:  # handed to the waiting generator
            result["error"] = e

    worker = threading.Thread(target=work, name=f"gpt2lab-load-{name}", daemon=True)
    worker.start()
    yield f"{name}: starting the download"
    while worker.is_alive():
        worker.join(POLL_S)
        progress = hub.download_progress(location)
        if progress is not None:
            yield progress.line()
        elif worker.is_alive():
            yield f"{name}: loading the downloaded weights"
    if "error" in result:
        error = result["error"]
        if isinstance(error, RegistryError):
            raise error
        raise RegistryError(f"could not load model {name!r}: {error}") from error
    return result["ok"]


def progress_lines(
    steps: Generator[str, None, Any], wrap: Callable[[str], Any]
) -> Generator[Any, None, Any]:
    """Yield `wrap(line)` for each line of `steps` (e.g. `load_steps`); return its result.

    For streaming events: `model, tok = yield from progress_lines(load_steps(...), wrap)`.
    """
    while True:
        try:
            line = next(steps)
        except StopIteration as stop:
            return stop.value
        yield wrap(line)


def get_model(name: Any, tasks: Iterable[str], progress: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a picked model, or a gr.Error that says what to do.

    A GPT-2 size that is not cached is downloaded first; `progress` (a `gr.Progress`) then
    shows the MB done and the time left.
    """
    tasks = tuple(tasks)
    name = _check_name(name, tasks)
    steps = load_steps(name, tasks)
    try:
        while True:
            line = next(steps)
            if progress is not None:
                p = hub.download_progress(default_registry().entry(name).location)
                progress(p.fraction if p else None, desc=f"Downloading {line}")
    except StopIteration as stop:
        return stop.value
    except RegistryError as e:
        raise gr.Error(f"{e} Pick another model.") from e


def wait_model(name: Any, tasks: Iterable[str]) -> Generator[str, None, tuple[Any, Any]]:
    """`load_steps` for a picked name, its failures as gr.Error (for streaming events)."""
    tasks = tuple(tasks)
    name = _check_name(name, tasks)
    try:
        return (yield from load_steps(name, tasks))
    except RegistryError as e:
        raise gr.Error(f"{e} Pick another model.") from e


# --- model cards ----------------------------------------------------------------------------------


def card_of(name: Any) -> ModelCard | None:
    """The card of a picked model, or None when there is no such model (never raises)."""
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
    """A model card as Markdown: one line on what it is, the facts, held-out results, limits.

    The one renderer of cards: every tab's "About this model" uses it.
    """
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
    facts += [
        ("Tokenizer", card.tokenizer),
        ("Fine-tuned from", card.base),
        ("Trained on", card.data),
        ("Training", card.training),
    ]
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


def model_card_text(name: Any) -> str:
    """The Markdown card of a picked model name."""
    return card_markdown(card_of(name), name)


def model_card_box(
    picker: gr.Dropdown, elem_id: str, label: str = "About this model"
) -> gr.Markdown:
    """An "About this model" accordion showing the card of `picker`'s model, kept in step with it.

    Call it right under the picker; returns the Markdown inside.
    """
    with gr.Accordion(label, open=False, elem_id=f"{elem_id}-box"):
        card = gr.Markdown(model_card_text(picker.value), elem_id=elem_id)
    picker.change(model_card_text, picker, card, api_visibility="private", queue=False)
    return card


def md(text: str) -> str:
    """Text from files (card.json of any folder) shown in Markdown: no HTML tags survive."""
    return html.escape(text, quote=False)


def esc(text: str) -> str:
    return html.escape(text, quote=True)
