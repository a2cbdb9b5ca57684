"""Is the Hugging Face hub reachable? And downloads into its cache, with progress.

The app asks once, at start, in a background thread (`start_check`: one HEAD request, 3 s). The
answer, one shared `HubStatus`, decides whether pickers list the GPT-2 sizes that are not cached
(`downloads_listed`) and whether `gpt.lab.sources` offers its online sources. `HF_HUB_OFFLINE=1`
or `GPT2LAB_ALLOW_DOWNLOAD=0` rule the network out without asking. The `HF_*` variables are read
when called, not when `huggingface_hub` was imported, so setting them later counts.

Downloads land in the huggingface_hub cache, in its layout (`try_to_load_from_cache` and offline
runs find them): its `get_hf_file_metadata` reads a file's commit, ETag and size, and one GET on
its HTTP session (`get_session`) fetches it, each chunk reported to our `DownloadProgress`. Not
`hf_hub_download`: in huggingface_hub 2.4 it retries quietly, with backoff and resuming, and no
argument turns that off; on tests/fakehub.py with 0.5 s timeouts it took 23 s to report a refused
connection, 5.3 s and 9 requests a cut-short file, and a hub that never answers was still being
asked after 300 s. Here each request is made once and a failure is reported at once (0.5 s at
most), with its `DownloadError.kind`.

>>> HubStatus("offline", "HF_HUB_OFFLINE=1 is set").line()
'offline (HF_HUB_OFFLINE=1 is set)'
>>> DownloadProgress("gpt2", 100 * MB, 548 * MB, 20 * MB, 22.4).line()
'gpt2: 100 / 548 MB · 20.0 MB/s · 22 s left'
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gpt.checkpoint import CheckpointError, read_json
from gpt.config import HUB_IDS, PRESETS
from gpt.train.estimate import duration

MB = 1_000_000  # download sizes are shown in decimal MB, as the hub shows them
CHECK_TIMEOUT = 3.0
DEFAULT_DOWNLOAD_TIMEOUT = 10.0  # seconds without a byte before a download gives up
RECHECK_S = 60.0
CHECK_REPO, CHECK_FILE = HUB_IDS["gpt2"], "config.json"
GPT2_FILES = ("config.json", "model.safetensors")
DOWNLOAD_ENV = "GPT2LAB_ALLOW_DOWNLOAD"
MODELS_DIR_ENV = "GPT2LAB_MODELS_DIR"

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
    """What the last check found: `state`, `reason` (why offline, or what is being checked) and
    the `endpoint` asked."""

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
    """One report of a download, all its files together: bytes `done` of `total`, the `rate`
    (bytes/s) since the start, `eta_s` (None before the rate is known), `finished` (the last)."""

    name: str
    done: int
    total: int
    rate: float
    eta_s: float | None
    finished: bool = False

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def line(self) -> str:
        text = f"{self.name}: {self.done / MB:.0f} / {self.total / MB:.0f} MB"
        if self.finished:
            return text + " · done"
        if self.rate > 0:
            text += f" · {self.rate / MB:.1f} MB/s"
        if self.eta_s is not None:
            text += f" · {duration(self.eta_s)} left"
        return text


ProgressCallback = Callable[[DownloadProgress], None]


class DownloadError(OSError):
    """A download that failed; the message says what to do, `kind` how it failed: "refused",
    "unreachable", "timeout", "truncated", "not_found", "http", "offline" or "other"."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


# --- where: endpoint and cache, read at call time -----------------------------------------------


def endpoint() -> str:
    if os.environ.get("HF_ENDPOINT"):  # without importing huggingface_hub
        return os.environ["HF_ENDPOINT"].rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT


def cache_dir() -> Path:
    """The huggingface_hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")).expanduser() / "hub"


def cached_gpt2(name: str) -> Path | None:
    """The cached snapshot folder of a GPT-2 size when config.json and the weights are there."""
    if name not in HUB_IDS:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(HUB_IDS[name], f, cache_dir=cache_dir()) for f in GPT2_FILES]
    # each a path, else None or "cached as missing"
    return Path(found[0]).parent if all(isinstance(path, str) for path in found) else None


# --- the availability check ---------------------------------------------------------------------

_lock = threading.Lock()  # the check's thread (`_status` is replaced whole, never changed)
_status = HubStatus(UNKNOWN)
_thread: threading.Thread | None = None
_done = threading.Event()
_sizes: dict[str, int] = {}  # GPT-2 size -> bytes of its files, from the hub's metadata
_checked_at = 0.0  # time.monotonic() of the last answer


def skip_reason() -> str | None:
    """Why no check is made at all (an environment variable rules the network out)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE=1 is set"
    if os.environ.get(DOWNLOAD_ENV) == "0":
        return f"{DOWNLOAD_ENV}=0 turns downloads off"
    return None


def status() -> HubStatus:
    """The current state; "offline" at once when the environment rules the network out."""
    reason = skip_reason()
    return _status if reason is None else HubStatus(OFFLINE, reason, endpoint())


def check(timeout: float = CHECK_TIMEOUT, sizes: bool = True) -> HubStatus:
    """Ask the hub now (blocking, at most about `timeout` s) and record the answer; when online
    and `sizes` is set, read each GPT-2 size's download size from the hub's metadata too (for
    labels; one that cannot be read keeps its known size)."""
    global _status, _checked_at
    reason, ep = skip_reason(), endpoint()
    if reason is None:
        _status = HubStatus(CHECKING, f"asking {ep}", ep)
        try:
            _metadata(CHECK_REPO, CHECK_FILE, timeout)
            _status = HubStatus(ONLINE, "", ep)
        except Exception as e:  # any failure means: not usable now
            _status = HubStatus(OFFLINE, f"{ep}: {explain(e, timeout)[1]}", ep)
        _checked_at = time.monotonic()
    else:
        _status = HubStatus(OFFLINE, reason, ep)
    result = _status
    _done.set()  # `wait` returns with the answer; the sizes follow
    if result.online and sizes:
        for size, repo in HUB_IDS.items():
            with suppress(Exception):
                _sizes[size] = sum(_metadata(repo, f, timeout).size or 0 for f in GPT2_FILES)
    return result


def start_check(timeout: float = CHECK_TIMEOUT, again: bool = False) -> threading.Thread | None:
    """Run `check` in a daemon thread. Once: later calls return the same thread unless `again`
    (and it has finished); None when the environment rules the network out."""
    global _thread
    if skip_reason() is not None:
        _done.set()
        return None
    with _lock:
        if _thread is None or (again and not _thread.is_alive()):
            _done.clear()
            _thread = threading.Thread(target=check, args=(timeout,), name="gpt2lab-hub-check",
                                       daemon=True)
            _thread.start()
        return _thread


def maybe_recheck(max_age: float = RECHECK_S) -> None:
    """Ask again in the background when the last check found the hub offline more than
    `max_age` seconds ago (so going online shows up without a restart). Never blocks."""
    with _lock:
        stale = _status.offline and time.monotonic() - _checked_at > max_age
    if stale and skip_reason() is None:
        start_check(again=True)


def wait(timeout: float | None = None) -> HubStatus:
    """The state once a started check has finished (or `timeout` seconds have passed)."""
    if _thread is not None:
        _done.wait(timeout)
    return status()


def reset() -> None:
    """Forget the check (tests; a later `start_check` asks again)."""
    global _thread, _checked_at, _status
    with _lock:
        _thread, _checked_at, _status = None, 0.0, HubStatus(UNKNOWN)
    _done.clear()
    _sizes.clear()
    with _progress_lock:
        _progress.clear()


def downloads_listed() -> bool:
    """Whether GPT-2 sizes that are not cached are offered: `GPT2LAB_ALLOW_DOWNLOAD=1` forces it,
    `=0` or `HF_HUB_OFFLINE=1` rule it out, otherwise only when the check found the hub online."""
    return skip_reason() is None and (os.environ.get(DOWNLOAD_ENV) == "1" or _status.online)


def download_bytes(name: str) -> int:
    """Bytes to download for a GPT-2 size: from the hub's metadata once read, else known."""
    return _sizes.get(name) or KNOWN_BYTES[name]


def size_label(nbytes: int) -> str:
    """
    >>> size_label(548_105_171), size_label(1_520_013_706), size_label(400_000)
    ('548 MB', '1.5 GB', '0.4 MB')
    """
    if nbytes >= 1000 * MB:
        return f"{nbytes / (1000 * MB):.1f} GB"
    return f"{nbytes / MB:.0f} MB" if nbytes >= 10 * MB else f"{nbytes / MB:.1f} MB"


# --- errors, for people --------------------------------------------------------------------------


def explain(e: BaseException, timeout: float | None = None) -> tuple[str, str]:
    """(kind, short reason) of a network failure, from huggingface_hub's exceptions and its HTTP
    client's (httpx2); the causes of `e` are searched too."""
    import httpx2
    from huggingface_hub import errors

    seen: list[BaseException] = []
    err: BaseException | None = e
    while err is not None and err not in seen:
        seen.append(err)
        if isinstance(err, DownloadError):
            return err.kind, str(err)
        if isinstance(err, errors.OfflineModeIsEnabled):
            return "offline", "huggingface_hub is in offline mode (HF_HUB_OFFLINE=1 at start)"
        if isinstance(err, errors.RemoteEntryNotFoundError | errors.RepositoryNotFoundError):
            return "not_found", "not found on the hub (HTTP 404)"
        if isinstance(err, errors.HfHubHTTPError):
            return "http", f"the hub answered HTTP {getattr(err.response, 'status_code', '?')}"
        if isinstance(err, httpx2.TimeoutException | TimeoutError):
            return "timeout", f"no answer{f' within {timeout:g} s' if timeout else ''} (timed out)"
        if isinstance(err, httpx2.RemoteProtocolError):
            return "truncated", f"the connection closed early ({err})"
        refused = isinstance(err, ConnectionRefusedError) or (
            isinstance(err, httpx2.ConnectError) and "refused" in str(err).lower())
        if refused or getattr(err, "errno", None) == errno.ECONNREFUSED:
            return "refused", "connection refused"
        if isinstance(err, httpx2.ConnectError):  # plain words: no "[Errno -2] Name or ..."
            return "unreachable", "the Hugging Face hub cannot be reached from here"
        err = err.__cause__ or err.__context__
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
    advice = _ADVICE.get(kind, "Try again later.").format(ep=endpoint(), repo=repo)
    if name in HUB_IDS:
        local = f"Or put a folder with config.json + model.safetensors at ${MODELS_DIR_ENV}/{name}."
    else:  # any other repo: a typo, a private or gated repo, or its files in a folder
        local = ("Check the repo id (org/name[@revision]), or the path if you meant a folder; "
                 "or download its files elsewhere and pick that folder.")
        if kind == "not_found":
            advice = f"No public repo {repo} at {endpoint()}."
    return DownloadError(
        f"could not download {name!r} from {endpoint()}/{repo}: {why}. {advice} {local}", kind
    )


def offline_message(name: str, reason: str) -> str:
    """What to do when `name` is not on this machine and `reason` turns downloads off.

    >>> offline_message("gpt2", "HF_HUB_OFFLINE=1 is set")[:60]
    "'gpt2' is not in the local cache and downloads are off (HF_H"
    """
    where = (f"put a folder with config.json + model.safetensors at ${MODELS_DIR_ENV}/{name}"
             if name in HUB_IDS or parse_hub_id(name) is None else "pick a folder holding its files")
    return (
        f"{name!r} is not in the local cache and downloads are off ({reason}). Go online "
        f"(unset it), or {where}."
    )


# --- downloads -----------------------------------------------------------------------------------

_progress_lock = threading.Lock()
_progress: dict[str, DownloadProgress] = {}
_download_locks: dict[str, threading.Lock] = {}


def download_progress(name: str) -> DownloadProgress | None:
    """The latest report of a download of `name` running in this process, else None."""
    with _progress_lock:
        return _progress.get(name)


def _metadata(repo: str, filename: str, timeout: float, revision: str | None = None):
    """A file's metadata: one HEAD request, no retries."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    ep = endpoint()
    return get_hf_file_metadata(
        hf_hub_url(repo, filename, revision=revision, endpoint=ep), timeout=timeout, endpoint=ep
    )


def _once(
    label: str, cached: Callable[[], Path | None], fetch: Callable[[float], Path],
    timeout: float | None,
) -> Path:
    """`cached()`, else `fetch(timeout)` (default `$HF_HUB_DOWNLOAD_TIMEOUT` or 10 s, for each
    connect and each read), one download of `label` at a time: a second caller waits, then finds
    the files cached. Refused at once when the environment turns downloads off."""
    if (found := cached()) is not None:
        return found
    if (reason := skip_reason()) is not None:
        raise DownloadError(offline_message(label, reason), "offline")
    with _progress_lock:
        lock = _download_locks.setdefault(label, threading.Lock())
    with lock:
        try:
            return cached() or fetch(_download_timeout() if timeout is None else timeout)
        finally:
            with _progress_lock:
                _progress.pop(label, None)


def _download_timeout() -> float:
    return float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or DEFAULT_DOWNLOAD_TIMEOUT)


def download_gpt2(
    name: str, progress: ProgressCallback | None = None, timeout: float | None = None
) -> Path:
    """The cached snapshot folder of a GPT-2 size, downloading config.json and the weights first
    when missing. `progress` gets a `DownloadProgress` after every chunk and once more with
    finished=True. Raises DownloadError (kind and advice in it); nothing partial is left where
    the cache looks for complete files."""
    if name not in HUB_IDS:
        raise DownloadError(f"unknown GPT-2 size {name!r}; known: {', '.join(HUB_IDS)}", "other")
    return _once(
        name, lambda: cached_gpt2(name),
        lambda timeout: _fetch(name, HUB_IDS[name], GPT2_FILES, progress, timeout), timeout,
    )


class _Progress:
    """A download's progress over all its files, reported after each chunk."""

    def __init__(self, name: str, total: int, callback: ProgressCallback | None) -> None:
        self.name, self.total, self.callback = name, total, callback
        self.done, self.start = 0, time.monotonic()

    def report(self, nbytes: int = 0, finished: bool = False) -> None:
        self.done += nbytes
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed >= 0.5 else 0.0  # too early to tell before that
        eta = (self.total - self.done) / rate if rate > 0 else None
        event = DownloadProgress(self.name, self.done, self.total, rate, eta, finished)
        with _progress_lock:
            _progress[self.name] = event
        if self.callback is not None:
            self.callback(event)


def _fetch(
    name: str, repo: str, files: tuple[str, ...], progress: ProgressCallback | None,
    timeout: float, revision: str | None = None, commit: str = "",
) -> Path:
    """Download `files` of `repo` at `commit` (else `revision`, else main) into the hub cache's
    layout, each request once; `revision` (default main) is the ref that names the snapshot."""
    try:
        metas = {f: _metadata(repo, f, timeout, commit or revision) for f in files}
    except Exception as e:
        raise _download_error(e, name, repo, timeout) from e
    if not all(meta.commit_hash and meta.etag for meta in metas.values()):
        raise DownloadError(f"{endpoint()} answered for {repo} without a commit or ETag header, "
                            "so it is not a Hugging Face hub. Check HF_ENDPOINT.", "other")
    _sizes[name] = total = sum(meta.size or 0 for meta in metas.values())
    tracker = _Progress(name, total, progress)
    folder = repo_folder(repo)
    for filename, meta in metas.items():
        blob = folder / "blobs" / meta.etag
        if blob.is_file() and meta.size in (None, blob.stat().st_size):
            tracker.report(blob.stat().st_size)
        else:
            try:
                _get(meta, blob, tracker, timeout)
            except Exception as e:
                raise _download_error(e, name, repo, timeout) from e
        pointer = folder / "snapshots" / meta.commit_hash / filename
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if not pointer.exists():
            try:
                pointer.symlink_to(os.path.relpath(blob, pointer.parent))
            except OSError:  # no symlinks on this file system
                shutil.copyfile(blob, pointer)
    commit = metas[files[-1]].commit_hash
    if "/" not in (ref := revision or "main") and ref != commit:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    tracker.report(finished=True)
    return folder / "snapshots" / commit


def _get(meta, blob: Path, tracker: _Progress, timeout: float) -> None:
    """One GET of a file (no quiet retries) into `blob`, through `<blob>.incomplete`, which a
    failure removes."""
    import httpx2
    from huggingface_hub import get_session, hf_raise_for_status
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    if urlsplit(meta.location).netloc != urlsplit(endpoint()).netloc:
        headers.pop("authorization", None)  # storage gets no hub token (as hf does)
    blob.parent.mkdir(parents=True, exist_ok=True)
    part = blob.with_name(blob.name + ".incomplete")
    try:
        with open(part, "wb") as out, get_session().stream(
            "GET", meta.location, headers=headers, timeout=timeout
        ) as response:
            hf_raise_for_status(response)
            for chunk in response.iter_bytes(MB):
                out.write(chunk)
                tracker.report(len(chunk))
        if meta.size is not None and part.stat().st_size != meta.size:
            raise httpx2.RemoteProtocolError(f"{part.stat().st_size} of {meta.size} bytes came")
        os.replace(part, blob)
    finally:
        part.unlink(missing_ok=True)


# --- any GPT-2-architecture repo: org/name[@revision] ---------------------------------------------

_HUB_ID = re.compile(r"([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?")
# Files fetched besides the weights, when the repo has them (small; the tokenizer's and the card)
SIDE_FILES = ("config.json", "generation_config.json", "vocab.json", "merges.txt",
              "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json", "README.md")


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """(repo, revision) of a hub id `org/name` or `org/name@revision`, else None.

    >>> parse_hub_id("vicgalle/gpt2-alpaca"), parse_hub_id("distilbert/distilgpt2@main")
    (('vicgalle/gpt2-alpaca', None), ('distilbert/distilgpt2', 'main'))
    >>> parse_hub_id("runs/lm/model"), parse_hub_id("gpt2"), parse_hub_id("./x/y")
    (None, None, None)
    """
    m = _HUB_ID.fullmatch(text.strip())
    if m is None or any(p.startswith(".") or p.endswith(".") for p in m.group(1).split("/")):
        return None
    return m.group(1), (m.group(2) or None)


def pick_weights(files: dict[str, int | None] | list[str]) -> str | None:
    """The weights file of a repo's top-level files (a list, or name -> bytes), in the order
    `gpt.checkpoint.hf_weight_files` tries them: model.safetensors, the shard index
    model.safetensors.index.json, the smallest other .safetensors, pytorch_model.bin, the
    smallest .pth (the LLMs-from-scratch repos hold one per GPT-2 size). Never another pickle.

    >>> pick_weights(["config.json", "pytorch_model.bin", "model.safetensors"])
    'model.safetensors'
    >>> pick_weights(["pytorch_model.bin", "tf_model.h5"]), pick_weights(["x.pkl", "a/b.bin"])
    ('pytorch_model.bin', None)
    >>> pick_weights({"gpt2-large-774M.pth": 3_000, "gpt2-small-124M.pth": 500})
    'gpt2-small-124M.pth'
    """
    sizes = dict(files) if isinstance(files, dict) else dict.fromkeys(files)
    top = {f: n for f, n in sizes.items() if "/" not in f}
    for name in ("model.safetensors", "model.safetensors.index.json"):
        if name in top:
            return name
    for test in (lambda f: f.endswith(".safetensors"), lambda f: f == "pytorch_model.bin",
                 lambda f: f.endswith(".pth")):
        found = sorted((top[f] or 0, f) for f in top if test(f))
        if found:
            return found[0][1]
    return None


def shards(files: dict[str, int | None] | list[str]) -> tuple[str, ...]:
    """
    >>> shards(["model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors", "x"])
    ('model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors')
    """
    return tuple(sorted(f for f in files if re.fullmatch(r"model-\d+-of-\d+\.safetensors", f)))


def repo_info(
    repo: str, revision: str | None = None, timeout: float = CHECK_TIMEOUT * 3
) -> tuple[str, dict[str, int | None]]:
    """What the hub says about a repo (`HfApi.model_info` with file sizes): its commit and its
    files (name -> bytes, None when not said). DownloadError says why not."""
    from huggingface_hub import HfApi

    if (reason := skip_reason()) is not None:
        raise DownloadError(offline_message(repo, reason), "offline")
    try:
        info = HfApi(endpoint=endpoint()).model_info(
            repo, revision=revision, files_metadata=True, timeout=timeout
        )
    except Exception as e:
        raise _download_error(e, repo, repo, timeout) from e
    return info.sha or "", {s.rfilename: s.size for s in (info.siblings or [])}


def repo_folder(repo: str) -> Path:
    return cache_dir() / ("models--" + repo.replace("/", "--"))


def snapshot_repo(folder: str | Path) -> str | None:
    """The repo id of a hub-cache snapshot folder (`.../models--org--name/snapshots/<commit>`),
    else None.

    >>> snapshot_repo("/c/hub/models--vicgalle--gpt2-alpaca/snapshots/abc123")
    'vicgalle/gpt2-alpaca'
    >>> snapshot_repo("/runs/spam/model") is None
    True
    """
    parts = Path(folder).parts
    if len(parts) < 3 or parts[-2] != "snapshots" or not parts[-3].startswith("models--"):
        return None
    org, sep, name = parts[-3].removeprefix("models--").partition("--")
    return f"{org}/{name}" if sep and name else None


def snapshot_path(repo: str, revision: str | None = None) -> Path:
    """Where the hub cache keeps `repo` at `revision` (default main); it may not exist yet,
    or hold only the small files (`read_repo_config`)."""
    folder, rev = repo_folder(repo), revision or "main"
    ref = folder / "refs" / rev
    return folder / "snapshots" / (ref.read_text().strip() if ref.is_file() else rev)


def cached_repo(repo: str, revision: str | None = None) -> Path | None:
    """The cached snapshot of `repo` at `revision` (default main) once its weights are there."""
    snap = snapshot_path(repo, revision)
    return snap if snap.is_dir() and pick_weights([p.name for p in snap.iterdir()]) else None


def download_repo(
    repo: str, revision: str | None = None, progress: ProgressCallback | None = None,
    timeout: float | None = None, label: str | None = None,
) -> Path:
    """The cached snapshot folder of a hub repo, downloading config, tokenizer files, card and
    weights first when missing (`pick_weights` picks the weights file); as `download_gpt2`."""
    label = label or (f"{repo}@{revision}" if revision else repo)

    def fetch(timeout: float) -> Path:
        commit, files = repo_info(repo, revision, timeout)
        weights = pick_weights(files)
        if weights is None:
            raise DownloadError(f"{repo} has no model.safetensors or pytorch_model.bin (files: "
                                f"{', '.join(sorted(files)[:8])}); only GPT-2 weights in those "
                                "files load here", "not_found")
        # the side files present, then the weights: last, so a snapshot with its weights in
        # place is complete
        parts = shards(files) if weights == "model.safetensors.index.json" else ()
        wanted = (*(f for f in SIDE_FILES if f in files), *parts, weights)
        return _fetch(label, repo, wanted, progress, timeout, revision, commit)

    return _once(label, lambda: cached_repo(repo, revision), fetch, timeout)


def read_repo_config(repo: str, revision: str | None = None) -> dict:
    """A repo's config.json (fetched into the cache with its README.md, for the card; `{}`
    when the repo has none, as the LLMs-from-scratch repos), without its weights.
    DownloadError says why it cannot be read."""
    snap = snapshot_path(repo, revision)
    if not (snap / "config.json").is_file() and not (snap / "README.md").is_file():
        commit, files = repo_info(repo, revision)
        small = tuple(f for f in ("config.json", "README.md") if f in files)
        if not small:
            return {}
        snap = _fetch(repo, repo, small, None, _download_timeout(), revision, commit)
    try:
        return read_json(snap / "config.json") if (snap / "config.json").is_file() else {}
    except CheckpointError as e:
        raise DownloadError(f"{repo}: {e}", "other") from e  # "<path> is not valid JSON: ..."
