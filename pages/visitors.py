"""Who is acting: single-user mode (one person's machine) or multi-user mode (a public Space).

In multi-user mode every job has an owner and only its owner, or whoever holds the admin token,
may cancel, resume or delete it (`gpt.jobs.JobPolicy` decides, on the server; a request says
who asks as a `gpt.jobs.Visitor`, made by `visitor_of`). The owner is:

- `hf:<username>` when the visitor signed in with Hugging Face (`gr.OAuthProfile`, on a Space
  with `hf_oauth: true`);
- otherwise `anon:<digest>`, where the digest is a hash of a visitor token that the server issues
  and signs (HMAC-SHA256 with a key that never leaves the server: `GPT2LAB_VISITOR_KEY`, else a
  file in the jobs folder). The page gets one on its first load and keeps it in
  `gr.BrowserState` (so it survives reloads); an API client asks the `/visitor` endpoint for one
  and passes it as `visitor_token`. A token the server did not sign (made up, or altered) is
  refused, so a client cannot mint identities; it can ask for many, which is why job limits also
  count per client address (`client_address`). The token is a secret of its holder: it never
  shows in the page, the jobs list or the database.
- Admin: whoever types `GPT2LAB_ADMIN_TOKEN` (compared in constant time; after a few wrong tries
  from an address, admin checks from it are locked for a while: `AdminGuard`).

>>> keys = TokenKeys(b"k" * 32)
>>> owner_of(keys.issue(), None, keys).startswith("anon:"), owner_of("x" * 40, None, keys)
(True, None)
>>> who("anon:1", "anon:1"), who("anon:1", "anon:2"), who(None, "anon:2")
('you', 'another visitor', '—')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from gpt.jobs import Visitor

MULTIUSER_ENV = "GPT2LAB_MULTIUSER"  # 1 / 0 force multi-user mode on or off
ADMIN_ENV = "GPT2LAB_ADMIN_TOKEN"  # whoever types it in the Fine-tune tab manages every job
PER_VISITOR_ENV = "GPT2LAB_JOBS_PER_VISITOR"  # queued-or-running jobs per visitor (default 1)
PER_ADDRESS_ENV = "GPT2LAB_JOBS_PER_ADDRESS"  # ... per client address, anonymous (default 2)
BUDGET_ENV = "GPT2LAB_DISK_BUDGET_GB"  # job folders' disk budget (default 10 in multi-user mode)
KEY_ENV = "GPT2LAB_VISITOR_KEY"  # the key that signs visitor tokens (else KEY_FILE)
FORWARDED_ENV = "GPT2LAB_TRUST_FORWARDED"  # 1: the client address is X-Forwarded-For's first
STORAGE_KEY = "gpt2lab-visitor"
KEY_FILE = ".visitor-key"  # in the jobs folder, mode 0600: the token-signing key
OLD_SECRET_FILE = ".browser-state-secret"  # an earlier version's BrowserState key, published
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{32,128}")  # a token's random part (an old token: all of it)
SIG_LEN = 43  # an HMAC-SHA256, URL-safe base64 without padding
TOKEN_RE = re.compile(r"([A-Za-z0-9_-]{32,128})\.([A-Za-z0-9_-]{43})")
REFUSED = (
    "This visitor token was not issued by this server (made up or altered), so it is refused. "
    "Reload the page; API clients get a token from the /visitor endpoint and pass it as "
    "visitor_token."
)
log = logging.getLogger("gpt2lab")


class TokenKeys:
    """Issues and checks visitor tokens: `<random>.<HMAC-SHA256 of it>`, with a key that never
    leaves the server. The owner digest hashes only the random part, so a token from before
    tokens were signed (the random part alone) keeps its jobs once `upgrade` signs it."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, nonce: str) -> str:
        mac = hmac.new(self._key, b"gpt2lab-visitor:" + nonce.encode(), hashlib.sha256)
        return f"{nonce}.{base64.urlsafe_b64encode(mac.digest()).decode().rstrip('=')}"

    def issue(self) -> str:
        """A fresh token: 256 random bits and their signature."""
        return self.sign(secrets.token_urlsafe(32))

    def nonce(self, token: Any) -> str | None:
        """The token's random part when this server signed it, else None."""
        if not isinstance(token, str) or (m := TOKEN_RE.fullmatch(token)) is None:
            return None
        return m.group(1) if hmac.compare_digest(self.sign(m.group(1)), token) else None

    def browser_secret(self) -> str:
        """BrowserState's key: the page needs it to read its store, so `/config` shows it; it is
        derived one-way from the signing key and guards nothing (the token's signature does)."""
        mac = hmac.new(self._key, b"gpt2lab-browser-state", hashlib.sha256)
        return mac.hexdigest()[:32]


def env_key() -> bytes | None:
    """$GPT2LAB_VISITOR_KEY as the signing key (None when unset)."""
    if not (env := os.environ.get(KEY_ENV, "").strip()):
        return None
    if len(env) < 16:
        raise ValueError(f"{KEY_ENV} must be at least 16 characters")
    return env.encode()


def folder_key(folder: Path, fallback: bytes) -> bytes:
    """The signing key kept in `folder`/.visitor-key (mode 0600), so tokens survive restarts;
    `fallback` is written there when there is none yet (and used when it cannot be)."""
    path = Path(folder) / KEY_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= 64:
            return bytes.fromhex(text)
    except (OSError, ValueError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(fallback.hex())
    except OSError as e:
        log.warning(
            "cannot keep the visitor-token key in %s (%s): tokens last until a restart",
            folder, e.strerror or type(e).__name__,
        )  # fmt: skip
    return fallback


_keys: TokenKeys | None = None
_keys_lock = threading.Lock()


def keys(folder: Path | None = None) -> TokenKeys:
    """The process's token keys: $GPT2LAB_VISITOR_KEY, else the key kept in `folder` (the app
    passes its jobs folder), else a random key (then written to the first `folder` given)."""
    global _keys
    with _keys_lock:
        if _keys is None:
            _keys = TokenKeys(env_key() or secrets.token_bytes(32))
        if folder is not None and env_key() is None:
            key = folder_key(folder, _keys._key)
            if key != _keys._key:
                _keys = TokenKeys(key)
        return _keys


def _on_a_space_unless(name: str, env: Mapping[str, str]) -> bool:
    """`env[name]` read as 1/true/yes/on or 0/false/no/off; unset: whether SPACE_ID is set."""
    forced = env.get(name, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    return bool(env.get("SPACE_ID"))


def multiuser_mode(env: dict[str, str] | None = None) -> bool:
    """On where SPACE_ID is set (a Hugging Face Space), unless GPT2LAB_MULTIUSER says 1 or 0.

    >>> multiuser_mode({}), multiuser_mode({"SPACE_ID": "u/lab"}), multiuser_mode(
    ...     {"SPACE_ID": "u/lab", "GPT2LAB_MULTIUSER": "0"})
    (False, True, False)
    """
    return _on_a_space_unless(MULTIUSER_ENV, os.environ if env is None else env)


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
    """A fresh visitor token, signed by this server (what `/visitor` answers)."""
    return keys().issue()


def valid_token(token: Any) -> bool:
    """Whether this server signed `token`."""
    return keys().nonce(token) is not None


def owner_of(token: Any, profile: Any = None, signer: TokenKeys | None = None) -> str | None:
    """The owner string of whoever sent a request: `hf:<user>` when signed in, `anon:<hash of
    the token's random part>` for a token this server signed, else None (no identity: may change
    nothing)."""
    username = getattr(profile, "username", None)
    if username:
        return f"hf:{username}"
    nonce = (signer or keys()).nonce(token)
    if nonce is None:
        return None
    return "anon:" + hashlib.sha256(nonce.encode()).hexdigest()[:24]


EVERYONE = "*"  # single-user mode: every job is the one person's


def viewer_of(token: Any, profile: Any = None) -> str | None:
    """Whose job models a page shows first: EVERYONE in single-user mode (one person's machine),
    else the visitor's owner string (`owner_of`; None for a token this server did not sign)."""
    return EVERYONE if not multiuser_mode() else owner_of(token, profile)


def trust_forwarded(env: dict[str, str] | None = None) -> bool:
    """Whether X-Forwarded-For names the client: behind the Spaces proxy (SPACE_ID set) or
    when GPT2LAB_TRUST_FORWARDED=1; elsewhere a client could write any address there."""
    return _on_a_space_unless(FORWARDED_ENV, os.environ if env is None else env)


def client_address(request: Any = None) -> str | None:
    """Where a request comes from: X-Forwarded-For's first hop behind a proxy
    (`trust_forwarded`), else the socket's address. `request` is a gr.Request or a Starlette
    request; by default, the one of the event running now (Gradio keeps it in a context var)."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    if request is None:
        return None
    if trust_forwarded():
        headers = getattr(request, "headers", None) or {}
        first = str(headers.get("x-forwarded-for", "") or "").split(",")[0].strip()
        if first:
            return first[:64]
    host = getattr(getattr(request, "client", None), "host", None)
    return str(host)[:64] if host else None


class AdminLocked(gr.Error):
    """Too many wrong admin tokens: admin checks are refused for a while."""


class AdminGuard:
    """The admin token check: constant time, and after `tries` different wrong tokens from one
    address within `window` seconds (or `total` from everyone) admin checks from it (from
    everyone) are refused for `window` seconds, the right token included. The same wrong value
    sent again (the jobs list refreshing with a typo in the box) counts once."""

    def __init__(self, tries: int = 10, window: float = 900, total: int = 100) -> None:
        self.tries, self.window, self.total = tries, window, total
        self._failed: dict[str, dict[str, float]] = {}  # address -> {digest: when}
        self._locked: dict[str, float] = {}  # address ("*": everyone) -> until
        self._lock = threading.Lock()

    def _forget(self, now: float) -> None:
        for address, failed in list(self._failed.items()):
            for digest, when in list(failed.items()):
                if now - when > self.window:
                    del failed[digest]
            if not failed:
                del self._failed[address]
        for address, until in list(self._locked.items()):
            if until <= now:
                del self._locked[address]

    def check(self, typed: Any, expected: str, address: str | None = None) -> bool:
        if not expected or not isinstance(typed, str) or not typed:
            return False
        address = address or "?"
        now = time.monotonic()
        with self._lock:
            self._forget(now)
            until = max(self._locked.get(address, 0), self._locked.get("*", 0))
            if until > now:
                minutes = max(1, round((until - now) / 60))
                raise AdminLocked(
                    f"Too many wrong admin tokens: admin actions are locked for about {minutes} "
                    "minute(s). Leave the admin box empty to act as a visitor.",
                    print_exception=False,
                )
        digest = hashlib.sha256(typed.encode("utf-8", "replace")).digest()
        if hmac.compare_digest(digest, hashlib.sha256(expected.encode()).digest()):
            return True
        with self._lock:
            self._failed.setdefault(address, {})[digest.hex()] = now
            if len(self._failed[address]) >= self.tries:
                self._locked[address] = now + self.window
                self._failed.pop(address)
                log.warning("admin token: %d wrong tries from %s; locked", self.tries, address)
            if sum(len(f) for f in self._failed.values()) >= self.total:
                self._locked["*"] = now + self.window
                self._failed.clear()
                log.warning("admin token: %d wrong tries in all; locked for everyone", self.total)
        return False


admin_guard = AdminGuard()


def is_admin(typed: Any, env: dict[str, str] | None = None, address: str | None = None) -> bool:
    """Whether `typed` is the admin token (GPT2LAB_ADMIN_TOKEN; never true when it is unset).
    AdminLocked after too many wrong tries (`AdminGuard`)."""
    expected = (os.environ if env is None else env).get(ADMIN_ENV, "")
    return admin_guard.check(typed, expected, address)


def visitor_of(
    token: Any, profile: Any = None, admin_token: Any = "", request: Any = None
) -> Visitor:
    """Who sent a request: its owner (`owner_of`), whether it carries the admin token, and
    (anonymous visitors) its client address, which job limits also count by. In multi-user
    mode a token this server did not sign is refused (gr.Error)."""
    owner = owner_of(token, profile)
    if owner is None and token not in (None, "") and multiuser_mode():
        raise gr.Error(REFUSED, print_exception=False)
    address = client_address(request)
    admin = is_admin(admin_token, address=address)
    return Visitor(owner, admin, address if owner and owner.startswith("anon:") else None)


def who(owner: str | None, me: str | None) -> str:
    """The jobs list's anonymised owner: "you", "another visitor", or "—" for no owner."""
    if owner is None:
        return "—"
    return "you" if me is not None and owner == me else "another visitor"


def token_state(folder: Path) -> gr.BrowserState:
    """The page's visitor-token store (one per app, shared by every tab that starts jobs); its
    tokens are signed with the key kept in `folder` (`keys`)."""
    signer = keys(folder)
    (Path(folder) / OLD_SECRET_FILE).unlink(missing_ok=True)  # it was published; unused now
    return gr.BrowserState("", storage_key=STORAGE_KEY, secret=signer.browser_secret())


def ensure_token(token: Any) -> str:
    """The browser's token, or a new one on its first visit (the page's load event). A token
    from before tokens were signed is signed as it is, so its jobs stay its own."""
    signer = keys()
    if signer.nonce(token) is not None:
        return token
    if isinstance(token, str) and NONCE_RE.fullmatch(token):
        return signer.sign(token)
    return signer.issue()


def issue_token() -> str:
    """The `/visitor` endpoint: a fresh signed visitor token for an API client, to pass as
    `visitor_token` (keep it: it is who owns the jobs started with it)."""
    return new_token()
