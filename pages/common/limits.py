"""Request and memory limits of a public app: request bodies (`BodyLimit`), kept session state
(`StateBudget`), cheap new sessions (`light_sessions`) and the log file (`rotating_log`)."""

from __future__ import annotations

import logging
import logging.handlers
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("gpt2lab")
JSON_BYTES = 2 * 1024 * 1024  # a request that is not an upload: text and settings, as JSON
UPLOAD_SLACK = 1024 * 1024  # an upload's multipart framing, above the file cap
STATE_ENV = "GPT2LAB_STATE_BUDGET_MB"  # kept session state, all sessions (multi-user: 512)


class BodyLimit:
    """ASGI middleware (on Gradio's FastAPI app): 413 for a request body over `json_bytes`
    (`upload_bytes` for a path ending in /upload), before its body is read (Content-Length) or
    as soon as a streamed body passes the cap. Other traffic (websockets, lifespan) passes."""

    def __init__(self, app: Any, json_bytes: int = JSON_BYTES, upload_bytes: int = 20_000_000):
        self.app, self.json_bytes = app, json_bytes
        self.upload_bytes = upload_bytes + UPLOAD_SLACK

    def cap(self, scope: dict) -> int:
        path = scope.get("path", "").rstrip("/")
        return self.upload_bytes if path.endswith("/upload") else self.json_bytes

    async def refuse(self, send: Callable, cap: int, size: int | None, scope: dict) -> None:
        what = f"{size:,} bytes" if size is not None else "over the limit"
        log.warning("refused a %s request to %s: %s (limit %s bytes)", scope.get("method"),
                    scope.get("path"), what, f"{cap:,}")
        body = (
            f'{{"detail": "The request is too large ({what}); the limit is {cap:,} bytes."}}'
        ).encode()
        await send({
            "type": "http.response.start", "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        cap = self.cap(scope)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = cap + 1
            if size > cap:
                return await self.refuse(send, cap, size, scope)
        seen, refused, started = 0, False, False

        async def counted_receive() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap and not refused:
                    refused = True
                    if not started:
                        await self.refuse(send, cap, None, scope)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if refused:  # our 413 went out: the app's own answer is dropped
                return
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise  # the app's own failure; ours (a cut-off body) is answered already


class StateBudget:
    """What sessions keep between events (a run's logits), under one byte budget for all of
    them: once the total passes `budget`, the oldest items are dropped (`drop(item)`)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[int, tuple[Any, int, Callable[[Any], None]]] = OrderedDict()
        self._lock = threading.Lock()
        self.total = 0

    def keep(self, item: Any, size: int, drop: Callable[[Any], None]) -> None:
        dropped = []
        with self._lock:
            old = self._items.pop(id(item), None)
            if old is not None:
                self.total -= old[1]
            self._items[id(item)] = (item, size, drop)
            self.total += size
            while self.total > self.budget and self._items:
                _, (victim, victim_size, victim_drop) = self._items.popitem(last=False)
                self.total -= victim_size
                dropped.append((victim, victim_drop))
        for victim, victim_drop in dropped:
            victim_drop(victim)


def rotating_log(path: str | Path, max_bytes: int = 5_000_000, backups: int = 2) -> None:
    """Also write the log's warnings (Gradio's and uvicorn's too) to `path`, rotated: at most
    (backups + 1) x max_bytes on disk."""
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)


_budget: StateBudget | None = None


def state_budget() -> StateBudget:
    """The app's one session-state budget: $GPT2LAB_STATE_BUDGET_MB, else 512 MB in multi-user
    mode and none locally."""
    global _budget
    if _budget is None:
        from pages.visitors import env_number, multiuser_mode

        mb = env_number(STATE_ENV, 512 if multiuser_mode() else None)
        _budget = StateBudget(float("inf") if mb is None else int(mb * 2**20))
    return _budget


class _BlocksWithoutConfigs:
    """The app as `SessionState(blocks)` reads it, with no block to copy the config of."""

    def __init__(self, blocks: Any) -> None:
        self._blocks, self.blocks = blocks, {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._blocks, name)


def light_sessions() -> None:
    """Make a new Gradio session cheap (for every app in this process; idempotent).

    `SessionState.__init__` copies `config_for_block` of every block (383 here): ~25 ms of the
    server's event loop per new session, and every API call without a session of its own is
    one, so a script looping `/jobs` held the loop and every other request waited behind it;
    each such session also kept its copy (up to 10,000). Sessions now start with none: a block's
    entry is computed when its value first changes, and the only reader of them all, the
    deep-link route (`gr.DeepLinkButton`, unused here), lists the blocks a session changed."""
    from gradio import state_holder

    cls = state_holder.SessionState
    if getattr(cls, "_gpt2lab_light", False):
        return
    init = cls.__init__

    def __init__(self: Any, blocks: Any) -> None:
        init(self, _BlocksWithoutConfigs(blocks))

    cls.__init__ = __init__
    cls._gpt2lab_light = True
