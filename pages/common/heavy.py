"""Heavy and light events: each tab marks its own (`**heavy(group, limit)`, `**light(name)`).

A heavy event runs a model (or trains); a light one only reads or writes a little. In multi-user
mode (a public Space) app.py calls `share_heavy_slots`: every heavy event then shares one queue of
a few slots, so a flood of them leaves CPU to the light ones, which get no limit at all; and
`fair_heavy_queue`: that queue is served round-robin by session, and a session (or a client
address) may only have a few heavy runs waiting or running, so one client's flood delays
another's run by a few runs at most.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger("gpt2lab")

HEAVY, LIGHT = "heavy", "light"


def heavy(group: str, limit: int | None | str = "default") -> dict[str, Any]:
    """An event's keywords marking it heavy, in the tab's concurrency group `group`."""
    return dict(concurrency_id=f"{HEAVY}:{group}", concurrency_limit=limit)


def light(name: str, limit: int | None | str = "default") -> dict[str, Any]:
    return dict(concurrency_id=f"{LIGHT}:{name}", concurrency_limit=limit)


def mark_heavy(demo: Any, fn: Any, group: str, limit: int | None | str = "default") -> None:
    """Mark heavy every event of `demo` that runs `fn`: for the events a component makes itself
    (`gr.ChatInterface` takes a concurrency limit, not a group)."""
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and inspect.unwrap(block_fn.fn) is inspect.unwrap(fn):
            block_fn.concurrency_id = heavy(group)["concurrency_id"]
            block_fn.concurrency_limit = limit


def share_heavy_slots(demo: Any, slots: int, light_slots: int | None = None) -> dict[str, int]:
    """Put every heavy event of `demo` in one concurrency group of `slots`, give each light
    one `light_slots` (None: no limit), so that a flood of one light endpoint (a script looping
    /jobs) holds only a few of Gradio's workers; returns how many events each got
    ({"heavy": n, "light": m})."""
    counts = {HEAVY: 0, LIGHT: 0}
    for fn in demo.fns.values():
        kind = str(fn.concurrency_id).split(":", 1)[0]
        if kind in counts:
            counts[kind] += 1
            if kind == HEAVY:
                fn.concurrency_id, fn.concurrency_limit = HEAVY, slots
            else:
                fn.concurrency_limit = light_slots
    return counts


class QuietLog:
    """Refusals in the log without flooding it: per kind, one line at most every `every` s, which
    says how many more like it went unlogged since the last (a script looping /jobs is refused
    dozens of times a second)."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self._last: dict[str, float] = {}
        self._skipped: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warn(self, kind: str, message: str) -> bool:
        """Log `message` unless a line of `kind` went out less than `every` s ago; whether it
        was logged."""
        now = self.clock()
        with self._lock:
            if now - self._last.get(kind, -self.every) < self.every:
                self._skipped[kind] += 1
                return False
            self._last[kind] = now
            skipped = self._skipped.pop(kind, 0)
        more = f" (and {skipped} more like it since the last line)" if skipped else ""
        log.warning("refused a request: %s%s", message, more)
        return True


def _fair_order(waiting: list[Any], running: Counter[str], address: Callable[[Any], Any]) -> list:
    """`waiting` (queued events) round-robin: each session's first waiting run (its rank counts
    its running ones) before anyone's second, and within a rank, addresses in turn; else in
    arrival order (a stable sort)."""
    per_session: Counter[str] = Counter(running)
    per_level: Counter[tuple[int, Any]] = Counter()
    keys = {}
    for i, event in enumerate(waiting):
        rank = per_session[event.session_hash]
        per_session[event.session_hash] += 1
        where = address(event)
        keys[id(event)] = (rank, per_level[(rank, where)], i)
        per_level[(rank, where)] += 1
    return sorted(waiting, key=lambda event: keys[id(event)])


def fair_heavy_queue(
    demo: Any,
    per_session: int = 2,
    per_address: int | None = None,
    address_of: Callable[[Any], str | None] = lambda request: None,
    per_group: int | None = None,
) -> None:
    """Serve `demo`'s queue fairly: at most `per_session` heavy runs waiting or running per
    session and endpoint, at most `per_address` heavy runs per client address (`address_of` a
    request; None: no limit), at most `per_group` requests waiting for any one concurrency
    group (so a flood of one endpoint does not fill the queue for the others); a request over
    any is answered at once with an error that says so; the heavy runs that wait are ordered
    round-robin (`_fair_order`). Call after `demo.queue()`."""
    from gradio.server_messages import ProcessCompletedMessage

    queue = demo._queue
    push = queue.push

    def is_heavy(event: Any) -> bool:
        return str(event.concurrency_id).split(":", 1)[0] == HEAVY

    def where(event: Any) -> str | None:
        return address_of(event.request)

    quiet = QuietLog()

    def refuse(event: Any, waiting: list, message: str, kind: str) -> None:
        if event in waiting:
            waiting.remove(event)
        queue.event_ids_to_events.pop(event._id, None)
        error = {"error": message, "visible": True, "duration": None, "title": "Error"}
        queue.send_message(event, ProcessCompletedMessage(output=error, title="Error", success=False))
        quiet.warn(f"{kind} {event.fn.api_name}", message)

    async def fair_push(body: Any, request: Any, username: str | None):
        ok, event_id, state = await push(body=body, request=request, username=username)
        event = queue.event_ids_to_events.get(event_id) if ok else None
        if event is None:
            return ok, event_id, state
        waiting = queue.event_queue_per_concurrency_id[event.concurrency_id].queue
        name = f"/{event.fn.api_name}" if event.fn.api_name else "this tab"
        if per_group is not None and event in waiting and len(waiting) > per_group:
            refuse(event, waiting, (
                f"The server is busy: {len(waiting) - 1} requests like this one ({name}) are "
                "waiting already; try again in a moment."
            ), "busy")  # fmt: skip
            return ok, event_id, state
        if not is_heavy(event):
            return ok, event_id, state
        running = [e for job in queue.active_jobs if job for e in job if is_heavy(e)]
        others = [e for e in running if e is not event] + [
            e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue
            if e is not event and is_heavy(e)
        ]  # fmt: skip
        mine = [e for e in others if e.session_hash == event.session_hash and e.fn is event.fn]
        if len(mine) >= per_session:
            refuse(event, waiting, (
                f"You already have {len(mine)} runs of {name} waiting or running (at most "
                f"{per_session} per visitor here, so that everyone gets a turn); wait for one "
                "to finish."
            ), "per-session")  # fmt: skip
            return ok, event_id, state
        here = where(event)
        if per_address is not None and here is not None:
            near = [e for e in others if where(e) == here]
            if len(near) >= per_address:
                refuse(event, waiting, (
                    f"{len(near)} model runs from your network address are already waiting or "
                    f"running (at most {per_address} per address here); try again in a moment."
                ), "per-address")  # fmt: skip
                return ok, event_id, state
        busy = Counter(e.session_hash for e in running if e.concurrency_id == event.concurrency_id)
        waiting[:] = _fair_order(waiting, busy, where)
        return ok, event_id, state

    queue.push = fair_push
