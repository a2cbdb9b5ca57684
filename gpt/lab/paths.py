"""Where the app keeps what should outlive a restart: jobs, the hub cache, downloaded data.

On Hugging Face Spaces a persistent storage volume is mounted at `/data`; everything else on
a Space is lost when it restarts. `storage_paths()` decides, from the environment only:

- the root is `$GPT2LAB_DATA_ROOT` (default `/data`); it counts when it is an existing,
  writable folder;
- jobs (and their models): `$GPT2LAB_JOBS_DIR`, else `<root>/gpt2lab/jobs`, else `./jobs`;
- the huggingface_hub cache (downloaded GPT-2 weights): `$HF_HOME` / `$HF_HUB_CACHE` when set,
  else `<root>/.huggingface`, else huggingface_hub's default (~/.cache/huggingface);
- downloaded data sources (`gpt.lab.sources`): `$GPT2LAB_CACHE`, else `<root>/gpt2lab/cache`, else
  ~/.cache/gpt2lab.

`apply_storage_env()` writes the chosen HF_HOME and GPT2LAB_CACHE into the environment; the app
calls it before huggingface_hub is imported (huggingface_hub reads HF_HOME at import time).

>>> paths = storage_paths({"GPT2LAB_DATA_ROOT": "/no/such/folder"})
>>> str(paths.jobs_dir), paths.hf_home, paths.persistent
('jobs', None, False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT_ENV = "GPT2LAB_DATA_ROOT"
DEFAULT_DATA_ROOT = "/data"
JOBS_DIR_ENV = "GPT2LAB_JOBS_DIR"
SOURCES_CACHE_ENV = "GPT2LAB_CACHE"  # where gpt.lab.sources caches downloaded data
DEFAULT_JOBS_DIR = "jobs"


@dataclass(frozen=True)
class StoragePaths:
    """The folders chosen by `storage_paths`.

    Attributes:
        jobs_dir: the JobManager's folder.
        hf_home: HF_HOME to set, or None to leave it as it is (set already, or no volume).
        sources_cache: GPT2LAB_CACHE to set, or None to leave it.
        persistent: whether a writable persistent root was found (and is used).
        root: that root, or None.
    """

    jobs_dir: Path
    hf_home: Path | None
    sources_cache: Path | None
    persistent: bool
    root: Path | None


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def storage_paths(environ: Mapping[str, str] | None = None) -> StoragePaths:
    """Decide where jobs, the hub cache and data downloads live (see the module docstring)."""
    env = os.environ if environ is None else environ
    root = Path(env.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT).expanduser()
    persistent = _writable_dir(root)
    if env.get(JOBS_DIR_ENV):
        jobs = Path(env[JOBS_DIR_ENV]).expanduser()
    elif persistent:
        jobs = root / "gpt2lab" / "jobs"
    else:
        jobs = Path(DEFAULT_JOBS_DIR)
    hf_set = bool(env.get("HF_HOME") or env.get("HF_HUB_CACHE"))
    hf_home = root / ".huggingface" if persistent and not hf_set else None
    sources = root / "gpt2lab" / "cache" if persistent and not env.get(SOURCES_CACHE_ENV) else None
    return StoragePaths(jobs, hf_home, sources, persistent, root if persistent else None)


def apply_storage_env(environ: MutableMapping[str, str] | None = None) -> StoragePaths:
    """`storage_paths()`, with its HF_HOME and GPT2LAB_CACHE written into the environment.

    Call it before huggingface_hub is imported.
    """
    env = os.environ if environ is None else environ
    paths = storage_paths(env)
    if paths.hf_home is not None:
        env["HF_HOME"] = str(paths.hf_home)
    if paths.sources_cache is not None:
        env[SOURCES_CACHE_ENV] = str(paths.sources_cache)
    return paths
