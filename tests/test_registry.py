"""The model registry: listing from sources, tasks, the memory cap, thread-safe lazy loading."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

import gpt
from gpt.lab import registry as reg_mod
from gpt.lab.registry import ModelEntry, ModelRegistry, RegistryError

TINY = gpt.GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("registry")
    torch.manual_seed(0)
    out = {}
    for name, task in [("a-lm", "lm"), ("b-lm", "lm"), ("c-chat", "instruct")]:
        out[name] = gpt.save_checkpoint(root / name, gpt.GPT(TINY), task=task, tokenizer="gpt2")
    clf = gpt.GPTClassifier(gpt.GPT(TINY), 2, ("ham", "spam"))
    out["d-spam"] = gpt.save_checkpoint(
        root / "d-spam",
        clf.gpt,
        task="classify",
        head={"num_classes": 2, "labels": ["ham", "spam"]},
        head_state=clf.head.state_dict(),
    )
    return out


def model_bytes() -> int:
    return TINY.n_params() * 4


def test_add_lists_with_task_from_config(folders):
    reg = ModelRegistry(sources=[])
    for name, folder in folders.items():
        reg.add(name, folder)
    assert reg.names("lm") == ["a-lm", "b-lm"]
    assert reg.names(("instruct",)) == ["c-chat"]
    assert reg.entry("d-spam").task == "classify"
    assert reg.default("classify") == "d-spam" and reg.default("nothing") is None


def test_add_rejects_bad_folders_and_tasks(folders, tmp_path):
    reg = ModelRegistry(sources=[])
    with pytest.raises(RegistryError, match="config.json"):
        reg.add("empty", tmp_path)
    with pytest.raises(RegistryError, match="not one of"):
        reg.add("x", folders["a-lm"], task="translate")
    with pytest.raises(RegistryError, match="no model named 'ghost'"):
        reg.get("ghost")


def test_sources_are_pluggable_and_isolated(folders):
    def broken():
        raise RuntimeError("a source that fails")

    def jobs():
        return [reg_mod.folder_entry("job-1", folders["b-lm"], "job", "finished job")]

    reg = ModelRegistry(sources=[broken, jobs])
    assert reg.names() == ["job-1"]
    assert reg.entry("job-1") == ModelEntry(
        "job-1",
        "lm",
        "job",
        "finished job",
        str(folders["b-lm"].resolve()),
        str(folders["b-lm"].resolve()),
        TINY.n_params(),
    )


def test_extra_models_env_and_gpt2_default(folders, monkeypatch):
    monkeypatch.setenv("GPT2LAB_EXTRA_MODELS", f"{folders['a-lm']}:/no/such/folder")
    assert [e.name for e in reg_mod.extra_source()] == ["a-lm"]
    gpt2 = ModelEntry("gpt2", "lm", "test", "", "gpt2", "gpt2")
    reg = ModelRegistry(sources=[reg_mod.extra_source, lambda: [gpt2]])
    assert reg.default("lm") == "gpt2"


def test_a_model_that_failed_to_load_is_no_default_while_another_fits(folders, monkeypatch):
    """Online, the Chat tab's default hub model may fail to download at start-up (the warm-up
    logs it): the tabs then default to a model that loads, until the failed one loads."""
    monkeypatch.setenv("GPT2LAB_EXTRA_MODELS", str(folders["a-lm"]))
    broken = ModelEntry("gpt2", "lm", "test", "", "/no/such/gpt2", "gpt2")
    reg = ModelRegistry(sources=[lambda: [broken], reg_mod.extra_source])
    assert reg.default("lm") == "gpt2"
    with pytest.raises(RegistryError, match="could not load model 'gpt2'"):
        reg.get("gpt2")
    assert reg.default("lm") == "a-lm"
    alone = ModelRegistry(sources=[lambda: [broken]])
    with pytest.raises(RegistryError):
        alone.get("gpt2")
    assert alone.default("lm") == "gpt2"  # nothing else: still named (its tab says why)


def test_the_warm_up_loads_the_next_default_when_one_fails(folders, monkeypatch, caplog):
    pytest.importorskip("gradio")
    import app

    monkeypatch.setenv("GPT2LAB_EXTRA_MODELS", str(folders["a-lm"]))
    broken = ModelEntry("gpt2", "lm", "test", "", "/no/such/gpt2", "gpt2")
    reg = ModelRegistry(sources=[lambda: [broken], reg_mod.extra_source])
    monkeypatch.setattr(app, "default_registry", lambda: reg)
    monkeypatch.setattr(app.hub, "wait", lambda timeout: None)
    app.warm_up()
    assert "could not preload gpt2" in caplog.text
    assert reg.cached() == ["a-lm"] and reg.default("lm") == "a-lm"


def test_models_dir_env_lists_gpt2_without_network(tmp_path, monkeypatch):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text("{}")
    monkeypatch.setenv("GPT2LAB_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GPT2LAB_ALLOW_DOWNLOAD", raising=False)
    entries = {e.name: e for e in reg_mod.gpt2_source()}
    assert entries["gpt2"].source == "GPT2LAB_MODELS_DIR" and entries["gpt2"].task == "lm"


def test_download_env_lists_sizes_that_fit_the_cap(monkeypatch, tmp_path):
    monkeypatch.setenv("GPT2LAB_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("GPT2LAB_ALLOW_DOWNLOAD", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # it would win: never list downloads
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.setenv("GPT2LAB_MODEL_CACHE_MB", "1000")  # 124M fits, 355M does not
    names = [e.name for e in reg_mod.gpt2_source()]
    assert "gpt2" in names and "gpt2-xl" not in names


def test_cache_cap_env(monkeypatch):
    monkeypatch.setenv("GPT2LAB_MODEL_CACHE_MB", "10")
    assert reg_mod.cache_cap_bytes() == 10 * 1024 * 1024
    for bad in ("nan", "-3", "lots"):
        monkeypatch.setenv("GPT2LAB_MODEL_CACHE_MB", bad)
        assert reg_mod.cache_cap_bytes() == reg_mod.DEFAULT_CACHE_MB * 1024 * 1024


def test_get_loads_once_and_caches(folders):
    reg = ModelRegistry(sources=[])
    reg.add("a-lm", folders["a-lm"])
    reg.add("d-spam", folders["d-spam"])
    model, tok = reg.get("a-lm")
    assert isinstance(model, gpt.GPT) and not model.training and tok.n_vocab == 50257
    assert reg.get("a-lm")[0] is model
    assert isinstance(reg.get("d-spam")[0], gpt.GPTClassifier)


def test_lru_eviction_by_bytes(folders):
    reg = ModelRegistry(sources=[], cap_bytes=int(model_bytes() * 2.5))
    for name in ("a-lm", "b-lm", "c-chat"):
        reg.add(name, folders[name])
    reg.get("a-lm")
    reg.get("b-lm")
    reg.get("a-lm")  # a-lm is now the most recently used
    reg.get("c-chat")
    assert reg.cached() == ["a-lm", "c-chat"]


def test_one_model_bigger_than_the_cap_still_loads(folders):
    reg = ModelRegistry(sources=[], cap_bytes=1)
    reg.add("a-lm", folders["a-lm"])
    reg.add("b-lm", folders["b-lm"])
    reg.get("a-lm")
    reg.get("b-lm")
    assert reg.cached() == ["b-lm"]


def test_concurrent_gets_load_once(folders, monkeypatch):
    calls = []
    real = reg_mod.load_model

    def counting(location, *a, **k):
        calls.append(location)
        return real(location, *a, **k)

    monkeypatch.setattr(reg_mod, "load_model", counting)
    reg = ModelRegistry(sources=[])
    reg.add("a-lm", folders["a-lm"])
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(reg.get("a-lm")[0])) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(m) for m in results}) == 1


def test_re_adding_a_name_replaces_it(folders):
    reg = ModelRegistry(sources=[])
    reg.add("m", folders["a-lm"])
    first = reg.get("m")[0]
    reg.add("m", folders["b-lm"], description="retrained")
    assert reg.entry("m").description == "retrained" and reg.get("m")[0] is not first
    reg.remove("m")
    assert reg.names() == []


@pytest.mark.parametrize(
    "env, state, allowed",
    [
        ({}, "unknown", False),
        ({}, "checking", False),
        ({}, "online", True),
        ({}, "offline", False),
        ({"SPACE_ID": "someone/gpt2-lab"}, "unknown", False),  # Spaces alone proves nothing
        ({"HF_HUB_OFFLINE": "1"}, "online", False),
        ({"GPT2LAB_ALLOW_DOWNLOAD": "0"}, "online", False),
        ({"GPT2LAB_ALLOW_DOWNLOAD": "1"}, "offline", True),  # forces the listing
        ({"GPT2LAB_ALLOW_DOWNLOAD": "1", "HF_HUB_OFFLINE": "1"}, "online", False),  # offline wins
    ],
)
def test_downloads_allowed_follows_the_hub_check(monkeypatch, env, state, allowed):
    from gpt.lab import hub
    from gpt.lab.registry import downloads_allowed

    for key in ("SPACE_ID", "HF_HUB_OFFLINE", "GPT2LAB_ALLOW_DOWNLOAD"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hub, "_status", hub.HubStatus(state))
    assert downloads_allowed() is allowed
