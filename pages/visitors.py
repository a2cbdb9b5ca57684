"""Who is acting: single-user mode (one person's machine) or multi-user mode (a public Space).

In multi-user mode every job has an owner and only its owner, or whoever holds the admin token,
may cancel, resume or delete it (`gpt.jobs.JobPolicy` decides, on the server; a request says
who asks as a `gpt.jobs.Visitor`, made by `visitor_of`). The owner is:

- `hf:<username>` when the visitor signed in with Hugging Face (`gr.OAuthProfile`, on a Space
  with `hf_oauth: true`);
- otherwise `anon:<digest>`, where the digest is a hash of a random per-browser token that the
  page issues on its first load and keeps in `gr.BrowserState` (so it survives reloads). The
  token is a secret of that browser: it never shows in the page, the jobs list or the database,
  and an API client acts as a visitor by passing its own token (at least 32 random URL-safe
  characters), which only ever gives it the jobs it started with that token.

>>> owner_of("x" * 40, None).startswith("anon:"), owner_of("short", None)
(True, None)
>>> who("anon:1", "anon:1"), who("anon:1", "anon:2"), who(None, "anon:2")
('you', 'another visitor', '—')
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Any

import gradio as gr

from gpt.jobs import Visitor

MULTIUSER_ENV = "GPT2LAB_MULTIUSER"  # 1 / 0 force multi-user mode on or off
ADMIN_ENV = "GPT2LAB_ADMIN_TOKEN"  # whoever types it in the Fine-tune tab manages every job
PER_VISITOR_ENV = "GPT2LAB_JOBS_PER_VISITOR"  # queued-or-running jobs per visitor (default 1)
BUDGET_ENV = "GPT2LAB_DISK_BUDGET_GB"  # job folders' disk budget (default 10 in multi-user mode)
STORAGE_KEY = "gpt2lab-visitor"
SECRET_FILE = ".browser-state-secret"  # in the jobs folder: BrowserState's encryption key
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,128}")


def multiuser_mode(env: dict[str, str] | None = None) -> bool:
    """On where SPACE_ID is set (a Hugging Face Space), unless GPT2LAB_MULTIUSER says 1 or 0.

    >>> multiuser_mode({}), multiuser_mode({"SPACE_ID": "u/lab"}), multiuser_mode(
    ...     {"SPACE_ID": "u/lab", "GPT2LAB_MULTIUSER": "0"})
    (False, True, False)
    """
    env = os.environ if env is None else env
    forced = env.get(MULTIUSER_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    return bool(env.get("SPACE_ID"))


def env_number(name: str, default: float | None) -> float | None:
    """A number setting from the environment (empty: `default`; "none": no limit).

    >>> os.environ["GPT2LAB_TEST_N"] = "0.5"; env_number("GPT2LAB_TEST_N", 1)
    0.5
    """
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("none", "off", "unlimited"):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number or 'none', not {raw!r}") from None


def env_int(name: str, default: int | None) -> int | None:
    """An integer setting from the environment (empty: `default`; "none": no limit)."""
    value = env_number(name, default)
    return None if value is None else int(value)


def new_token() -> str:
    """A fresh browser token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def valid_token(token: Any) -> bool:
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


def owner_of(token: Any, profile: Any = None) -> str | None:
    """The owner string of whoever sent a request: `hf:<user>` when signed in, `anon:<hash of
    the browser token>` for a valid token, else None (no identity: may change nothing)."""
    username = getattr(profile, "username", None)
    if username:
        return f"hf:{username}"
    if valid_token(token):
        return "anon:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    return None


def is_admin(typed: Any, env: dict[str, str] | None = None) -> bool:
    """Whether `typed` is the admin token (GPT2LAB_ADMIN_TOKEN; never true when it is unset)."""
    expected = (os.environ if env is None else env).get(ADMIN_ENV, "")
    if not expected or not isinstance(typed, str) or not typed:
        return False
    return hmac.compare_digest(typed.encode(), expected.encode())


def visitor_of(token: Any, profile: Any = None, admin_token: Any = "") -> Visitor:
    """Who sent a request: its owner (`owner_of`) and whether it carries the admin token."""
    return Visitor(owner_of(token, profile), is_admin(admin_token))


def who(owner: str | None, me: str | None) -> str:
    """The jobs list's anonymised owner: "you", "another visitor", or "—" for no owner."""
    if owner is None:
        return "—"
    return "you" if me is not None and owner == me else "another visitor"


def browser_secret(folder: Path) -> str:
    """BrowserState's encryption key, kept in `folder` so tokens survive an app restart
    (a fresh random one when the folder cannot be written)."""
    path = Path(folder) / SECRET_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= 32:
            return text
    except OSError:
        pass
    text = secrets.token_hex(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        pass
    return text


def token_state(folder: Path) -> gr.BrowserState:
    """The page's browser-token store (one per app, shared by every tab that starts jobs)."""
    return gr.BrowserState("", storage_key=STORAGE_KEY, secret=browser_secret(folder))


def ensure_token(token: Any) -> str:
    """The browser's token, or a new one on its first visit (the page's load event)."""
    return token if valid_token(token) else new_token()
