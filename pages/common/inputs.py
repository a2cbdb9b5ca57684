"""Every value that enters a tab is checked once, where it enters, and every failure is a message.

- `number_input`, `slider_input`, `named_errors`: bad API values get a message naming the input
  ("Seed must be a number, not 'abc'.").
- `clamp_note` / `cap_text` fit a value or a text to a tab's limits and say what they used;
  `sampling_args` turns the sampling sliders into the `SamplingConfig` that `stream` takes.
- `friendly_errors` / `job_errors`: failures as messages for the visitor, never a server path.
- `guard_events`: every event checks its raw inputs first (wrong types, lone surrogates), and
  every rejection goes out short (`cap_message`) and is logged as one line, without a traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import re
import reprlib
from abc import ABCMeta
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr

from gpt.jobs import JobError, NotOwnerError
from gpt.sampling import MIN_TEMPERATURE, SamplingConfig

log = logging.getLogger("gpt2lab")
TEXT_REFUSE_FACTOR = 5  # text over 5 x a tab's limit is refused (a flood), shorter text is cut
QUOTE_CHARS = 80  # an error message quotes at most this much of a bad value
MESSAGE_CHARS = 1_000  # ... and is at most this long
_LONG_QUOTE = re.compile(rf"'[^'\n]{{{QUOTE_CHARS + 1},}}'|\"[^\"\n]{{{QUOTE_CHARS + 1},}}\"")
_LONG_RUN = re.compile(rf"\S{{{2 * QUOTE_CHARS + 1},}}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TAG = re.compile(r"<(/?[A-Za-z][^<>\n]{0,40})>")  # `label<TAB>text`: a toast drops it as HTML


def quote(value: Any, limit: int = QUOTE_CHARS) -> str:
    """A bad value as an error message shows it: its repr, at most `limit` characters of it
    (and how long it was), without walking all of a huge list.

    >>> quote("x" * 1000)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'… (1,000 characters)"
    >>> quote(list(range(1000)))
    '[0, 1, 2, 3, 4, 5, ...]'
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    short.maxlevel = 3
    text = short.repr(value)
    return text if len(text) <= limit + 20 else text[: limit + 20] + "…"


_ABS_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"(),:;]+")
_FRAME = re.compile(r"^\s+(File \"|\S)")  # a traceback's frame line or its source line


def scrub(text: str, job_dir: Path | str | None = None) -> str:
    r"""`text` fit to show a visitor: paths in the job folder made relative to it, other absolute
    paths cut to their file name, traceback frames dropped (the exception's line stays).

    >>> print(scrub("no /srv/jobs/j1/data/up.tsv (see /srv/gpt/data.py)", "/srv/jobs/j1"))
    no data/up.tsv (see …/data.py)
    >>> print(scrub("Traceback (most recent call last):\n  File \"/a/b.py\", line 3, in f\n"
    ...             "    x()\nValueError: bad https://h/x"))
    ValueError: bad https://h/x
    """
    if job_dir is not None:
        folder = str(job_dir).rstrip("/\\")
        text = text.replace(folder + os.sep, "").replace(folder, ".")
    lines, in_tb = [], False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_tb = True
            continue
        if in_tb and _FRAME.match(line):
            continue
        in_tb = False
        lines.append(line)
    text = "\n".join(lines)
    return _ABS_PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def cap_message(message: Any) -> str:
    """An error message fit to send back: long quoted values and runs without a space cut, lone
    surrogates escaped, at most MESSAGE_CHARS in all; a `<word>` in angle quotes (the page's
    pop-up reads it as an HTML tag and drops it).

    >>> m = cap_message("Value: '" + "x" * 500 + "' is not in the list of choices")
    >>> m.count("x"), m[-49:]
    (80, "…' (500 characters) is not in the list of choices")
    >>> cap_message("expected 'label<TAB>text'; heads as L<layer>H<head>; 1 < 2 > 0")
    "expected 'label‹TAB›text'; heads as L‹layer›H‹head›; 1 < 2 > 0"
    """
    text = _TAG.sub(r"‹\1›", str(message))
    if len(text) <= 2 * QUOTE_CHARS and not _SURROGATE.search(text):
        return text

    def cut(m: re.Match) -> str:
        q = m.group(0)
        if q[0] in "'\"" and q[-1] == q[0]:
            return f"{q[: QUOTE_CHARS + 1]}…{q[0]} ({len(q) - 2:,} characters)"
        return f"{q[:QUOTE_CHARS]}… ({len(q):,} characters)"

    text = _LONG_RUN.sub(cut, _LONG_QUOTE.sub(cut, text))
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def label_name(label: Any) -> str:
    """A label as a setting's name, without its "(hint)".

    >>> label_name("Token to inspect (-1 = last)")
    'Token to inspect'
    """
    name = str(label or "This setting")
    return name.split(" (", 1)[0].strip() or name


def announce(note: str) -> str:
    """`note`, also shown as a warning pop-up (when not empty)."""
    if note:
        gr.Warning(note)
    return note


def _named_preprocess(self: Any, payload: Any) -> Any:
    name = label_name(self.label)
    if isinstance(self, gr.Slider) and payload is None:  # a slider always has a value
        raise gr.Error(f"{name} must be a number, not None.")
    if isinstance(self, gr.Number | gr.Slider) and isinstance(payload, str):
        try:
            payload = float(payload.strip())
        except ValueError:
            raise gr.Error(f"{name} must be a number, not {quote(payload)}.") from None
    if isinstance(self, gr.Number | gr.Slider) and payload is not None:
        if isinstance(payload, bool) or not isinstance(payload, int | float):
            raise gr.Error(f"{name} must be a number, not {type(payload).__name__} {quote(payload)}.")
        if math.isnan(payload):
            raise gr.Error(f"{name} is not a number (NaN); give a number.")
        if math.isinf(payload) and getattr(self, "precision", None) == 0:
            raise gr.Error(f"{name} must be a whole number, not {payload}.")
    try:
        return type(self).plain.preprocess(self, payload)
    except gr.Error as e:
        raise gr.Error(cap_message(f"{name}: {e.message}"), print_exception=False) from None


@functools.cache
def Named(base: type) -> type:  # noqa: N802 (a class factory)
    """`base` (a Gradio component class) whose `preprocess` names the input in its errors. A
    subclass, not a patch: the check travels with the component, also when Gradio rebuilds it for
    a session (from `block.__class__`). A template class, as `ClearButton` is one of `Button`: the
    page draws it as `base`. Built without Gradio's metaclass step, which would write a `.pyi`
    stub next to this file."""
    attrs = {
        "__module__": __name__,
        "__qualname__": f"Named{base.__name__}",
        "__doc__": f"`gr.{base.__name__}` whose bad API values get an error naming the input.",
        "is_template": True,
        "plain": base,
        "preprocess": _named_preprocess,
    }
    return ABCMeta.__new__(type(base), f"Named{base.__name__}", (base,), attrs)


def named_errors(component: Any) -> Any:
    """`component`, its API values checked first: numbers are type-checked, and every
    component's own rejections get its name ("Kind: Value: x is not in the list of choices")."""
    if not hasattr(type(component), "plain"):
        component.__class__ = Named(type(component))
    return component


def number_input(*args: Any, **kwargs: Any) -> gr.Number:
    return Named(gr.Number)(*args, **kwargs)


def slider_input(*args: Any, **kwargs: Any) -> gr.Slider:
    return Named(gr.Slider)(*args, **kwargs)


def _num(x: float) -> str:
    """A number as a note says it: whole ones in full (2,147,483,647, not 2.14748e+09)."""
    return f"{int(x):,}" if abs(x) < 1e15 and x == int(x) else f"{x:g}"


def clamp_note(
    value: Any, lo: float, hi: float, name: str, integer: bool = False
) -> tuple[float | int, str]:
    """`value` within [lo, hi], and the sentence saying what was changed; NaN and non-numbers
    raise gr.Error naming the setting.

    >>> clamp_note(999, 0, 36, "Token index", integer=True)
    (36, 'Token index must be between 0 and 36; used 36 instead of 999.')
    >>> clamp_note("0.5", 0, 1, "Top-p")
    (0.5, '')
    >>> clamp_note(1e30, -1, 2**31 - 1, "Seed", integer=True)[1]
    'Seed must be between -1 and 2,147,483,647; used 2,147,483,647 instead of 1e+30.'
    >>> clamp_note("-inf", 0, 1, "Top-p")[1]
    'Top-p must be between 0 and 1; used 0 instead of -inf.'
    """
    span = f"between {_num(lo)} and {_num(hi)}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number {span}.") from None
    if math.isnan(x):
        raise gr.Error(f"{name} is not a number; set it {span}.")
    note = ""
    if not lo <= x <= hi:
        clamped = min(max(x, lo), hi)
        note = f"{name} must be {span}; used {_num(clamped)} instead of {_num(x)}."
        x = clamped
    return (int(round(x)) if integer else x), note


def clamp(value: Any, lo: float, hi: float, name: str, integer: bool = False) -> float | int:
    """`clamp_note`, its note shown as a warning pop-up."""
    x, note = clamp_note(value, lo, hi, name, integer)
    announce(note)
    return x


def cap_text(
    text: Any, max_chars: int, what: str = "Text", allow_empty: bool = False
) -> tuple[str, str]:
    """The text cut to its first `max_chars` characters, and the sentence saying so. Missing,
    empty (unless `allow_empty`) or flooding text raises gr.Error.

    >>> cap_text("abcdef", 4)
    ('abcd', 'Text is 6 characters; the limit is 4, so only the first 4 were used.')
    """
    text = "" if text is None else text
    if not isinstance(text, str):
        raise gr.Error(f"{what} must be text.")
    if not text.strip() and not allow_empty:
        raise gr.Error(f"{what} is empty: type something first.")
    said = f"{what} is {len(text):,} characters; the limit is {max_chars:,}"
    if len(text) > max_chars * TEXT_REFUSE_FACTOR:
        raise gr.Error(f"{said}. Shorten it.")
    if len(text) <= max_chars:
        return text, ""
    return text[:max_chars], f"{said}, so only the first {max_chars:,} were used."


def check_text(text: Any, max_chars: int, what: str = "Text", allow_empty: bool = False) -> str:
    """`cap_text`, its note shown as a warning pop-up."""
    text, note = cap_text(text, max_chars, what, allow_empty)
    announce(note)
    return text


def sampling_args(
    temperature, top_k, top_p, repetition_penalty=1.0, max_new_tokens=1, seed=-1, max_new_cap=256, **fixed
) -> SamplingConfig:
    """The sampling sliders as a `SamplingConfig`, each clamped to its slider's range and a
    temperature in (0, MIN_TEMPERATURE) raised to it (said), seed -1 as None; `fixed`: the tab's
    own settings (`stop`, `n_candidates`, ...).

    >>> sampling_args(0.8, 40, 0.95, 1.1, 60, 7).top_k
    40
    """
    t = clamp(temperature, 0, 2, "Temperature")
    if 0 < t < MIN_TEMPERATURE:
        announce(f"Temperature {t:g} is too low to sample with; used {MIN_TEMPERATURE:g} (0 means greedy).")
        t = MIN_TEMPERATURE
    seed = clamp(seed, -1, 2**31 - 1, "Seed", integer=True)
    return SamplingConfig(
        temperature=t,
        top_k=clamp(top_k, 0, 200, "Top-k", integer=True),
        top_p=clamp(top_p, 0.05, 1, "Top-p"),
        repetition_penalty=clamp(repetition_penalty, 1, 2, "Repetition penalty"),
        max_new_tokens=clamp(max_new_tokens, 1, max_new_cap, "Max new tokens", integer=True),
        seed=None if seed < 0 else seed,
        **fixed,
    )


def friendly_errors(fn: Callable) -> Callable:
    """`fn` (a function or a generator) with any exception other than gr.Error turned into a
    gr.Error that says what to do, its traceback logged on the server; a gr.Error (a rejected
    input) passes on without one. Keeps the signature, so Gradio sees `gr.Progress` parameters."""

    @contextmanager
    def translated() -> Iterator[None]:
        try:
            yield
        except gr.Error as e:
            e.print_exception = False  # the visitor's to fix, not the server's
            e.message = cap_message(e.message)
            raise e from None
        except Exception as e:
            log.exception("unexpected error in %s", fn.__name__)
            why = cap_message(scrub(str(e)))
            raise gr.Error(
                f"Something went wrong ({type(e).__name__}: {why}). Try a shorter input or "
                "another model; if it keeps happening, reload the page.",
                print_exception=False,
            ) from e

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any):
            with translated():
                yield from fn(*args, **kwargs)

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        with translated():
            return fn(*args, **kwargs)

    return wrapper


def said_by_twin(fn: Callable) -> Callable:
    """`fn` for a listener that shares its trigger with a twin that checks the same inputs first
    (Inside's surprisal beside the lens, the Tokenizer's byte view beside the tokens): its
    gr.Error raises without a pop-up, since the twin's pop-up already says it (one 200,000-
    character text: one message, not two). Its outputs still show Gradio's error badge, and an
    API caller still gets the message.

    >>> try:
    ...     said_by_twin(lambda: cap_text("", 5))()
    ... except gr.Error as e:
    ...     print(e.message, e.visible)
    Text is empty: type something first. False
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            e.visible = False
            raise

    return wrapper


@contextmanager
def job_errors(words: Callable[[str], str] = str) -> Iterator[None]:
    """The jobs manager's errors as messages, each put in the page's `words` first.

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


TEXT_KINDS = ("Textbox", "Dropdown", "Radio", "Code", "Markdown", "Number", "Slider", "Checkbox")


def _input_name(block_fn: Any, i: int) -> str:
    """Input `i` of an event as a message names it: its label, else its API parameter."""
    if label := getattr(block_fn.inputs[i], "label", None):
        return label_name(label)
    try:
        params = [p.name for p in inspect.signature(block_fn.fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    except (TypeError, ValueError):
        params = []
    return params[i] if i < len(params) else f"Input {i + 1}"


def _surrogate_in(value: Any, budget: list[int]) -> bool:
    """Whether a lone surrogate is anywhere in `value` (a walk of at most `budget[0]` items)."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_surrogate_in(k, budget) or _surrogate_in(v, budget) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_surrogate_in(v, budget) for v in value)
    return False


def check_payloads(block_fn: Any, inputs: list[Any]) -> None:
    """gr.Error naming the input when a raw API value is a list or dict where its component
    takes one value, or holds a lone surrogate (not valid text)."""
    for i, (block, value) in enumerate(zip(block_fn.inputs, inputs, strict=False)):
        single = any(k.__name__ in TEXT_KINDS for k in type(block).__mro__)
        if single and not getattr(block, "multiselect", False) and isinstance(value, list | dict | tuple):
            raise gr.Error(
                f"{_input_name(block_fn, i)} must be a single value, not a "
                f"{type(value).__name__} ({quote(value)}).",
                print_exception=False,
            )
        if _surrogate_in(value, [10_000]):
            raise gr.Error(
                f"{_input_name(block_fn, i)} contains a lone surrogate (a character between "
                "U+D800 and U+DFFF), which is not valid text; remove it.",
                print_exception=False,
            )


def guard_events(demo: Any) -> None:
    """Every event of `demo`: raw inputs checked first (`check_payloads`); an input Gradio
    cannot read is a message, not a traceback; every refusal is short and logged as one line."""
    process_api, preprocess = demo.process_api, demo.preprocess_data

    async def guarded_preprocess(block_fn: Any, inputs: Any, *args: Any, **kwargs: Any):
        try:
            return await preprocess(block_fn, inputs, *args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            raise gr.Error(
                f"An input could not be read ({type(e).__name__}: {cap_message(scrub(str(e)))}); "
                "check the values sent.",
                print_exception=False,
            ) from None

    async def guarded_api(*args: Any, **kwargs: Any):
        block_fn = kwargs["block_fn"] if "block_fn" in kwargs else args[0]
        inputs = kwargs["inputs"] if "inputs" in kwargs else args[1]
        fn = demo.fns[block_fn] if isinstance(block_fn, int) else block_fn
        try:
            if kwargs.get("iterator") is None and isinstance(inputs, list):
                check_payloads(fn, inputs)
            return await process_api(*args, **kwargs)
        except gr.Error as e:
            e.message = cap_message(e.message)
            e.print_exception = False  # the visitor's to fix: one line below, no traceback
            where = f"/{fn.api_name}" if getattr(fn, "api_name", None) else "an event"
            log.warning("rejected input to %s: %s", where, e.message[:200])
            raise

    demo.preprocess_data = guarded_preprocess
    demo.process_api = guarded_api
