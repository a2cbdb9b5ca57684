"""Model names (`gpt.lab.names.resolve`): each kind of name, each error, and the loaders that use it.

Small random models in temporary folders (the Hugging Face layout written by hand, so that
transformers is not imported: its parity with `save_pretrained` is tests/test_checkpoint.py's);
GPT-2 sizes come from `GPT2LAB_MODELS_DIR` or the fake hub on loopback, never the network.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

import gpt
from gpt.checkpoint import CheckpointError
from gpt.config import PRESETS, STARTER_DIR
from gpt.lab import hub
from gpt.lab import names as names_mod
from gpt.lab.names import (
    HUB,
    HUB_CACHE,
    ModelNameError,
    ModelRef,
    is_name,
    load_model,
    load_tokenizer,
    resolve,
)
from gpt.lab.registry import ModelRegistry
from gpt.tokenizer import TokenizerNotFoundError
from tests import fakehub

TINY = gpt.GPTConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No variable ruling the hub out, an empty hub cache, no GPT2LAB_MODELS_DIR."""
    for name in ("HF_HUB_OFFLINE", "GPT2LAB_ALLOW_DOWNLOAD", "GPT2LAB_MODELS_DIR", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    hub.reset()
    yield monkeypatch
    hub.reset()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A GPT-2 Lab checkpoint of an instruction-tuned tiny model."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("names") / "chat"
    return gpt.save_checkpoint(folder, gpt.GPT(TINY), task="instruct", tokenizer="gpt2")


def hf_folder(folder: Path, config: gpt.GPTConfig = TINY, seed: int = 0) -> Path:
    """A random model in the Hugging Face GPT-2 layout: its config.json, and model.safetensors
    with the keys under `transformer.` as GPT2LMHeadModel saves them."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    state = gpt.GPT(config).state_dict()
    save_file({f"transformer.{k}": v.contiguous() for k, v in state.items()},
              str(folder / "model.safetensors"))  # fmt: skip
    hf = dict(model_type="gpt2", vocab_size=config.vocab_size, n_positions=config.block_size,
              n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd)  # fmt: skip
    (folder / "config.json").write_text(json.dumps(hf), encoding="utf-8")
    return folder


class FakeJobs:
    """A job manager as `resolve` sees one (`gpt.lab.names.JobLookup`)."""

    def __init__(self, **jobs: SimpleNamespace) -> None:
        self.jobs = jobs

    def get(self, job_id: str) -> SimpleNamespace:
        if job_id not in self.jobs:
            raise ValueError(f"no job {job_id!r}")  # as gpt.jobs.JobError says it
        return self.jobs[job_id]


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([[1, 2, 3]]))


# --- each kind -----------------------------------------------------------------------------------


def test_gpt2_size_from_models_dir(env, tmp_path):
    hf_folder(tmp_path / "models" / "gpt2-medium")
    env.setenv("GPT2LAB_MODELS_DIR", str(tmp_path / "models"))
    ref = resolve("gpt2-medium")
    assert (ref.kind, ref.layout, ref.task, ref.tokenizer) == ("gpt2", "hf", "lm", "gpt2")
    assert ref.folder == (tmp_path / "models" / "gpt2-medium").resolve()
    assert ref.origin == "GPT2LAB_MODELS_DIR" and ref.config == PRESETS["gpt2-medium"]
    assert not ref.needs_download and ref.portable == "gpt2-medium"  # the name, not the folder


def test_gpt2_size_not_downloaded_yet(env):
    ref = resolve("gpt2-xl")  # the hub is not asked: only the cache is looked at
    assert ref.folder is None and ref.needs_download and ref.origin == HUB
    assert ref.config.n_layer == 48 and ref.tokenizer == "gpt2"


@pytest.mark.parametrize(
    "variable, value, reason",
    [
        ("HF_HUB_OFFLINE", "1", "HF_HUB_OFFLINE=1 is set"),
        ("GPT2LAB_ALLOW_DOWNLOAD", "0", "GPT2LAB_ALLOW_DOWNLOAD=0 turns downloads off"),
    ],
)
def test_gpt2_size_not_downloaded_and_offline(env, variable, value, reason):
    env.setenv(variable, value)
    for download in (False, True):
        with pytest.raises(ModelNameError) as e:
            resolve("gpt2-medium", download=download)
        assert e.value.reason == "offline"
        assert "'gpt2-medium' is not in the local cache" in str(e.value)
        assert reason in str(e.value) and "$GPT2LAB_MODELS_DIR/gpt2-medium" in str(e.value)
    ref = resolve("gpt2-medium", weights=False)  # its tokenizer and shape need no weights
    assert ref.folder is None and ref.tokenizer == "gpt2" and ref.config.n_layer == 24
    assert load_tokenizer("gpt2-medium") is load_tokenizer("gpt2")


@pytest.mark.slow  # a loopback server and a download
def test_gpt2_size_downloaded_then_found_in_the_cache(env, tmp_path):
    folder = hf_folder(tmp_path / "served")
    env.setenv("HF_ENDPOINT", fakehub.start(folder))
    try:
        events: list[hub.DownloadProgress] = []
        ref = resolve("gpt2", download=True, progress=events.append)
        assert ref.origin == HUB_CACHE and (ref.folder / "model.safetensors").is_file()
        assert events and events[-1].finished
        again = resolve("gpt2")  # no download asked: found in the cache
        assert again == ref
        # a ref not downloaded yet is downloaded when `download=True` is asked of it
        pending = dataclasses.replace(ref, folder=None)
        assert resolve(pending) is pending and resolve(pending, download=True) == ref
        torch.testing.assert_close(logits(load_model(pending)), logits(load_model(folder)))
    finally:
        fakehub.stop()


def test_starter_models():
    spam = resolve("starter-spam")
    assert (spam.kind, spam.layout, spam.task) == ("starter", "gpt2-lab", "classify")
    assert spam.folder == STARTER_DIR / "starter-spam" and spam.portable == "starter-spam"
    assert spam.tokenizer == str(spam.folder) and spam.config.vocab_size == 4096
    assert resolve("starter-chat").task == "instruct"
    assert load_tokenizer("starter").n_vocab == load_tokenizer(resolve("starter").tokenizer).n_vocab


def test_starter_not_trained_yet(monkeypatch, tmp_path):
    monkeypatch.setattr(names_mod, "STARTER_DIR", tmp_path)
    with pytest.raises(ModelNameError, match=r"recipes starter") as e:
        resolve("starter")
    assert e.value.reason == "no_starter" and str(tmp_path / "starter") in str(e.value)


def test_presets():
    ref = resolve("preset:mini")
    assert (ref.kind, ref.folder, ref.layout, ref.task) == ("preset", None, None, "lm")
    assert ref.config == PRESETS["mini"] and ref.tokenizer == "gpt2"
    assert not ref.needs_download and ref.portable == "preset:mini"
    with pytest.raises(ModelNameError, match="unknown preset 'huge'; known: gpt2, ") as e:
        resolve("preset:huge")
    assert e.value.reason == "unknown_preset"
    with pytest.raises(CheckpointError, match="'preset:mini' has no weights to load"):
        load_model("preset:mini")


def test_finished_job(checkpoint):
    jobs = FakeJobs(j1=SimpleNamespace(state="succeeded", model_path=str(checkpoint)))
    ref = resolve("job:j1", jobs=jobs)
    assert (ref.kind, ref.task, ref.origin) == ("job", "instruct", "job j1")
    assert ref.folder == checkpoint.resolve() and ref.portable == str(checkpoint.resolve())


@pytest.mark.parametrize(
    "job, reason, message",
    [
        (SimpleNamespace(state="running", model_path=None), "unfinished", r"no model yet \(it is"),
        (SimpleNamespace(state="failed", model_path=None), "unfinished", "it is failed"),
        (SimpleNamespace(state="succeeded", model_path=None), "unfinished", "folder is gone"),
    ],
)
def test_job_without_a_model(job, reason, message):
    with pytest.raises(ModelNameError, match=message) as e:
        resolve("job:j2", jobs=FakeJobs(j2=job))
    assert e.value.reason == reason


def test_unknown_job_and_no_job_manager():
    with pytest.raises(ModelNameError, match="no job 'nope'") as e:
        resolve("job:nope", jobs=FakeJobs())
    assert e.value.reason == "no_job" and isinstance(e.value.__cause__, ValueError)
    with pytest.raises(ModelNameError, match="no job manager was given") as e:
        resolve("job:j1")
    assert e.value.reason == "no_job"


def test_our_checkpoint_folder(checkpoint, monkeypatch):
    ref = resolve(str(checkpoint))
    assert (ref.kind, ref.layout, ref.task, ref.origin) == ("folder", "gpt2-lab", "instruct", "folder")
    assert ref.config == TINY and ref.tokenizer == str(checkpoint.resolve())
    monkeypatch.chdir(checkpoint.parent)  # a relative path becomes absolute
    assert resolve("chat").folder == checkpoint.resolve() == resolve(Path("chat")).folder
    assert resolve(ref) is ref


def test_hugging_face_folder(tmp_path):
    folder = hf_folder(tmp_path / "hf")
    ref = resolve(folder)
    assert (ref.kind, ref.layout, ref.task, ref.config) == ("folder", "hf", "lm", TINY)
    torch.testing.assert_close(logits(load_model(ref)), logits(load_model(folder)))


def test_a_name_wins_over_a_folder_unless_a_path_is_given(env, tmp_path, monkeypatch):
    hf_folder(tmp_path / "gpt2")
    monkeypatch.chdir(tmp_path)
    assert resolve("gpt2").kind == "gpt2"
    assert resolve(Path("gpt2")).kind == "folder"


@pytest.mark.parametrize(
    "text, expected",
    [("gpt2", True), ("starter-chat", True), ("preset:tiny", True), ("job:abc", True),
     ("tiny", False), ("gpt2.json", False), ("/models/gpt2", False), ("", False)],
)  # fmt: skip
def test_is_name(text, expected):
    assert is_name(text) is expected


def test_ref_is_frozen():
    ref = resolve("preset:tiny")
    assert isinstance(ref, ModelRef)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.task = "classify"  # type: ignore[misc]


# --- each error ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, message",
    [
        ("gpt5", "no model named 'gpt5': expected a GPT-2 size (gpt2, gpt2-medium"),
        ("tiny", "'tiny' is a preset without released weights: preset:tiny is a new one"),
        ("", "no model named ''"),
        ("   ", "no model named '   '"),
    ],
)
def test_unknown_names(name, message):
    with pytest.raises(ModelNameError) as e:
        resolve(name)
    assert message in str(e.value) and e.value.reason == "unknown"
    assert "job:<id> of a finished job, or a model folder" in str(e.value)


def test_folder_without_config_and_a_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNameError, match="missing config.json in .*empty") as e:
        resolve(tmp_path / "empty")
    assert e.value.reason == "not_a_model"
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(ModelNameError, match="weights.safetensors is a file") as e:
        resolve(str(tmp_path / "weights.safetensors"))
    assert e.value.reason == "not_a_model"
    with pytest.raises(ModelNameError, match="gone does not exist"):
        resolve(tmp_path / "gone")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"task": "translate"}, "task 'translate' is not one of lm, classify, instruct"),
        ({"version": 99}, "checkpoint version 99 is not supported"),
        ({"model": {"n_head": 5}}, "bad model config"),
    ],
)
def test_broken_config_names_the_problem(checkpoint, tmp_path, change, message):
    folder = shutil.copytree(checkpoint, tmp_path / "broken")
    cfg = json.loads((folder / "config.json").read_text())
    if "model" in change:
        cfg["model"].update(change.pop("model"))
    (folder / "config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(CheckpointError, match=message):
        resolve(folder)


def test_not_a_gpt2_config(tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="model_type is 'bert', expected 'gpt2'"):
        resolve(tmp_path / "bert")


def test_a_hugging_face_config_with_a_null_field_names_the_file(tmp_path):
    folder = tmp_path / "nulls"
    folder.mkdir()
    config = dict(model_type="gpt2", vocab_size=50, n_layer=1, n_head=1, n_embd=8)
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_epsilon": None}))
    with pytest.raises(CheckpointError, match="nulls/config.json"):  # was a raw TypeError
        resolve(folder)


def test_load_tokenizer_says_why_a_name_has_none():
    with pytest.raises(TokenizerNotFoundError, match="no tokenizer for 'preset:huge'.*unknown"):
        load_tokenizer("preset:huge")


# --- the users -----------------------------------------------------------------------------------


def test_registry_entries_carry_their_ref(checkpoint):
    reg = ModelRegistry(sources=[])
    entry = reg.add("chat", checkpoint)
    ref = reg.ref("chat")
    assert ref.task == entry.task == "instruct" and str(ref.folder) == entry.location
    assert entry.n_params == TINY.n_params() and not reg.needs_download("chat")
