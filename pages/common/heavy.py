"""Heavy and light events: each tab marks its own (`**heavy(group, limit)`, `**light(name)`).

A heavy event runs a model (or trains); a light one only reads or writes a little. In multi-user
mode (a public Space) app.py calls `share_heavy_slots`: every heavy event then shares one queue of
a few slots, so a flood of them leaves CPU to the light ones, which get no limit at all.
"""

from __future__ import annotations

import inspect
from typing import Any

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


def share_heavy_slots(demo: Any, slots: int) -> dict[str, int]:
    """Put every heavy event of `demo` in one concurrency group of `slots`, lift the light ones'
    limit; returns how many events each got ({"heavy": n, "light": m})."""
    counts = {HEAVY: 0, LIGHT: 0}
    for fn in demo.fns.values():
        kind = str(fn.concurrency_id).split(":", 1)[0]
        if kind in counts:
            counts[kind] += 1
            if kind == HEAVY:
                fn.concurrency_id, fn.concurrency_limit = HEAVY, slots
            else:
                fn.concurrency_limit = None
    return counts
