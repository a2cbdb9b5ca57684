"""Where jobs, the hub cache and downloads live: Spaces' persistent /data when it is there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpt.lab.paths import apply_storage_env, storage_paths

REPO = Path(__file__).resolve().parent.parent


def test_writable_root_holds_jobs_hub_cache_and_downloads(tmp_path):
    paths = storage_paths({"GPT2LAB_DATA_ROOT": str(tmp_path)})
    assert paths.persistent and paths.root == tmp_path
    assert paths.jobs_dir == tmp_path / "gpt2lab" / "jobs"
    assert paths.hf_home == tmp_path / ".huggingface"
    assert paths.sources_cache == tmp_path / "gpt2lab" / "cache"


def test_variables_that_are_set_win(tmp_path):
    env = {
        "GPT2LAB_DATA_ROOT": str(tmp_path),
        "GPT2LAB_JOBS_DIR": str(tmp_path / "mine"),
        "HF_HOME": "/somewhere",
        "GPT2LAB_CACHE": "/elsewhere",
    }
    paths = storage_paths(env)
    assert paths.jobs_dir == tmp_path / "mine" and paths.hf_home is None
    assert paths.sources_cache is None
    assert storage_paths({"GPT2LAB_DATA_ROOT": str(tmp_path), "HF_HUB_CACHE": "/c"}).hf_home is None


def test_no_volume_keeps_the_defaults(tmp_path):
    for root in (tmp_path / "missing", tmp_path / "a-file"):
        (tmp_path / "a-file").write_text("")
        paths = storage_paths({"GPT2LAB_DATA_ROOT": str(root)})
        assert not paths.persistent and paths.root is None
        assert paths.jobs_dir == Path("jobs") and paths.hf_home is None
        assert paths.sources_cache is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_root_is_not_used(tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert not storage_paths({"GPT2LAB_DATA_ROOT": str(tmp_path)}).persistent
    finally:
        tmp_path.chmod(0o700)


def test_apply_sets_hf_home_and_cache(tmp_path):
    env = {"GPT2LAB_DATA_ROOT": str(tmp_path)}
    paths = apply_storage_env(env)
    assert env["HF_HOME"] == str(tmp_path / ".huggingface") == str(paths.hf_home)
    assert env["GPT2LAB_CACHE"] == str(tmp_path / "gpt2lab" / "cache")
    again = {"GPT2LAB_DATA_ROOT": str(tmp_path / "missing"), "HF_HOME": "/x"}
    apply_storage_env(again)
    assert again == {"GPT2LAB_DATA_ROOT": str(tmp_path / "missing"), "HF_HOME": "/x"}


@pytest.mark.slow  # a subprocess
def test_app_sets_hf_home_before_huggingface_hub_is_imported(tmp_path):
    """`python app.py` on a Space: HF_HOME on the volume as huggingface_hub reads it at import."""
    # The guard in app.py runs before any import: check it sets HF_HOME first, in a process
    # whose app.py __main__ block is stubbed at the point where gradio would be imported.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HOME", "HF_HUB_CACHE", "GPT2LAB_JOBS_DIR")
    }
    env.update(GPT2LAB_DATA_ROOT=str(tmp_path), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    probe = (
        "import sys, runpy\n"
        "src = open('app.py').read().split('import logging  # noqa: E402')[0]\n"
        "exec(compile(src, 'app.py', 'exec'), {'__name__': '__main__'})\n"
        "import huggingface_hub.constants as c\n"
        "from gpt.lab.paths import storage_paths\n"
        "print(c.HF_HOME); print(storage_paths().jobs_dir)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    hf_home, jobs = out.stdout.split()
    assert hf_home == str(tmp_path / ".huggingface")
    assert jobs == str(tmp_path / "gpt2lab" / "jobs")
