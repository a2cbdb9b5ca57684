"""Heavy and light events: each tab marks its own, `share_heavy_slots` reads the marks.

A heavy event runs a model (or trains); a light one only reads or writes a little. A tab passes
`**heavy(group, limit)` or `**light(name)` to the event; here they keep the tab's own concurrency
group and limit. In multi-user mode (a public Space) app.py calls `share_heavy_slots`: every
heavy event shares one queue of a few slots, so a flood of them leaves CPU to the light ones,
which then get no limit at all.
"""

from __future__ import annotations

import inspect
from typing import Any

HEAVY, LIGHT = "heavy", "light"


def heavy(group: str, limit: int | None | str = "default") -> dict[str, Any]:
    """An event's keywords marking it heavy: in concurrency group `group` (events of one tab
    that share the tab's slots), `limit` at a time ("default": the app's default)."""
    return dict(concurrency_id=f"{HEAVY}:{group}", concurrency_limit=limit)


def light(name: str, limit: int | None | str = "default") -> dict[str, Any]:
    """An event's keywords marking it light (in its own concurrency group `name`)."""
    return dict(concurrency_id=f"{LIGHT}:{name}", concurrency_limit=limit)


def mark_heavy(demo: Any, fn: Any, group: str, limit: int | None | str = "default") -> None:
    """Mark heavy every event of `demo` that runs `fn`: for the events a component makes
    itself (`gr.ChatInterface` takes a concurrency limit, not a group)."""
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and inspect.unwrap(block_fn.fn) is inspect.unwrap(fn):
            block_fn.concurrency_id = heavy(group)["concurrency_id"]
            block_fn.concurrency_limit = limit


def share_heavy_slots(demo: Any, slots: int) -> dict[str, int]:
    """Put every heavy event of `demo` in one concurrency group of `slots`, and lift the limit
    of the light ones; returns how many events each got ({"heavy": n, "light": m})."""
    counts = {HEAVY: 0, LIGHT: 0}
    for fn in demo.fns.values():
        kind = str(fn.concurrency_id).split(":", 1)[0]
        if kind == HEAVY:
            fn.concurrency_id, fn.concurrency_limit = HEAVY, slots
        elif kind == LIGHT:
            fn.concurrency_limit = None
        else:
            continue
        counts[kind] += 1
    return counts
