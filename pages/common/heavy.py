"""Heavy and light events: each tab marks its own (`**heavy(group)`, `**light(name)`,
`**batched(group)`).

A heavy event runs a model (or trains); a light one only reads or writes a little. In multi-user
mode app.py calls `share_heavy_slots` (every heavy event shares one queue of a few slots, so a
flood of them leaves CPU to the light ones) and `fair_heavy_queue` (that queue is served
round-robin by session, and a session or client address may only have a few heavy runs waiting
or running, so one client's flood delays another's run by a few runs at most).

A batched event (Generate's and Chat's streams) is heavy too, but its runs share decode steps
(`gpt.batching`): they get a group of their own, `DECODE_SLOTS` wide, so that concurrent streams
reach the batcher together instead of queueing behind two slots; the batcher is then the
concurrency control (`decode_limits`; a run that does not fit waits there for one to end).
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
DECODE = f"{HEAVY}:decode"  # the batched events' group: heavy, with slots of their own
DECODE_SLOTS_ENV = "GPT2LAB_DECODE_SLOTS"  # batched runs at once, and rows of a batch (16)
DECODE_MEMORY_ENV = "GPT2LAB_DECODE_MEMORY_MB"  # a batch's KV cache (default: cache cap / 5)
DECODE_THREADS_ENV = "GPT2LAB_DECODE_THREADS"  # the batcher's torch threads (all but one)
DECODE_PACK_ENV = "GPT2LAB_DECODE_PACK_MB"  # pre-packed weights for batched steps, at most (768)
DECODE_SLOTS = 16


def heavy(group: str, limit: int | None | str = "default") -> dict[str, Any]:
    return dict(concurrency_id=f"{HEAVY}:{group}", concurrency_limit=limit)


def batched(group: str, limit: int | None | str = None) -> dict[str, Any]:
    """Heavy and batched (its runs share decode steps): `limit` runs at once (`decode_slots()`)."""
    return dict(concurrency_id=f"{DECODE}:{group}", concurrency_limit=limit or decode_slots())


def decode_slots() -> int:
    """Batched runs at once and rows of a batch: $GPT2LAB_DECODE_SLOTS, else 16."""
    from pages.visitors import env_int

    return env_int(DECODE_SLOTS_ENV, DECODE_SLOTS) or DECODE_SLOTS


def decode_limits() -> Any:
    """The batcher's `BatchLimits`: `decode_slots()` rows; a KV cache of
    $GPT2LAB_DECODE_MEMORY_MB, else a fifth of the model cache's cap (of 2,500 MB: 500 MB, 16 rows
    of 440 positions of GPT-2 124M); $GPT2LAB_DECODE_THREADS torch threads, else all but one (1
    on a 2-core Space: the other serves the pages, which otherwise stall every two-thread step);
    weights pre-packed when the copy takes at most $GPT2LAB_DECODE_PACK_MB, else 768 MB (GPT-2
    124M: 494 MB; larger sizes step unpacked)."""
    import torch

    from gpt.batching import BatchLimits
    from gpt.lab.registry import cache_cap_bytes
    from pages.visitors import env_int, env_number

    default_mb = cache_cap_bytes() / 5 / 2**20
    mb = env_number(DECODE_MEMORY_ENV, default_mb) or default_mb
    threads = env_int(DECODE_THREADS_ENV, max(1, torch.get_num_threads() - 1))
    pack_mb = env_number(DECODE_PACK_ENV, 768) or 0
    return BatchLimits(decode_slots(), int(mb * 2**20), threads, int(pack_mb * 2**20))


def sampler_for(model: Any) -> Any:
    """What makes a run's tokens: the model's shared batcher for a GPT, else `sample_steps`."""
    from gpt.batching import batcher_for
    from gpt.model import GPT
    from gpt.sampling import sample_steps

    if isinstance(model, GPT):
        return batcher_for(model, decode_limits()).steps
    return sample_steps


def light(name: str, limit: int | None | str = "default") -> dict[str, Any]:
    return dict(concurrency_id=f"{LIGHT}:{name}", concurrency_limit=limit)


def mark_heavy(
    demo: Any, fn: Any, group: str, limit: int | None | str = "default", kind: Any = None
) -> None:
    """Mark heavy (`kind`: `heavy` or `batched`) every event of `demo` that runs `fn`: for events
    a component makes itself (`gr.ChatInterface` takes a concurrency limit, not a group)."""
    marks = (kind or heavy)(group, limit)
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and inspect.unwrap(block_fn.fn) is inspect.unwrap(fn):
            block_fn.concurrency_id = marks["concurrency_id"]
            block_fn.concurrency_limit = marks["concurrency_limit"]


def share_heavy_slots(
    demo: Any, slots: int, light_slots: int | None = None, batched_slots: int | None = None
) -> dict[str, int]:
    """Every heavy event of `demo` in one concurrency group of `slots`, every batched one in the
    decode group of `batched_slots` (None: `decode_slots()`), each light one `light_slots` (so a
    script looping /jobs holds only a few of Gradio's workers); how many events each got."""
    counts = {HEAVY: 0, LIGHT: 0, DECODE: 0}
    for fn in demo.fns.values():
        cid = str(fn.concurrency_id)
        kind = DECODE if cid.startswith(f"{DECODE}:") else cid.split(":", 1)[0]
        if kind in counts:
            counts[kind] += 1
            if kind == DECODE:
                fn.concurrency_id, fn.concurrency_limit = DECODE, batched_slots or decode_slots()
            elif kind == HEAVY:
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
        """Log `message` unless a line of `kind` went out less than `every` s ago."""
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
    """Serve `demo`'s queue fairly (call after `demo.queue()`): at most `per_session` heavy runs
    waiting or running per session and endpoint, `per_address` per client address (`address_of`
    a request), `per_group` requests waiting for any one concurrency group (so a flood of one
    endpoint does not fill the queue for the others); a request over any is answered at once
    with an error that says so; waiting heavy runs are ordered round-robin (`_fair_order`)."""
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

    def refusal(event: Any, waiting: list, running: list) -> tuple[str, str] | None:
        """(message, kind) when `event` is over a limit, else None."""
        name = f"/{event.fn.api_name}" if event.fn.api_name else "this tab"
        if per_group is not None and event in waiting and len(waiting) > per_group:
            return (f"The server is busy: {len(waiting) - 1} requests like this one ({name}) are "
                    "waiting already; try again in a moment.", "busy")
        if not is_heavy(event):
            return None
        others = [e for e in running if e is not event] + [
            e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue
            if e is not event and is_heavy(e)
        ]  # fmt: skip
        mine = [e for e in others if e.session_hash == event.session_hash and e.fn is event.fn]
        if len(mine) >= per_session:
            return (f"You already have {len(mine)} runs of {name} waiting or running (at most "
                    f"{per_session} per visitor here, so that everyone gets a turn); wait for one "
                    "to finish.", "per-session")
        here = where(event) if per_address is not None else None
        near = [e for e in others if here is not None and where(e) == here]
        if here is not None and len(near) >= per_address:
            return (f"{len(near)} model runs from your network address are already waiting or "
                    f"running (at most {per_address} per address here); try again in a moment.",
                    "per-address")
        return None

    async def fair_push(body: Any, request: Any, username: str | None):
        ok, event_id, state = await push(body=body, request=request, username=username)
        event = queue.event_ids_to_events.get(event_id) if ok else None
        if event is not None:
            waiting = queue.event_queue_per_concurrency_id[event.concurrency_id].queue
            running = [e for job in queue.active_jobs if job for e in job if is_heavy(e)]
            if (refused := refusal(event, waiting, running)) is not None:
                refuse(event, waiting, *refused)
            elif is_heavy(event):
                busy = Counter(e.session_hash for e in running
                               if e.concurrency_id == event.concurrency_id)
                waiting[:] = _fair_order(waiting, busy, where)
        return ok, event_id, state

    queue.push = fair_push
