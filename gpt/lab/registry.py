"""The shared model registry: which models the app can offer, and a memory-capped cache of them.

A registry lists `ModelEntry`s gathered from its `sources` (callables returning entries) and from
models added at run time with `add`. Listing never touches the network and never loads weights.
`get(name)` loads a model on first use (`gpt.load_model` + `gpt.load_tokenizer`) and keeps it in
an LRU cache bounded by estimated bytes (parameters x element size). What each model is (its
folder, tokenizer, task and architecture) comes from `gpt.lab.names.resolve`; `ref(name)` gives it.

The default sources, in listing order:

- GPT-2 sizes whose weights are on this machine: `$GPT2LAB_MODELS_DIR/<size>/` (Hugging Face
  layout), or the huggingface_hub cache. When `gpt.lab.hub`'s availability check found the hub
  online (or `GPT2LAB_ALLOW_DOWNLOAD=1` forces it), the sizes that fit the cache cap are listed
  even when not cached, their download size in the description; they download on first use
  (`get(name, progress=...)` reports the bytes).
- The starter models (`gpt.STARTER_MODELS`) present under `assets/models/<name>/`.
- The curated hub repos (`gpt.lab.hubmodels`): those in the huggingface_hub cache, and the others
  while downloads are possible, as for the GPT-2 sizes. The Chat tab's default is then the first
  instruction-tuned one (`default(("instruct",))`).
- Extra checkpoint folders named by `GPT2LAB_EXTRA_MODELS` (paths joined by `os.pathsep`, ":" on
  Linux); each is listed under its folder name.
- Finished fine-tuning jobs, as `job:<id>`, once `add_job_models(registry, manager)` hands the
  registry a `gpt.jobs.JobManager` (the app does when it creates its manager).

Environment:

- `GPT2LAB_MODEL_CACHE_MB`: the cache cap in MB (default 2500).
- `GPT2LAB_ALLOW_DOWNLOAD=1`: offer GPT-2 sizes that are not cached yet even before (or
  without) an answer from the hub; `=0`: never download (no hub check either).
- `GPT2LAB_EXTRA_MODELS`: extra checkpoint folders, as above.

>>> reg = ModelRegistry(sources=[])
>>> reg.entries()
[]
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpt.checkpoint import CheckpointError
from gpt.config import HUB_IDS, PRESETS, STARTER_MODELS
from gpt.device import choose_device
from gpt.lab import hub, hubmodels
from gpt.lab.hub import MODELS_DIR_ENV
from gpt.lab.names import (
    HUB_CACHE,
    TASKS,
    ModelNameError,
    ModelRef,
    load_model,
    load_tokenizer,
    resolve,
)
from gpt.tokenizer import Tokenizer

if TYPE_CHECKING:
    from gpt.jobs import JobManager

CACHE_ENV = "GPT2LAB_MODEL_CACHE_MB"
EXTRA_ENV = "GPT2LAB_EXTRA_MODELS"
DOWNLOAD_SOURCE = "GPT-2 (download)"  # the source of a listed GPT-2 size that is not cached yet
DEFAULT_CACHE_MB = 2500

_STARTER_DESCRIPTIONS = {
    "starter": "small GPT trained on the bundled stories",
    "starter-spam": "starter model adapted to SMS and fine-tuned on real SMS to tell spam from ham",
    "starter-chat": "starter model instruction-tuned on the bundled Alpaca-style data",
}


def downloads_allowed() -> bool:
    """Whether GPT-2 sizes not yet on disk are listed (and downloaded on first use).

    `GPT2LAB_ALLOW_DOWNLOAD=1` forces it, `=0` or `HF_HUB_OFFLINE=1` rule it out; otherwise
    it is whether `gpt.lab.hub`'s availability check (started by the app) found the hub online,
    so a machine without network never lists a model it cannot load.
    """
    return hub.downloads_listed()


class RegistryError(LookupError):
    """A model name that is not listed, or a model that cannot be loaded; says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    """One model the app can offer.

    Attributes:
        name: unique name shown in model pickers.
        task: "lm", "classify" or "instruct".
        source: where it comes from ("GPT-2 (hub cache)", "starter", "extra", ...).
        description: one short line for people.
        location: what `gpt.load_model` is given (a folder path or a GPT-2 size name).
        tokenizer: what `gpt.load_tokenizer` is given.
        n_params: parameter count when known from the config without loading, else None.
        ref: what `gpt.lab.names.resolve` made of it, when the source resolved it (else
            `ModelRegistry.ref` resolves `location`).
        owner: who made it (a job's owner, `gpt.jobs.JobStatus.owner`), else None.
    """

    name: str
    task: str
    source: str
    description: str
    location: str
    tokenizer: str
    n_params: int | None = None
    ref: ModelRef | None = field(default=None, compare=False, repr=False)
    owner: str | None = None


def _folder_ref(folder: str | Path) -> ModelRef:
    try:
        return resolve(Path(folder))
    except CheckpointError as e:
        raise RegistryError(str(e)) from e


def folder_entry(name: str, folder: str | Path, source: str, description: str = "") -> ModelEntry:
    """An entry for a checkpoint folder, its task read from config.json."""
    return ref_entry(name, _folder_ref(folder), source, description)


def ref_entry(name: str, ref: ModelRef, source: str, description: str = "") -> ModelEntry:
    """An entry for a resolved model that has a folder (a starter, a job, any checkpoint)."""
    n_params = ref.config.n_params()
    if not description:
        description = f"{ref.task} checkpoint ({source}, {n_params / 1e6:.1f}M parameters)"
    location = str(ref.folder)
    return ModelEntry(name, ref.task, source, description, location, ref.tokenizer, n_params, ref)


def cache_cap_bytes() -> int:
    """The cache cap from `GPT2LAB_MODEL_CACHE_MB` (default 2500 MB); bad values use the default."""
    try:
        mb = float(os.environ.get(CACHE_ENV, DEFAULT_CACHE_MB))
    except ValueError:
        mb = DEFAULT_CACHE_MB
    if not mb > 0:  # also rejects NaN
        mb = DEFAULT_CACHE_MB
    return int(mb * 1024 * 1024)


def gpt2_description(size: str, download: bool = False) -> str:
    """'OpenAI GPT-2, 124M parameters', plus ' · 548 MB download' for a size not cached yet."""
    desc = f"OpenAI GPT-2, {PRESETS[size].n_params() / 1e6:.0f}M parameters"
    if download:
        desc += f" · {hub.size_label(hub.download_bytes(size))} download"
    return desc


def gpt2_source() -> list[ModelEntry]:
    """GPT-2 sizes on this machine, and those that fit the cap when downloads are possible."""
    entries = []
    allow_download = downloads_allowed()
    sources = {MODELS_DIR_ENV: MODELS_DIR_ENV, HUB_CACHE: "GPT-2 (hub cache)"}
    for size in HUB_IDS:
        try:
            ref = resolve(size)
        except ModelNameError:  # not on this machine, and downloads are off
            continue
        n_params = ref.config.n_params()
        if ref.folder is not None:
            desc = gpt2_description(size)
            source = sources[ref.origin]
            folder = str(ref.folder)
            entries.append(ModelEntry(size, "lm", source, desc, folder, "gpt2", n_params, ref))
        elif allow_download and n_params * 4 <= cache_cap_bytes():  # float32 parameters
            desc = gpt2_description(size, download=True)
            entries.append(
                ModelEntry(size, "lm", DOWNLOAD_SOURCE, desc, size, "gpt2", n_params, ref)
            )
    return entries


HUB_CACHED_SOURCE, HUB_DOWNLOAD_SOURCE = "hub (cache)", "hub (download)"


def curated_source() -> list[ModelEntry]:
    """The curated hub repos (`gpt.lab.hubmodels`: distilgpt2, DialoGPT, instruction-tuned
    GPT-2s): those cached here, and the others while downloads are possible (downloaded when
    first picked). Reading this list never touches the network."""
    entries = []
    allow = downloads_allowed()
    for m in hubmodels.CURATED:
        if hub.cached_repo(m.repo) is not None:
            try:
                ref = resolve(m.repo)  # the cached snapshot: no network
            except CheckpointError:
                continue
            n = ref.config.n_params()
            entries.append(ModelEntry(m.repo, ref.task, HUB_CACHED_SOURCE, m.description,
                                      m.repo, ref.tokenizer, n, ref))  # fmt: skip
        elif allow:
            desc = f"{m.description} · about {m.approx_mb} MB download"
            entries.append(ModelEntry(m.repo, m.task, HUB_DOWNLOAD_SOURCE, desc, m.repo, "gpt2"))
    return entries


def starter_source() -> list[ModelEntry]:
    """The starter models whose folders exist under assets/models/."""
    entries = []
    for name in STARTER_MODELS:
        try:
            ref = resolve(name)
        except CheckpointError:
            continue  # not trained yet, or half-written while being trained
        entries.append(ref_entry(name, ref, "starter", _STARTER_DESCRIPTIONS[name]))
    return entries


def extra_source() -> list[ModelEntry]:
    """Checkpoint folders named by GPT2LAB_EXTRA_MODELS; unreadable ones are skipped."""
    entries = []
    for raw in os.environ.get(EXTRA_ENV, "").split(os.pathsep):
        if not raw.strip():
            continue
        folder = Path(raw.strip())
        try:
            entries.append(folder_entry(folder.name, folder, "extra"))
        except RegistryError:
            continue
    return entries


class JobModelsSource:
    """A source listing the models of a `JobManager`'s succeeded jobs as `job:<id>`.

    Their task comes from the saved config.json (what `gpt.load_model` will build); a job
    folder being deleted meanwhile is skipped.
    """

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager

    def __call__(self) -> list[ModelEntry]:
        entries = []
        for job in self.manager.models():
            base = Path(job.base).name if os.sep in job.base else job.base
            method = job.method.replace("_", " ")
            desc = f"{job.kind} job fine-tuned from {base} ({method})"
            accuracy = job.metrics.get("test_accuracy")
            if isinstance(accuracy, int | float):
                desc += f", test accuracy {accuracy:.2f}"
            try:
                entry = folder_entry(job.name, job.path, "job", desc)
            except RegistryError:
                continue
            entries.append(dataclasses.replace(entry, owner=job.owner))
        return entries


def add_job_models(registry: ModelRegistry, manager: JobManager) -> None:
    """List `manager`'s finished job models in `registry`, replacing any earlier manager's."""
    registry.sources = [s for s in registry.sources if not isinstance(s, JobModelsSource)]
    registry.sources.append(JobModelsSource(manager))


DEFAULT_SOURCES: tuple[Callable[[], Iterable[ModelEntry]], ...] = (
    gpt2_source,
    starter_source,
    curated_source,
    extra_source,
)


def _model_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


class ModelRegistry:
    """Lists models and loads them lazily into an LRU cache capped by estimated bytes.

    Thread-safe: one lock guards the cache, and a lock per name makes concurrent `get`s of the
    same model wait for one load instead of loading it twice.
    """

    def __init__(
        self,
        sources: Iterable[Callable[[], Iterable[ModelEntry]]] | None = None,
        cap_bytes: int | None = None,
    ) -> None:
        self.sources: list[Callable[[], Iterable[ModelEntry]]] = list(
            DEFAULT_SOURCES if sources is None else sources
        )
        self._cap_bytes = cap_bytes
        self._added: dict[str, ModelEntry] = {}
        self._cache: OrderedDict[str, tuple[Any, Tokenizer, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._failed: set[str] = set()  # whose last load failed: not a default until one works

    @property
    def cap_bytes(self) -> int:
        return cache_cap_bytes() if self._cap_bytes is None else self._cap_bytes

    # --- listing ------------------------------------------------------------------------------

    def add(
        self, name: str, path: str | Path, task: str | None = None, description: str = ""
    ) -> ModelEntry:
        """Register a checkpoint folder under `name` (e.g. a finished fine-tuning job).

        `task` defaults to the one in the folder's config.json. Re-adding a name replaces it and
        drops its cached copy.
        """
        if not name or not isinstance(name, str):
            raise RegistryError("a model needs a non-empty name")
        entry = folder_entry(name, path, "added", description)
        if task is not None:
            if task not in TASKS:
                raise RegistryError(f"task {task!r} is not one of {', '.join(TASKS)}")
            entry = ModelEntry(**{**entry.__dict__, "task": task})
        with self._lock:
            self._added[name] = entry
            self._cache.pop(name, None)
        return entry

    def remove(self, name: str) -> None:
        """Forget a model added with `add` (and its cached copy)."""
        with self._lock:
            self._added.pop(name, None)
            self._cache.pop(name, None)

    def entries(self, tasks: str | Iterable[str] | None = None) -> list[ModelEntry]:
        """Every listed model (first one wins on a name clash), optionally only some tasks."""
        wanted = None if tasks is None else ({tasks} if isinstance(tasks, str) else set(tasks))
        seen: dict[str, ModelEntry] = {}
        with self._lock:
            added = list(self._added.values())
        for source in self.sources:
            try:
                found = list(source())
            except Exception:  # a broken source must not hide the others
                continue
            for entry in found:
                seen.setdefault(entry.name, entry)
        for entry in added:
            seen.setdefault(entry.name, entry)
        return [e for e in seen.values() if wanted is None or e.task in wanted]

    def names(self, tasks: str | Iterable[str] | None = None) -> list[str]:
        return [e.name for e in self.entries(tasks)]

    def entry(self, name: str) -> ModelEntry:
        for e in self.entries():
            if e.name == name:
                return e
        known = ", ".join(self.names()) or "none"
        raise RegistryError(f"no model named {name!r}; available: {known}")

    def default(
        self, tasks: str | Iterable[str] | None = None, names: list[str] | None = None
    ) -> str | None:
        """`gpt2` when listed and fitting the task; for instruction models alone (the Chat tab)
        the first curated instruction-tuned GPT-2 from the hub when listed (online: a real
        GPT-2 that follows instructions, not the 4M-parameter starter-chat); else the first
        listed model, else None; a model whose last load failed (a download the hub refused)
        only when nothing else fits. `names`: `self.names(tasks)` when the caller has it
        already (a listing reads every source: the jobs database, the hub cache)."""
        names = self.names(tasks) if names is None else names
        names = [n for n in names if n not in self._failed] or names
        if "gpt2" in names:
            return "gpt2"
        if tasks == "instruct" or (tasks is not None and set(tasks) == {"instruct"}):
            hub_chat = [m.repo for m in hubmodels.CURATED if m.task == "instruct"]
            if found := [n for n in hub_chat if n in names]:
                return found[0]
        return names[0] if names else None

    # --- loading ------------------------------------------------------------------------------

    def cached(self) -> list[str]:
        """Names currently loaded, least recently used first."""
        with self._lock:
            return list(self._cache)

    def ref(self, name: str) -> ModelRef:
        """What a listed model is (`gpt.lab.names.ModelRef`: weights, tokenizer, task, architecture),
        read from its config.json at most; RegistryError when it is not listed or unreadable."""
        entry = self.entry(name)
        try:
            return entry.ref or resolve(entry.location)
        except CheckpointError as e:
            raise RegistryError(f"model {name!r}: {e}") from e

    def needs_download(self, name: str) -> bool:
        """Whether loading `name` would download it first (a GPT-2 size not cached yet)."""
        try:
            return self.ref(name).needs_download
        except RegistryError:
            return False

    def get(self, name: str, progress: hub.ProgressCallback | None = None) -> tuple[Any, Tokenizer]:
        """(model, tokenizer) of a listed model, loading it on first use (eval mode) onto
        `gpt.device.choose_device()` (CUDA, then MPS, then CPU; `$GPT2LAB_DEVICE` overrides).

        A GPT-2 size that is not cached is downloaded first, `progress` getting each
        `gpt.lab.hub.DownloadProgress`; a failed download or load raises RegistryError and caches
        nothing, so the next `get` tries again.
        """
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None:
                self._cache.move_to_end(name)
                return hit[0], hit[1]
            name_lock = self._name_locks.setdefault(name, threading.Lock())
        with name_lock:
            with self._lock:  # another thread may have loaded it while we waited
                hit = self._cache.get(name)
                if hit is not None:
                    self._cache.move_to_end(name)
                    return hit[0], hit[1]
            entry = self.entry(name)
            try:  # a GPT-2 size not on this machine is downloaded first, with progress
                ref = resolve(entry.ref or entry.location, download=True, progress=progress)
                # once, here: every tab then follows the model (`gpt.device`)
                model = load_model(ref).eval().to(choose_device())
                tokenizer = load_tokenizer(ref.tokenizer)
            except hub.DownloadError as e:
                self._failed.add(name)
                raise RegistryError(str(e)) from e
            except (CheckpointError, ValueError, OSError) as e:
                self._failed.add(name)
                raise RegistryError(f"could not load model {name!r}: {e}") from e
            self._failed.discard(name)
            size = _model_bytes(model)
            with self._lock:
                self._cache[name] = (model, tokenizer, size)
                self._evict(keep=name)
            return model, tokenizer

    def _evict(self, keep: str) -> None:
        """Drop least recently used models until the cache fits (never the one just loaded)."""
        total = sum(item[2] for item in self._cache.values())
        for other in list(self._cache):
            if total <= self.cap_bytes:
                break
            if other == keep:
                continue
            total -= self._cache.pop(other)[2]


_default: ModelRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ModelRegistry:
    """The process-wide registry the app uses (created on first call)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ModelRegistry()
        return _default
