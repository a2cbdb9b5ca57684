"""Failures as messages for the visitor: what went wrong and what to do, never a server path."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from gpt.jobs import JobError, NotOwnerError, scrub

log = logging.getLogger("gpt2lab")


def _unexpected(fn_name: str, e: Exception) -> gr.Error:
    """The visitor's words for an unexpected error (no server paths); its traceback goes to
    the server log once, here."""
    log.exception("unexpected error in %s", fn_name)
    return gr.Error(
        f"Something went wrong ({type(e).__name__}: {scrub(str(e))}). Try a shorter input or "
        "another model; if it keeps happening, reload the page.",
        print_exception=False,
    )


def friendly_errors(fn: Callable) -> Callable:
    """Turn any exception other than gr.Error into a gr.Error that says what to do (its
    traceback logged on the server, no server path shown); a gr.Error, a rejected input, is
    passed on without a traceback in the server log.

    Works for plain functions and generators (streaming events), and keeps the signature so
    Gradio still sees `gr.Progress` parameters.
    """

    @contextmanager
    def translated() -> Iterator[None]:
        try:
            yield
        except gr.Error as e:
            e.print_exception = False  # the visitor's to fix, not the server's
            raise e from None
        except Exception as e:
            raise _unexpected(fn.__name__, e) from e

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
