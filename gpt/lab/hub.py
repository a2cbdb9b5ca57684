"""Is the Hugging Face hub reachable? And GPT-2 downloads into its cache, with progress.

The app asks once, at start, in a background thread (`start_check`): a HEAD request for
`openai-community/gpt2`'s config.json with a short timeout (3 s). The answer is one shared
`HubStatus`: "unknown" (nobody asked), "checking", "online" or "offline" with a reason. Model
pickers list the GPT-2 sizes that are not cached yet only when it is "online" (or when
`GPT2LAB_ALLOW_DOWNLOAD=1` forces the listing), and the online data sources of `gpt.lab.sources`
are refused with the reason when it is "offline".

No check is made (the state is "offline" at once, with the reason) when `HF_HUB_OFFLINE=1` or
`GPT2LAB_ALLOW_DOWNLOAD=0`. Everything reads `HF_ENDPOINT`, `HF_HUB_CACHE` and `HF_HOME` when
called, not when `huggingface_hub` was imported, so setting them later (tests, the app's
storage setup) takes effect.

`download_gpt2(size, progress)` fetches config.json and model.safetensors of a GPT-2 size into
the huggingface_hub cache (its usual layout: blobs/, snapshots/<commit>/, refs/main, so
`huggingface_hub.try_to_load_from_cache` and offline runs find them), calling `progress` with a
`DownloadProgress` (bytes done of the total, rate, time left) as the bytes arrive. The file is
streamed by this module (one request per file, the timeout applied to each read, no silent
retries) so a failure is reported at once and says why: `DownloadError.kind` is "refused",
"unreachable", "timeout", "truncated", "not_found", "http" or "offline".

>>> HubStatus("offline", "HF_HUB_OFFLINE=1 is set").line()
'offline (HF_HUB_OFFLINE=1 is set)'
>>> DownloadProgress("gpt2", "model.safetensors", 100 * MB, 548 * MB, 20 * MB, 22.4).line()
'gpt2: 100 / 548 MB · 20.0 MB/s · 22 s left'
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gpt.config import HUB_IDS, PRESETS

MB = 1_000_000  # download sizes are shown in decimal MB, as the hub shows them
CHECK_TIMEOUT = 3.0
DEFAULT_DOWNLOAD_TIMEOUT = 10.0  # seconds without a byte before a download gives up
CHECK_REPO = HUB_IDS["gpt2"]
CHECK_FILE = "config.json"
GPT2_FILES = ("config.json", "model.safetensors")
DOWNLOAD_ENV = "GPT2LAB_ALLOW_DOWNLOAD"
MODELS_DIR_ENV = "GPT2LAB_MODELS_DIR"
CHUNK = 256 * 1024

# model.safetensors of the hub's GPT-2 sizes holds the parameters (float32) plus each layer's
# 1024 x 1024 causal-mask buffer, which `gpt.checkpoint` skips when loading: 548 MB for gpt2.
# Used for labels until the hub's own metadata has been read.
KNOWN_BYTES = {
    name: PRESETS[name].n_params() * 4 + PRESETS[name].n_layer * PRESETS[name].block_size ** 2 * 4
    for name in HUB_IDS
}

UNKNOWN, CHECKING, ONLINE, OFFLINE = "unknown", "checking", "online", "offline"


@dataclass(frozen=True)
class HubStatus:
    """What the last availability check found.

    Attributes:
        state: "unknown", "checking", "online" or "offline".
        reason: why it is offline (or what is being checked), for people.
        endpoint: the hub address asked.
    """

    state: str
    reason: str = ""
    endpoint: str = ""

    @property
    def online(self) -> bool:
        return self.state == ONLINE

    @property
    def offline(self) -> bool:
        return self.state == OFFLINE

    def line(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason else self.state


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report of a GPT-2 download (all files of the size together).

    Attributes:
        name: the GPT-2 size ("gpt2", ...).
        filename: the file being written now.
        done: bytes written so far (all files).
        total: bytes of all files (from the hub's metadata).
        rate: bytes per second since the download started.
        eta_s: seconds left at that rate (None before the first byte).
        finished: True on the last report, once every file is in the cache.
    """

    name: str
    filename: str
    done: int
    total: int
    rate: float
    eta_s: float | None
    finished: bool = False

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def line(self) -> str:
        """'gpt2: 120 / 548 MB · 35.0 MB/s · 12 s left'."""
        text = f"{self.name}: {self.done / MB:.0f} / {self.total / MB:.0f} MB"
        if self.finished:
            return text + " · done"
        if self.rate > 0:
            text += f" · {self.rate / MB:.1f} MB/s"
        if self.eta_s is not None:
            text += f" · {_duration(self.eta_s)} left"
        return text


ProgressCallback = Callable[[DownloadProgress], None]


class DownloadError(OSError):
    """A GPT-2 download that failed; `kind` says how, the message what to do."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


# --- where: endpoint and cache, read at call time -----------------------------------------------


def endpoint() -> str:
    """The hub address: `$HF_ENDPOINT`, else huggingface_hub's default."""
    env = os.environ.get("HF_ENDPOINT")
    if env:
        return env.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT


def cache_dir() -> Path:
    """The huggingface_hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _repo_folder(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_gpt2(name: str) -> Path | None:
    """The cached snapshot folder of a GPT-2 size when config.json and the weights are there."""
    if name not in HUB_IDS:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = []
    for filename in GPT2_FILES:
        path = try_to_load_from_cache(HUB_IDS[name], filename, cache_dir=cache_dir())
        if not isinstance(path, str):  # None or the "cached as missing" sentinel
            return None
        found.append(Path(path))
    return found[0].parent


# --- the availability check ---------------------------------------------------------------------

_lock = threading.Lock()
_status = HubStatus(UNKNOWN)
_thread: threading.Thread | None = None
_done = threading.Event()
_sizes: dict[str, int] = {}  # GPT-2 size -> bytes of its files, from the hub's metadata
_checked_at = 0.0  # time.monotonic() of the last answer
RECHECK_S = 60.0


def skip_reason() -> str | None:
    """Why no check is made at all (an environment variable says offline), else None."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE=1 is set"
    if os.environ.get(DOWNLOAD_ENV) == "0":
        return f"{DOWNLOAD_ENV}=0 turns downloads off"
    return None


def status() -> HubStatus:
    """The current state; "offline" at once when the environment rules the network out."""
    reason = skip_reason()
    if reason is not None:
        return HubStatus(OFFLINE, reason, endpoint())
    with _lock:
        return _status


def _set(state: HubStatus) -> None:
    global _status
    with _lock:
        _status = state


def check(timeout: float = CHECK_TIMEOUT, sizes: bool = True) -> HubStatus:
    """Ask the hub now (blocking, at most about `timeout` seconds) and record the answer.

    When it answers and `sizes` is set, the download sizes of the GPT-2 sizes are read too
    (two HEAD requests each; `read_sizes`).
    """
    global _checked_at
    reason = skip_reason()
    ep = endpoint()
    if reason is not None:
        result = HubStatus(OFFLINE, reason, ep)
        _set(result)
        return result
    _set(HubStatus(CHECKING, f"asking {ep}", ep))
    try:
        _metadata(CHECK_REPO, CHECK_FILE, timeout)
    except Exception as e:  # any failure means: not usable now
        result = HubStatus(OFFLINE, f"{ep}: {explain(e, timeout)[1]}", ep)
    else:
        result = HubStatus(ONLINE, "", ep)
    _checked_at = time.monotonic()
    _set(result)
    if result.online and sizes:
        read_sizes(timeout)
    return result


def read_sizes(timeout: float = CHECK_TIMEOUT) -> dict[str, int]:
    """Read each GPT-2 size's download size from the hub's file metadata (kept for labels);
    a size whose metadata cannot be read keeps its known size."""
    for size in HUB_IDS:
        try:
            _sizes[size] = sum(_metadata(HUB_IDS[size], f, timeout).size or 0 for f in GPT2_FILES)
        except Exception:
            continue
    return dict(_sizes)


def start_check(timeout: float = CHECK_TIMEOUT, again: bool = False) -> threading.Thread | None:
    """Run `check` in a daemon thread. Once: later calls return the same thread unless `again`
    (and it has finished); None when the environment rules the network out."""
    global _thread
    if skip_reason() is not None:
        _done.set()
        return None
    with _lock:
        if _thread is not None and (_thread.is_alive() or not again):
            return _thread
        _done.clear()
        _thread = threading.Thread(
            target=_run_check, args=(timeout,), name="gpt2lab-hub-check", daemon=True
        )
        _thread.start()
        return _thread


def maybe_recheck(max_age: float = RECHECK_S) -> None:
    """Ask again in the background when the last check found the hub offline more than
    `max_age` seconds ago (so going online shows up without a restart). Never blocks."""
    with _lock:
        stale = _status.offline and time.monotonic() - _checked_at > max_age
    if stale and skip_reason() is None:
        start_check(again=True)


def _run_check(timeout: float) -> None:
    try:
        state = check(timeout, sizes=False)
    finally:
        _done.set()  # `wait` returns with the answer; the sizes follow
    if state.online:
        read_sizes(timeout)


def wait(timeout: float | None = None) -> HubStatus:
    """The state once a started check has finished (or `timeout` seconds have passed)."""
    with _lock:
        started = _thread is not None
    if started:
        _done.wait(timeout)
    return status()


def reset() -> None:
    """Forget the check (tests; a later `start_check` asks again)."""
    global _thread, _checked_at
    with _lock:
        _thread = None
        _checked_at = 0.0
    _done.clear()
    _sizes.clear()
    _set(HubStatus(UNKNOWN))
    with _progress_lock:
        _progress.clear()


def downloads_listed() -> bool:
    """Whether GPT-2 sizes that are not cached are offered: `GPT2LAB_ALLOW_DOWNLOAD=1` forces it,
    `=0` or `HF_HUB_OFFLINE=1` rule it out, otherwise only when the check found the hub online."""
    if skip_reason() is not None:
        return False
    if os.environ.get(DOWNLOAD_ENV) == "1":
        return True
    return status().online


def download_bytes(name: str) -> int:
    """Bytes to download for a GPT-2 size: the hub's metadata once read, else the known size."""
    return _sizes.get(name) or KNOWN_BYTES[name]


def size_label(nbytes: int) -> str:
    """'548 MB', '1.5 GB' or '0.4 MB'.

    >>> size_label(548_105_171), size_label(1_520_013_706), size_label(400_000)
    ('548 MB', '1.5 GB', '0.4 MB')
    """
    if nbytes >= 1000 * MB:
        return f"{nbytes / (1000 * MB):.1f} GB"
    if nbytes >= 10 * MB:
        return f"{nbytes / MB:.0f} MB"
    return f"{nbytes / MB:.1f} MB"


def fits_cap(name: str, cap_bytes: int) -> bool:
    """Whether a GPT-2 size's float32 parameters fit a memory cap."""
    return PRESETS[name].n_params() * 4 <= cap_bytes


# --- errors, for people --------------------------------------------------------------------------


def _chain(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return seen


def explain(e: BaseException, timeout: float | None = None) -> tuple[str, str]:
    """(kind, short reason) of a network failure: refused, unreachable, timeout, truncated,
    not_found, http or other."""
    try:
        import httpx2  # huggingface_hub's HTTP client
    except ImportError:  # pragma: no cover - installed with huggingface_hub
        httpx2 = None  # type: ignore[assignment]
    try:
        from huggingface_hub.errors import (
            HfHubHTTPError,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:  # pragma: no cover
        HfHubHTTPError = RemoteEntryNotFoundError = RepositoryNotFoundError = ()  # type: ignore
    try:
        from huggingface_hub.errors import OfflineModeIsEnabled
    except ImportError:  # pragma: no cover
        OfflineModeIsEnabled = ()  # type: ignore
    for err in _chain(e):
        if isinstance(err, DownloadError):
            return err.kind, str(err)
        if isinstance(err, OfflineModeIsEnabled):
            return "offline", "huggingface_hub is in offline mode (HF_HUB_OFFLINE=1 at start)"
        if isinstance(err, RemoteEntryNotFoundError | RepositoryNotFoundError):
            return "not_found", "not found on the hub (HTTP 404)"
        if isinstance(err, HfHubHTTPError):
            code = getattr(getattr(err, "response", None), "status_code", "?")
            return "http", f"the hub answered HTTP {code}"
        if httpx2 is not None and isinstance(err, httpx2.TimeoutException):
            after = f" within {timeout:g} s" if timeout else ""
            return "timeout", f"no answer{after} (timed out)"
        if isinstance(err, TimeoutError | socket.timeout):
            return "timeout", "no answer (timed out)"
        if httpx2 is not None and isinstance(err, httpx2.RemoteProtocolError):
            return "truncated", f"the connection closed early ({err})"
        if (
            isinstance(err, ConnectionRefusedError)
            or getattr(err, "errno", None) == errno.ECONNREFUSED
        ):
            return "refused", "connection refused"
        if httpx2 is not None and isinstance(err, httpx2.ConnectError):
            if "refused" in str(err).lower():
                return "refused", "connection refused"
            return "unreachable", f"cannot connect ({err})"
    return "other", f"{type(e).__name__}: {e}"


_ADVICE = {
    "refused": "Nothing answers at {ep}: check your network (or HF_ENDPOINT), then try again.",
    "unreachable": "Check your network connection (or HF_ENDPOINT), then try again.",
    "timeout": "The network is slow or blocked; try again later.",
    "truncated": "The connection broke off; try again (pick the model again, or rerun).",
    "not_found": "Check that HF_ENDPOINT points to the Hugging Face hub or a mirror of {repo}.",
    "http": "The hub may be down; try again later.",
}


def _download_error(e: BaseException, name: str, repo: str, timeout: float) -> DownloadError:
    kind, why = explain(e, timeout)
    if isinstance(e, DownloadError):
        return e
    advice = _ADVICE.get(kind, "Try again later.").format(ep=endpoint(), repo=repo)
    return DownloadError(
        f"could not download {name!r} from {endpoint()}/{repo}: {why}. {advice} Or put a folder "
        f"with config.json + model.safetensors at ${MODELS_DIR_ENV}/{name}.",
        kind,
    )


# --- downloads -----------------------------------------------------------------------------------

_progress_lock = threading.Lock()
_progress: dict[str, DownloadProgress] = {}
_download_locks: dict[str, threading.Lock] = {}


def download_progress(name: str) -> DownloadProgress | None:
    """The latest report of a download of `name` running in this process, else None."""
    with _progress_lock:
        return _progress.get(name)


def _metadata(repo: str, filename: str, timeout: float):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    ep = endpoint()
    url = hf_hub_url(repo, filename, endpoint=ep)
    return get_hf_file_metadata(url, timeout=timeout, endpoint=ep)


def _download_timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    try:
        return float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT))
    except ValueError:
        return DEFAULT_DOWNLOAD_TIMEOUT


def offline_message(name: str, reason: str) -> str:
    """What to do when a GPT-2 size is not on this machine and `reason` turns downloads off.

    >>> offline_message("gpt2", "HF_HUB_OFFLINE=1 is set")[:60]
    "'gpt2' is not in the local cache and downloads are off (HF_H"
    """
    return (
        f"{name!r} is not in the local cache and downloads are off ({reason}). Go online "
        f"(unset it), or put a folder with config.json + model.safetensors at "
        f"${MODELS_DIR_ENV}/{name}."
    )


def download_gpt2(
    name: str, progress: ProgressCallback | None = None, timeout: float | None = None
) -> Path:
    """The cached snapshot folder of a GPT-2 size, downloading its files first when missing.

    `progress` gets a `DownloadProgress` after every chunk and once more with finished=True;
    `timeout` (default `$HF_HUB_DOWNLOAD_TIMEOUT` or 10 s) bounds each connect and each read.
    Raises DownloadError (kind and advice in it); nothing partial is left where the cache
    looks for complete files.
    """
    if name not in HUB_IDS:
        raise DownloadError(f"unknown GPT-2 size {name!r}; known: {', '.join(HUB_IDS)}", "other")
    cached = cached_gpt2(name)
    if cached is not None:
        return cached
    reason = skip_reason()
    if reason is not None:
        raise DownloadError(offline_message(name, reason), "offline")
    with _progress_lock:
        lock = _download_locks.setdefault(name, threading.Lock())
    with lock:  # a second caller waits, then finds the files cached
        cached = cached_gpt2(name)
        if cached is not None:
            return cached
        try:
            return _download(name, progress, _download_timeout(timeout))
        finally:
            with _progress_lock:
                _progress.pop(name, None)


def _download(name: str, progress: ProgressCallback | None, timeout: float) -> Path:
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    repo = HUB_IDS[name]
    try:
        metas = {f: _metadata(repo, f, timeout) for f in GPT2_FILES}
    except Exception as e:
        raise _download_error(e, name, repo, timeout) from e
    for f, meta in metas.items():
        if not meta.commit_hash or not meta.etag:
            raise DownloadError(
                f"{endpoint()} answered for {repo}/{f} without a commit or ETag header, so it is "
                f"not a Hugging Face hub. Check HF_ENDPOINT.",
                "other",
            )
    total = sum(m.size or 0 for m in metas.values())
    _sizes[name] = total
    folder = _repo_folder(repo)
    start = time.monotonic()
    done = 0

    def report(filename: str, finished: bool = False) -> None:
        elapsed = time.monotonic() - start
        rate = done / elapsed if elapsed >= 0.5 else 0.0  # too early to tell before that
        eta = (total - done) / rate if rate > 0 else None
        event = DownloadProgress(name, filename, done, total, rate, eta, finished)
        with _progress_lock:
            _progress[name] = event
        if progress is not None:
            progress(event)

    commit = ""
    for filename, meta in metas.items():
        commit = meta.commit_hash
        blob = folder / "blobs" / meta.etag
        pointer = folder / "snapshots" / commit / filename
        if not (blob.is_file() and (meta.size is None or blob.stat().st_size == meta.size)):
            blob.parent.mkdir(parents=True, exist_ok=True)
            part = blob.with_name(blob.name + ".incomplete")
            got = 0
            try:
                headers = build_hf_headers()
                headers["Accept-Encoding"] = "identity"
                if urlsplit(meta.location).netloc != urlsplit(endpoint()).netloc:
                    headers.pop("authorization", None)  # a CDN gets no hub token (as hf does)
                    headers.pop("Authorization", None)
                with (
                    get_session().stream(
                        "GET",
                        meta.location,
                        headers=headers,
                        timeout=timeout,
                        follow_redirects=True,
                    ) as response,
                    open(part, "wb") as out,
                ):
                    hf_raise_for_status(response)
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        got += len(chunk)
                        done += len(chunk)
                        report(filename)
                if meta.size is not None and got != meta.size:
                    raise DownloadError(
                        f"the download of {filename} stopped at {got:,} of {meta.size:,} bytes",
                        "truncated",
                    )
            except BaseException as e:
                part.unlink(missing_ok=True)
                if isinstance(e, Exception):
                    err = _download_error(e, name, repo, timeout)
                    if err is e:  # our own truncation message: add the advice
                        err = DownloadError(
                            f"could not download {name!r} from {endpoint()}/{repo}: {e}. "
                            f"{_ADVICE['truncated']}",
                            "truncated",
                        )
                    raise err from e
                raise
            os.replace(part, blob)
        else:
            done += blob.stat().st_size
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if not pointer.exists():
            try:
                pointer.symlink_to(os.path.relpath(blob, pointer.parent))
            except OSError:  # no symlinks on this file system
                shutil.copyfile(blob, pointer)
        report(filename)
    refs = folder / "refs" / "main"
    refs.parent.mkdir(parents=True, exist_ok=True)
    refs.write_text(commit)
    report(GPT2_FILES[-1], finished=True)
    return folder / "snapshots" / commit
