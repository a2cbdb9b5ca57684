"""Model names: what a name means, and where its weights, tokenizer and task come from.

Everything that takes a model name (`load_model`, `load_tokenizer`, the registry, jobs, runs and
the pages) asks `resolve(name)`, which returns a `ModelRef`. A new kind of model is taught here.

| Name | `kind` | Weights (`folder`) | `tokenizer` | `task` |
|---|---|---|---|---|
| `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl` | gpt2 | `$GPT2LAB_MODELS_DIR/<size>`, else the hub cache, else None until downloaded | `gpt2` | lm |
| `starter`, `starter-spam`, `starter-chat` | starter | `assets/models/<name>` | the folder | config.json |
| `preset:<name>` (`preset:tiny`, ...) | preset | None: a new random `GPT(PRESETS[name])` | `gpt2` | lm |
| `job:<id>` | job | the finished job's model folder (needs the job manager) | the folder | config.json |
| `org/name` or `org/name@revision` (not an existing folder) | hub | the hub cache's snapshot, else None until downloaded | the folder | config.json (`id2label` + `score`: classify; curated: `gpt.lab.hubmodels`) |
| any other text, or a `Path` | folder | that folder: our checkpoint or a Hugging Face GPT-2 folder | the folder | config.json |

A name wins over a folder of the same name in the working folder; pass a `Path` to mean the
folder. Resolving reads config.json at most, never weights, and asks the network nothing unless
`download=True`.

>>> ref = resolve("preset:tiny")
>>> ref.kind, ref.folder, ref.task, ref.tokenizer, ref.config.n_layer
('preset', None, 'lm', 'gpt2', 2)
>>> starter = resolve("starter")  # committed under assets/models/
>>> starter.kind, starter.layout, starter.task, starter.folder.name, starter.portable
('starter', 'gpt2-lab', 'lm', 'starter', 'starter')
>>> resolve("gpt5")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
gpt.lab.names.ModelNameError: no model named 'gpt5': expected a GPT-2 size (gpt2, gpt2-medium, ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from gpt import checkpoint
from gpt import tokenizer as tok
from gpt.checkpoint import CheckpointError, Layout, read_model_config
from gpt.config import HUB_IDS, PRESETS, STARTER_DIR, STARTER_MODELS, GPTConfig
from gpt.lab import hub, hubmodels
from gpt.lab.hub import MODELS_DIR_ENV

Kind = Literal["gpt2", "starter", "preset", "job", "folder", "hub"]
Reason = Literal[
    "unknown", "unknown_preset", "no_starter", "no_job", "unfinished", "not_a_model", "offline"
]
TASKS = ("lm", "classify", "instruct")
PRESET_PREFIX = "preset:"
JOB_PREFIX = "job:"
# What a name can be, for error messages.
EXPECTED = (
    f"a GPT-2 size ({', '.join(HUB_IDS)}), a starter model ({', '.join(STARTER_MODELS)}), "
    f"preset:NAME ({', '.join(PRESETS)}), a hub id org/name[@revision], "
    "job:<id> of a finished job, or a model folder"
)
HUB_CACHE = "hub cache"  # `ModelRef.origin` of weights found in (or downloaded to) the hub cache
HUB = "hub"  # `ModelRef.origin` of a GPT-2 size not on this machine yet


class ModelNameError(CheckpointError):
    """A model name that does not resolve. The message says what is wrong and what to do;
    `reason` says which case it is, for callers that word it their own way.

    Reasons: "unknown" (no such name or path), "unknown_preset", "no_starter" (not trained
    yet), "no_job" (no such job, or no job manager to ask), "unfinished" (the job has no model
    yet), "not_a_model" (a file, or a folder without config.json), "offline" (a GPT-2 size not
    on this machine while downloads are off).
    """

    def __init__(self, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ModelRef:
    """What a model name means: where its weights, tokenizer and task come from.

    Attributes:
        name: the name as given (a folder as its text).
        kind: "gpt2", "starter", "preset", "job" or "folder" (see the module docstring).
        folder: the absolute folder holding the weights; None for a preset (it has none) or a
            GPT-2 size not downloaded yet (`needs_download`).
        layout: "gpt2-lab" (our checkpoint) or "hf" (Hugging Face GPT-2, as the hub's sizes
            are); None for a preset.
        config: the architecture, from config.json, or `PRESETS` for a GPT-2 size or a preset
            (a preset's vocabulary follows the tokenizer a run gives it).
        task: "lm", "classify" or "instruct".
        tokenizer: what `gpt.load_tokenizer` is given: "gpt2" or the model's folder.
        origin: where the weights were found, in words: `GPT2LAB_MODELS_DIR`, "hub cache",
            "hub" (to download), "assets/models", "job <id>", "folder", or "none" (a preset).
    """

    name: str
    kind: Kind
    folder: Path | None
    layout: Layout | None
    config: GPTConfig
    task: str
    tokenizer: str
    origin: str

    @property
    def needs_download(self) -> bool:
        """Whether the weights must be downloaded first (a GPT-2 size or hub repo not here)."""
        return self.kind in ("gpt2", "hub") and self.folder is None

    @property
    def portable(self) -> str:
        """A name that means this model in any process on this machine (a `RunSpec.base`, what a
        job worker loads): the name of a GPT-2 size, starter or preset, else the absolute folder
        (a job id needs its manager, a relative path its working folder)."""
        if self.kind in ("gpt2", "starter", "preset", "hub") or self.folder is None:
            return self.name
        return str(self.folder)


class JobLookup(Protocol):
    """What `resolve` asks of a job manager (`gpt.jobs.JobManager` is one): `get(job_id)` gives a
    job's status, with `state` and `model_path` (set once it succeeded), and raises a
    ValueError naming the id when there is no such job."""

    def get(self, job_id: str) -> Any: ...


def is_name(text: str) -> bool:
    """Whether `text` is a model name rather than a path (`resolve` decides what it means).

    >>> is_name("gpt2-xl"), is_name("starter-chat"), is_name("job:20260101-120000-abc123")
    (True, True, True)
    >>> is_name("preset:tiny"), is_name("runs/lm/model"), is_name("tiny")
    (True, False, False)
    """
    return text in HUB_IDS or text in STARTER_MODELS or text.startswith((PRESET_PREFIX, JOB_PREFIX))


def resolve(
    name: str | Path | ModelRef,
    *,
    jobs: JobLookup | None = None,
    download: bool = False,
    progress: hub.ProgressCallback | None = None,
    weights: bool = True,
) -> ModelRef:
    """What `name` means: a GPT-2 size, a starter model, `preset:NAME`, `job:<id>` (asked of
    `jobs`), or a folder (a `Path` is always a folder). A `ModelRef` is returned as it is.

    With `download=True` a GPT-2 size that is not on this machine is downloaded into the hub
    cache first (`progress` gets each `gpt.lab.hub.DownloadProgress`; a failure raises
    `gpt.lab.hub.DownloadError` saying why); without it, its `folder` is None. One that cannot be
    had (not here, downloads off) is an error, unless `weights=False` says that only its
    tokenizer, task or architecture is wanted.

    Raises ModelNameError (a CheckpointError) when the name means nothing usable, and
    CheckpointError when a folder's config.json is broken.
    """
    if isinstance(name, ModelRef):
        if not (download and name.needs_download):
            return name
        name = name.name
    if isinstance(name, Path):
        return _folder_ref(str(name), name.expanduser(), "folder", "folder")
    text = str(name)
    if text.startswith(PRESET_PREFIX):
        return _preset_ref(text)
    if text.startswith(JOB_PREFIX):
        return _job_ref(text, jobs)
    if text in STARTER_MODELS:
        folder = STARTER_DIR / text
        if not (folder / "config.json").is_file():
            raise ModelNameError(
                f"starter model {text!r} is not available: {folder} has no config.json; "
                "train it with `python -m gpt recipes starter`, or pick another model",
                "no_starter",
            )
        return _folder_ref(text, folder, "starter", "assets/models")
    if text in HUB_IDS:
        return _gpt2_ref(text, download, progress, weights)
    path = Path(text).expanduser()
    if text.strip() and path.exists():
        return _folder_ref(text, path, "folder", "folder")
    if (parsed := hub.parse_hub_id(text)) is not None:
        return _hub_ref(text.strip(), *parsed, download, progress, weights)
    hint = ""
    if text in PRESETS:
        hint = f" ({text!r} is a preset without released weights: preset:{text} is a new one)"
    raise ModelNameError(f"no model named {text!r}{hint}: expected {EXPECTED}", "unknown")


def _gpt2_ref(
    size: str, download: bool, progress: hub.ProgressCallback | None, weights: bool
) -> ModelRef:
    local = os.environ.get(MODELS_DIR_ENV)
    folder, origin = None, HUB
    if local and (Path(local) / size / "config.json").is_file():
        folder, origin = (Path(local) / size).resolve(), MODELS_DIR_ENV
    elif (cached := hub.cached_gpt2(size)) is not None:
        folder, origin = cached, HUB_CACHE
    elif weights and (reason := hub.skip_reason()) is not None:
        raise ModelNameError(hub.offline_message(size, reason), "offline")
    elif download:
        folder, origin = hub.download_gpt2(size, progress), HUB_CACHE
    return ModelRef(size, "gpt2", folder, "hf", PRESETS[size], "lm", "gpt2", origin)


def hf_task(raw: dict[str, Any]) -> str:
    """The task of a Hugging Face config: "classify" for `GPT2ForSequenceClassification`, else
    "lm".

    >>> hf_task({"architectures": ["GPT2ForSequenceClassification"]}), hf_task({})
    ('classify', 'lm')
    """
    archs = raw.get("architectures") or []
    return "classify" if any(str(a).endswith("ForSequenceClassification") for a in archs) else "lm"


def _hub_ref(
    text: str, repo: str, revision: str | None, download: bool,
    progress: hub.ProgressCallback | None, weights: bool,
) -> ModelRef:
    """A hub repo: its cached snapshot, else downloaded (`download`), else only its config.json
    read from the hub (small) so that task and size are known before the weights come."""
    folder = hub.cached_repo(repo, revision)
    if folder is None and download:
        folder = hub.download_repo(repo, revision, progress, label=text)
    curated = hubmodels.curated(repo)
    if folder is not None:
        ref = _folder_ref(text, folder, "hub", HUB_CACHE)
        task = curated.task if curated and ref.task == "lm" else ref.task
        return ModelRef(text, "hub", ref.folder, ref.layout, ref.config, task, ref.tokenizer,
                        ref.origin)
    if (reason := hub.skip_reason()) is not None:
        if weights:
            raise ModelNameError(hub.offline_message(text, reason), "offline")
        raw: dict[str, Any] = {}
    else:
        try:
            raw = hub.read_repo_config(repo, revision)
        except hub.DownloadError as e:
            raise ModelNameError(f"hub model {text!r}: {e}", "unknown") from e
    config = checkpoint.config_from_hf(raw, f"{repo}/config.json") if raw else PRESETS["gpt2"]
    task = curated.task if curated and hf_task(raw) == "lm" else hf_task(raw)
    return ModelRef(text, "hub", None, "hf", config, task, "gpt2", HUB)


def _preset_ref(text: str) -> ModelRef:
    key = text.removeprefix(PRESET_PREFIX)
    if key not in PRESETS:
        raise ModelNameError(
            f"unknown preset {key!r}; known: {', '.join(PRESETS)}", "unknown_preset"
        )
    return ModelRef(text, "preset", None, None, PRESETS[key], "lm", "gpt2", "none")


def _job_ref(text: str, jobs: JobLookup | None) -> ModelRef:
    job_id = text.removeprefix(JOB_PREFIX)
    if jobs is None:
        raise ModelNameError(
            f"{text!r} names a fine-tuning job, and no job manager was given to look it up; "
            "give the job's model folder (<jobs>/<id>/out/model) instead",
            "no_job",
        )
    try:
        status = jobs.get(job_id)
    except ValueError as e:  # gpt.jobs.JobError: no such job
        raise ModelNameError(str(e), "no_job") from e
    if status.state != "succeeded":
        raise ModelNameError(f"job {job_id} has no model yet (it is {status.state})", "unfinished")
    if not status.model_path:
        raise ModelNameError(f"job {job_id} finished, but its model folder is gone", "unfinished")
    return _folder_ref(text, Path(status.model_path), "job", f"job {job_id}")


def _folder_ref(name: str, folder: Path, kind: Kind, origin: str) -> ModelRef:
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ModelNameError(
            f"{folder} {what}: a model is a folder with config.json and model.safetensors",
            "not_a_model",
        )
    has_config = (folder / "config.json").is_file()
    if not has_config and kind != "hub" and hub.snapshot_repo(folder) is None:
        raise ModelNameError(
            f"missing config.json in {folder}: not a model folder (a GPT-2 Lab checkpoint or a "
            "Hugging Face GPT-2 folder has one)",
            "not_a_model",
        )
    layout, config, raw = read_model_config(folder)
    task = raw.get("task", "lm") if layout == "gpt2-lab" else hf_task(raw)
    if task not in TASKS:
        raise CheckpointError(
            f"{folder / 'config.json'}: task {task!r} is not one of {', '.join(TASKS)}"
        )
    folder = folder.resolve()
    # the folder's own tokenizer files, or GPT-2's (+ its added_tokens.json) read from there;
    # the LLMs-from-scratch repos have no config.json and use GPT-2's
    tokenizer = str(folder) if has_config else "gpt2"
    return ModelRef(name, kind, folder, layout, config, task, tokenizer, origin)


def _resolve_for_loading(name: str | Path | ModelRef, progress: Any = None) -> ModelRef:
    """`resolve` with the weights on this machine (downloaded first), a failed download as a
    CheckpointError."""
    try:
        return resolve(name, download=True, progress=progress)
    except hub.DownloadError as e:
        label = getattr(name, "name", str(name))
        raise CheckpointError(
            f"{e} You can also pass that folder's path instead of {label!r}."
        ) from e


def load_model(
    name_or_path: str | Path | ModelRef, dtype: torch.dtype = torch.float32, progress: Any = None
) -> Any:
    """Load a model by name, from a folder, or from a `ModelRef` (a `GPT`, or a `GPTClassifier`
    for a classification checkpoint).

    `resolve` says what a name means: a GPT-2 size (`gpt2` ... `gpt2-xl`, downloaded first when
    it is not on this machine, `progress` getting each `gpt.lab.hub.DownloadProgress`), a starter
    model, `job:<id>`, or a folder, which `gpt.checkpoint.load_model` reads. `preset:NAME` has no
    weights to load.
    """
    ref = _resolve_for_loading(name_or_path, progress)
    if ref.folder is None:
        preset = ref.name.removeprefix("preset:")
        raise CheckpointError(
            f"{ref.name!r} has no weights to load: a preset is a shape; "
            f"GPT(PRESETS[{preset!r}]) builds a new random model of it"
        )
    return checkpoint.load_model(ref.folder, dtype)


def model_folder(name: str, progress: Any = None) -> Path:
    """The folder holding a named model's weights (a GPT-2 size is downloaded first)."""
    folder = _resolve_for_loading(name, progress).folder
    if folder is None:
        raise CheckpointError(f"{name!r} has no weights on this machine")
    return folder


def load_tokenizer(name_or_path: str | os.PathLike) -> tok.Tokenizer:
    """The tokenizer of a model name (`starter`, `gpt2-medium`, `preset:tiny`, `job:<id>`), or
    whatever `gpt.tokenizer.load_tokenizer` reads (`"gpt2"`, a file, a folder)."""
    text = str(name_or_path)
    by_name = is_name(text) or (hub.parse_hub_id(text) is not None and not Path(text).exists())
    if not isinstance(name_or_path, os.PathLike) and text != "gpt2" and by_name:
        try:
            return load_tokenizer(Path(t) if (t := resolve(text, weights=False).tokenizer)
                                  != "gpt2" else t)
        except CheckpointError as e:
            raise tok.TokenizerNotFoundError(f"no tokenizer for {str(name_or_path)!r}: {e}") from e
    return with_added_tokens(tok.load_tokenizer(name_or_path), name_or_path)


def with_added_tokens(tokenizer: tok.Tokenizer, where: str | os.PathLike) -> tok.Tokenizer:
    """`tokenizer` plus the tokens of a Hugging Face folder's `added_tokens.json` (`{"<pad>":
    50257}`: ids past the BPE vocabulary, matched whole as special tokens), when it has one."""
    path = Path(where) / "added_tokens.json"
    if str(where) == "gpt2" or not path.is_file():
        return tokenizer
    added = checkpoint.read_json(path)
    extra = {s: i for s, i in added.items()
             if isinstance(i, int) and tokenizer.special_tokens.get(s) != i}
    if not extra:
        return tokenizer
    # vocab.json lists added tokens too, as if BPE pieces: they are whole tokens instead
    ranks = {t: r for t, r in tokenizer.ranks.items() if r not in set(extra.values())}
    return tok.Tokenizer(ranks, {**tokenizer.special_tokens, **extra},
                         tokenizer.pattern, tokenizer.name, source=str(where))
