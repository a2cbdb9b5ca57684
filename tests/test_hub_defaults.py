"""Online (a loopback fake hub), the pickers offer the curated hub models and Chat defaults to an
instruction-tuned GPT-2 from the hub; offline, neither (issue 19, part 2)."""

from __future__ import annotations

import shutil

import pytest
import torch

from gpt.lab import hub, hubmodels
from gpt.lab.registry import ModelRegistry, RegistryError, curated_source, starter_source
from tests import fakehub
from tests.test_hub_models import _ours, _theirs, repos  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow  # a loopback hub and transformers: in the full suite only

INSTRUCT = next(m.repo for m in hubmodels.CURATED if m.task == "instruct")


@pytest.fixture
def online(repos, monkeypatch, tmp_path):  # noqa: F811
    """A fake hub serving every curated repo (a tiny random GPT-2 each) and answering the
    availability check; an empty hub cache."""
    for name in ("HF_HUB_OFFLINE", "GPT2LAB_ALLOW_DOWNLOAD", "GPT2LAB_MODELS_DIR", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    plain, _ = repos["test/plain"]
    served = {m.repo: tmp_path / "repos" / m.repo.replace("/", "--") for m in hubmodels.CURATED}
    for folder in served.values():
        shutil.copytree(plain, folder)
    served[hub.CHECK_REPO] = plain  # what the availability check asks for
    server = fakehub.FakeHub(served)
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    hub.reset()
    assert hub.check(sizes=False).online
    yield server
    server.stop()
    hub.reset()


def test_online_chat_defaults_to_an_instruction_tuned_gpt2_from_the_hub(online, repos):  # noqa: F811
    reg = ModelRegistry(sources=[starter_source, curated_source])
    names = reg.names(("instruct",))
    assert INSTRUCT in names and "starter-chat" in names
    assert reg.default(("instruct",)) == INSTRUCT  # not the 4M-parameter starter-chat
    assert reg.default(("lm", "instruct")) == "starter"  # other tabs keep theirs
    assert {m.repo for m in hubmodels.CURATED} <= set(reg.names())
    entry = reg.entry(INSTRUCT)
    assert entry.source == "hub (download)" and "MB download" in entry.description
    assert reg.needs_download(INSTRUCT)
    model, _ = reg.get(INSTRUCT)  # downloads from the fake hub
    torch.testing.assert_close(_ours(model), _theirs(repos["test/plain"][1]), atol=1e-5, rtol=1e-5)
    again = ModelRegistry(sources=[starter_source, curated_source])
    assert again.entry(INSTRUCT).source == "hub (cache)"  # now listed from the cache
    assert again.entry(INSTRUCT).task == "instruct"  # the curated task, not config.json's "lm"


def test_a_hub_default_that_fails_to_download_gives_way(online, tmp_path):
    """The hub refuses the Chat default (the warm-up's preload fails): Chat defaults to the
    next curated instruction model, and to starter-chat once none loads."""
    chat = [m.repo for m in hubmodels.CURATED if m.task == "instruct"]
    reg = ModelRegistry(sources=[starter_source, curated_source])
    for i, repo in enumerate(chat):
        shutil.rmtree(tmp_path / "repos" / repo.replace("/", "--"))  # the hub: 404 for it
        assert reg.default(("instruct",)) == repo
        with pytest.raises(RegistryError):
            reg.get(repo)
        assert reg.default(("instruct",)) == (chat[i + 1:] or ["starter-chat"])[0]


def test_offline_the_curated_models_are_not_offered(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    hub.reset()
    reg = ModelRegistry(sources=[starter_source, curated_source])
    assert not set(reg.names()) & {m.repo for m in hubmodels.CURATED}
    assert reg.default(("instruct",)) == "starter-chat"
