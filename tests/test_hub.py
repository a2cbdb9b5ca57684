"""The hub availability check, GPT-2 downloads with progress, and what fails how.

Everything runs against `tests/fakehub.py` on 127.0.0.1 (HF_ENDPOINT points at it, HF_HOME at a
temporary folder): it serves a tiny random GPT-2 as openai-community/gpt2, and can refuse
connections, cut a file short, or never answer.
"""

from __future__ import annotations

import hashlib
import time

import pytest
import torch

from gpt.checkpoint import CheckpointError, load_hf_gpt2
from gpt.lab import hub
from gpt.lab.names import load_model
from gpt.lab.registry import DOWNLOAD_SOURCE, ModelRegistry, RegistryError, gpt2_source
from tests import fakehub

FILES = ("config.json", "model.safetensors")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random 2-layer GPT-2 (GPT-2's vocabulary), saved with save_pretrained."""
    return fakehub.make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean hub environment: its cache under tmp_path, no variable ruling the network out."""
    for name in (
        "HF_HUB_OFFLINE",
        "GPT2LAB_ALLOW_DOWNLOAD",
        "GPT2LAB_MODELS_DIR",
        "HF_HUB_CACHE",
        "HF_HUB_DOWNLOAD_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    import huggingface_hub.constants

    # read once when huggingface_hub was imported (another test module may have set it then)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("GPT2LAB_MODEL_CACHE_MB", "1000")  # gpt2 fits, gpt2-medium does not
    hub.reset()
    yield monkeypatch
    hub.reset()


@pytest.fixture
def served(tiny, env):
    """(url, total bytes of the served files): the fake hub serving the tiny model as gpt2."""
    url = fakehub.start(tiny)
    env.setenv("HF_ENDPOINT", url)
    yield url, sum((tiny / f).stat().st_size for f in FILES)
    fakehub.stop()


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([[464, 2068, 7586, 21831]]))


def test_check_online_lists_gpt2_with_its_download_size(served):
    url, total = served
    assert hub.status().state == "unknown" and not hub.downloads_listed()
    assert [e.name for e in gpt2_source()] == []  # nobody asked yet: nothing to download
    assert hub.start_check() is not None
    state = hub.wait(5)
    assert state.online and state.endpoint == url
    assert hub.start_check() is hub.start_check()  # one check, not one per call
    deadline = time.monotonic() + 5
    while hub.download_bytes("gpt2") != total and time.monotonic() < deadline:
        time.sleep(0.02)  # the sizes are read right after the answer
    assert hub.download_bytes("gpt2") == total  # from the hub's metadata, not the known size
    assert hub.download_bytes("gpt2-xl") == hub.KNOWN_BYTES["gpt2-xl"]  # not served: known size
    entries = {e.name: e for e in gpt2_source()}
    assert list(entries) == ["gpt2"]  # gpt2-medium needs 1.4 GB, over the 1000 MB cap
    assert entries["gpt2"].source == DOWNLOAD_SOURCE
    label = f"OpenAI GPT-2, 124M parameters · {hub.size_label(total)} download"
    assert entries["gpt2"].description == label
    reg = ModelRegistry()
    assert reg.default("lm") == "gpt2" and reg.needs_download("gpt2")
    assert [r["method"] for r in fakehub.requests()][:1] == ["HEAD"]


def test_known_sizes_match_the_hub():
    # the 124M model.safetensors on the hub is 548,105,171 bytes (header included)
    assert abs(hub.KNOWN_BYTES["gpt2"] - 548_105_171) < 20_000
    assert hub.size_label(hub.KNOWN_BYTES["gpt2"]) == "548 MB"


def test_download_reports_progress_caches_and_loads(served, tiny):
    url, total = served
    fakehub.hub().rate = 20e6  # about 0.7 s, so rate and time left are measured
    hub.check()
    events: list[hub.DownloadProgress] = []
    reg = ModelRegistry()
    model, tok = reg.get("gpt2", progress=events.append)
    assert events and events[-1].finished and events[-1].done == events[-1].total == total
    dones = [e.done for e in events]
    assert dones == sorted(dones) and len(events) > 3
    assert all(e.total == total for e in events)
    lines = [e.line() for e in events]
    assert any(" MB/s · " in line and line.endswith(" s left") for line in lines), lines[-3:]
    assert lines[-1] == f"gpt2: {total / 1e6:.0f} / {total / 1e6:.0f} MB · done"
    torch.testing.assert_close(logits(model), logits(load_hf_gpt2(tiny)), rtol=0, atol=0)
    assert tok.n_vocab == 50257
    # config.json from the hub, the weights from "storage" after the hub's redirect (as LFS)
    sha = hashlib.sha256((tiny / "model.safetensors").read_bytes()).hexdigest()
    gets = sorted(r["path"] for r in fakehub.requests() if r["method"] == "GET")
    assert gets == sorted(["/openai-community/gpt2/resolve/main/config.json", f"/cdn/{sha}"])
    assert hub.download_progress("gpt2") is None  # finished downloads are not "running"

    fakehub.stop()  # the second load needs no server: it is in the hub cache
    hub.reset()
    hub.check(timeout=0.5)
    assert hub.status().offline and "refused" in hub.status().reason
    fresh = ModelRegistry()
    assert {e.name: e.source for e in gpt2_source()} == {"gpt2": "GPT-2 (hub cache)"}
    torch.testing.assert_close(logits(fresh.get("gpt2")[0]), logits(model), rtol=0, atol=0)
    assert not fresh.needs_download("gpt2")
    # huggingface_hub itself finds the files (its usual cache layout)
    import huggingface_hub

    found = huggingface_hub.try_to_load_from_cache(
        "openai-community/gpt2", "model.safetensors", cache_dir=hub.cache_dir()
    )
    assert isinstance(found, str) and found.endswith("model.safetensors")


def test_huggingface_hub_downloads_from_the_fake_hub(served, tmp_path):
    url, _ = served
    import huggingface_hub

    path = huggingface_hub.hf_hub_download(
        "openai-community/gpt2", "config.json", endpoint=url, cache_dir=tmp_path / "c"
    )
    assert path.endswith("config.json")
    info = huggingface_hub.HfApi(endpoint=url).model_info("openai-community/gpt2")
    assert set(FILES) <= {s.rfilename for s in info.siblings}  # save_pretrained adds one more


@pytest.mark.parametrize(
    "mode, kind, words",
    [
        ("refuse", "refused", "connection refused"),
        ("truncate", "truncated", "closed early"),
        ("hang", "timeout", "no answer within 0.5 s"),
    ],
)
def test_failed_download_says_why_and_caches_nothing(served, env, mode, kind, words):
    hub.check()
    assert hub.status().online
    env.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "0.5")
    fakehub.set_mode(mode)
    reg = ModelRegistry()
    events: list[hub.DownloadProgress] = []
    seen = len(fakehub.requests())
    with pytest.raises(RegistryError) as info:
        reg.get("gpt2", progress=events.append)
    asked = [(r["method"], r["path"], r["range"]) for r in fakehub.requests()[seen:]]
    assert len(asked) == len(set(asked)), asked  # reported at once: no silent retries
    message = str(info.value)
    assert words in message and "GPT2LAB_MODELS_DIR/gpt2" in message
    assert isinstance(info.value.__cause__, hub.DownloadError)
    assert info.value.__cause__.kind == kind
    if mode == "truncate":  # some bytes arrived, then the progress stopped short
        assert events and events[-1].done < events[-1].total and not events[-1].finished
    assert reg.cached() == [] and hub.cached_gpt2("gpt2") is None
    blobs = hub.cache_dir() / "models--openai-community--gpt2" / "blobs"
    partial = list(blobs.glob("*.incomplete")) if blobs.is_dir() else []
    assert partial == []
    fakehub.set_mode("ok")  # the next try works: nothing broken was cached
    assert reg.get("gpt2")[0] is not None and reg.cached() == ["gpt2"]


def test_not_found_says_to_check_the_endpoint(tiny, env):
    url = fakehub.start(tiny, repo_id="someone/else")
    env.setenv("HF_ENDPOINT", url)
    try:
        with pytest.raises(hub.DownloadError, match="not found.*HF_ENDPOINT") as info:
            hub.download_gpt2("gpt2", timeout=2)
        assert info.value.kind == "not_found"
        assert hub.check().offline and "404" in hub.status().reason
    finally:
        fakehub.stop()


def test_check_offline_reasons(tiny, env):
    url = fakehub.start(tiny)
    env.setenv("HF_ENDPOINT", url)
    try:
        fakehub.set_mode("hang")
        seen = len(fakehub.requests())
        state = hub.check(timeout=0.3)
        assert state.offline and "timed out" in state.reason and url in state.reason
        assert len(fakehub.requests()) - seen == 1  # one try, no silent retries
        fakehub.set_mode("refuse")
        assert "connection refused" in hub.check(timeout=0.3).reason
        assert not hub.downloads_listed() and gpt2_source() == []
        env.setenv("GPT2LAB_ALLOW_DOWNLOAD", "1")  # forces the listing, whatever the check says
        assert hub.downloads_listed() and [e.name for e in gpt2_source()] == ["gpt2"]
    finally:
        fakehub.stop()


@pytest.mark.parametrize(
    "name, value, reason",
    [("HF_HUB_OFFLINE", "1", "HF_HUB_OFFLINE=1"), ("GPT2LAB_ALLOW_DOWNLOAD", "0", "=0 turns")],
)
def test_environment_rules_the_network_out_without_asking(env, name, value, reason):
    env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # would be refused; never asked
    env.setenv(name, value)
    assert hub.start_check() is None
    assert hub.status().offline and reason in hub.status().reason
    assert not hub.downloads_listed()
    with pytest.raises(hub.DownloadError, match="downloads are off") as info:
        hub.download_gpt2("gpt2")
    assert info.value.kind == "offline"
    with pytest.raises(CheckpointError, match="GPT2LAB_MODELS_DIR/gpt2"):
        load_model("gpt2")


def test_recheck_after_going_online(served, env):
    url, _ = served
    fakehub.set_mode("refuse")
    assert hub.check(timeout=0.3).offline
    hub.maybe_recheck(max_age=3600)  # fresh answer: no new check
    assert hub.status().offline
    fakehub.set_mode("ok")
    hub.maybe_recheck(max_age=0)
    assert hub.wait(5).online


@pytest.mark.slow  # imports gradio
def test_notes_in_each_state(served, env, monkeypatch, tmp_path):
    import pages.common.models as common

    reg = ModelRegistry()
    monkeypatch.setattr(common, "default_registry", lambda: reg)
    lm = ("lm", "instruct")
    checking = common.model_note(lm)
    assert "Checking whether the Hugging Face hub answers" in checking
    assert "ALLOW_DOWNLOAD" not in checking
    hub.check()
    online = common.model_note(lm)
    assert online.startswith("Default model: **gpt2** (") and "download on first use" in online
    assert "ALLOW_DOWNLOAD" not in online
    fakehub.set_mode("refuse")
    hub.check(timeout=0.3)
    offline = common.model_note(lm)
    assert "connection refused" in offline and "go online" in offline
    assert "GPT2LAB_MODELS_DIR" in offline and "ALLOW_DOWNLOAD" not in offline
    assert "gpt2" not in offline.split("Default model: **")[1].split("**")[0]
    import pages.jobs as jobs

    env.setenv("GPT2LAB_CACHE", str(tmp_path / "cache"))  # nothing downloaded
    labels = dict((v, k) for k, v in jobs.data_choices("classify"))
    assert labels["sms-spam"] == (
        f"sms-spam (unavailable, needs the network: {hub.endpoint()}: connection refused)"
    )
