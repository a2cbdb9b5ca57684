"""How often a stream updates the page: a few updates a second, whatever the token rate.

Sending the whole text on every token (hundreds a second on a small model) keeps the browser
busy redrawing, so a click on Stop waits behind the updates; each update also costs the server
a round trip through Gradio's queue. With many streams at once (`STREAMS`), each gets a share.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

TEXT_RATE = 12.0  # streamed text: updates a second at most
CHART_RATE = 2.0  # a chart redrawn while streaming: updates a second at most
FULL_RATE_STREAMS = 4  # up to this many streams at once each get the full rates; beyond, a share


class Streams:
    """How many streams run at once (`with STREAMS.running(): ...`). Every update costs the
    server's one event loop a few ms: past `FULL_RATE_STREAMS` streams, all of them together
    send what 4 would (16 visitors: 3 text updates a second each), leaving the CPU to the model.

    >>> s = Streams()
    >>> with s.running(), s.running():
    ...     s.n
    2
    >>> s.n
    0
    """

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._lock:
            self.n += 1
        try:
            yield
        finally:
            with self._lock:
                self.n -= 1

    def share(self) -> float:
        """How much longer than alone each stream waits between updates (1: not at all)."""
        return max(1.0, self.n / FULL_RATE_STREAMS)


STREAMS = Streams()


class Pace:
    """Says whether an update is due: at most `per_second` a second, the first one at once.

    >>> now = [0.0]
    >>> pace = Pace(10, clock=lambda: now[0])
    >>> [pace.due() for now[0] in (0.0, 0.05, 0.1, 0.12, 0.25)]
    [True, False, True, False, True]
    >>> Pace(math.inf).due() and Pace(math.inf).due()
    True
    """

    def __init__(
        self, per_second: float, clock: Callable[[], float] = time.monotonic,
        streams: Streams | None = None,
    ):
        self.gap, self.clock, self.next = 1.0 / per_second, clock, -math.inf
        self.streams = streams  # the gap grows with `streams.share()` when given

    def due(self) -> bool:
        now = self.clock()
        if now < self.next:
            return False
        self.next = now + self.gap * (self.streams.share() if self.streams else 1.0)
        return True


_NOTHING = object()


def paced(
    updates: Iterable[T], per_second: float = TEXT_RATE,
    clock: Callable[[], float] = time.monotonic, streams: Streams | None = None,
) -> Iterator[T]:
    """`updates`, each the whole state so far, thinned to at most `per_second` a second; the
    last one always comes through.

    >>> now = [0.0]
    >>> def tokens():
    ...     for i in range(10):
    ...         now[0] = i * 0.03
    ...         yield i
    >>> list(paced(tokens(), 10, clock=lambda: now[0]))
    [0, 4, 8, 9]
    """
    pace = Pace(per_second, clock, streams)
    held: object = _NOTHING
    for update in updates:
        if pace.due():
            held = _NOTHING
            yield update
        else:
            held = update
    if held is not _NOTHING:
        yield held  # type: ignore[misc]
