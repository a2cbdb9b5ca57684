"""Loading weights: HF GPT-2 folders (any layout the hub uses), our checkpoints, and bad files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from gpt.checkpoint import (
    CheckpointError,
    UntiedGPT,
    hf_state_to_ours,
    load_checkpoint,
    load_model,
    read_safetensors,
    save_checkpoint,
)
from gpt.config import PRESETS
from gpt.lab import names
from gpt.lab.names import load_tokenizer
from gpt.model import GPT
from gpt.tokenizer import Tokenizer
from tests.conftest import SMALL_HF, make_hf_gpt2


def logits_of(model, seed=0):
    torch.manual_seed(seed)
    x = torch.randint(0, model.config.vocab_size, (1, 12))
    with torch.no_grad():
        return model(x)


def copy_hf(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_hub_layout_without_prefix_and_with_untied_copy_of_head(hf_small, tmp_path):
    folder, _ = hf_small
    state = read_safetensors(folder / "model.safetensors")
    # The hub's openai-community/gpt2 file has bare keys and keeps the attention mask buffers.
    bare = {k.removeprefix("transformer."): v for k, v in state.items()}
    bare["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 128, 128))
    bare["lm_head.weight"] = bare["wte.weight"].clone()
    out = tmp_path / "hub"
    out.mkdir()
    save_file(bare, out / "model.safetensors")
    shutil.copy(folder / "config.json", out / "config.json")
    torch.testing.assert_close(logits_of(load_model(out)), logits_of(load_model(folder)))


def test_sharded_weights_load(tmp_path):
    hf = make_hf_gpt2(tmp_path / "tmp", **SMALL_HF)
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    torch.testing.assert_close(
        logits_of(load_model(tmp_path / "sharded")), logits_of(load_model(tmp_path / "tmp"))
    )


def test_our_checkpoint_round_trip_with_trained_tokenizer(tmp_path):
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"].replace(vocab_size=300)).eval()
    rng = torch.Generator().manual_seed(0)
    letters = "etaoinshrdlucmfw"
    words = " ".join(
        "".join(letters[int(j)] for j in torch.randint(0, 16, (int(n),), generator=rng))
        for n in torch.randint(2, 7, (1500,), generator=rng)
    )
    tok = Tokenizer.train(words, vocab_size=300)
    head_state = {"weight": torch.randn(2, 32)}
    save_checkpoint(
        tmp_path / "ck",
        model,
        task="classify",
        tokenizer=tok,
        head={"num_classes": 2},
        head_state=head_state,
        metadata={"steps": 5},
    )
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.task == "classify" and ck.head == {"num_classes": 2} and ck.metadata == {"steps": 5}
    torch.testing.assert_close(ck.head_state["weight"], head_state["weight"])
    torch.testing.assert_close(logits_of(ck.model), logits_of(model))
    assert load_tokenizer(tmp_path / "ck").encode(words[:200]) == tok.encode(words[:200])
    # Saving again over an existing folder replaces it whole.
    save_checkpoint(tmp_path / "ck", model, metadata={"steps": 9})
    assert load_checkpoint(tmp_path / "ck").metadata == {"steps": 9}
    assert not (tmp_path / "ck" / "tokenizer.json").exists()


def test_load_model_by_size_name_uses_models_dir_env(hf_small, tmp_path, monkeypatch):
    folder, _ = hf_small
    copy_hf(folder, tmp_path / "models" / "gpt2")
    monkeypatch.setenv("GPT2LAB_MODELS_DIR", str(tmp_path / "models"))
    torch.testing.assert_close(logits_of(names.load_model("gpt2")), logits_of(load_model(folder)))


def test_offline_without_cache_names_the_options(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network is tried: the hub check is skipped
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("GPT2LAB_MODELS_DIR", str(tmp_path))
    with pytest.raises(
        CheckpointError, match=r"not in the local cache.*GPT2LAB_MODELS_DIR/gpt2-me"
    ):
        names.load_model("gpt2-medium")


def test_unknown_name(tmp_path):
    with pytest.raises(CheckpointError, match="no model named 'gpt5'"):
        names.load_model("gpt5")


# --- bad files ------------------------------------------------------------------------------------


@pytest.fixture
def hf_copy(hf_small, tmp_path):
    return copy_hf(hf_small[0], tmp_path / "m")


def test_non_safetensors_file(hf_copy):
    (hf_copy / "model.safetensors").write_bytes(
        b"\x80\x04\x95 this is a pickle, not safetensors" * 3
    )
    with pytest.raises(CheckpointError, match="is not a safetensors file"):
        load_model(hf_copy)


def test_truncated_file(hf_copy):
    f = hf_copy / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_model(hf_copy)


def test_tiny_file(hf_copy):
    (hf_copy / "model.safetensors").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="only 3 bytes"):
        load_model(hf_copy)


def test_only_pickle_weights_are_refused(hf_copy):
    (hf_copy / "model.safetensors").unlink()
    (hf_copy / "pytorch_model.bin").write_bytes(b"not loaded anyway")
    with pytest.raises(CheckpointError, match="pickle files are never loaded"):
        load_model(hf_copy)


def test_wrong_shapes(hf_copy):
    cfg = json.loads((hf_copy / "config.json").read_text())
    cfg["n_embd"] = 128
    (hf_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError, match=r"wte.weight has shape \(1000, 64\), the config needs \(1000, 128\)"
    ):
        load_model(hf_copy)


def test_missing_and_unexpected_keys(hf_copy):
    state = read_safetensors(hf_copy / "model.safetensors")
    state.pop("transformer.h.1.mlp.c_fc.weight")
    state["transformer.h.0.extra"] = torch.zeros(3)
    save_file(state, hf_copy / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"missing keys: h.1.mlp.c_fc.weight.*unexpected keys: h.0.extra"
    ):
        load_model(hf_copy)


def test_untied_head_is_refused_by_the_strict_converter_and_kept_by_load_model(hf_copy):
    state = read_safetensors(hf_copy / "model.safetensors")
    state["lm_head.weight"] = torch.randn_like(state["transformer.wte.weight"])
    save_file(state, hf_copy / "model.safetensors")
    with pytest.raises(CheckpointError, match="must be tied"):
        hf_state_to_ours(state, hf_copy)
    model = load_model(hf_copy)  # hub fine-tunes with their own head load as UntiedGPT
    assert isinstance(model, UntiedGPT)
    x = torch.randint(0, 1000, (1, 7))
    with torch.no_grad():
        expected = model.hidden(x) @ state["lm_head.weight"].T  # (1, 7, vocab)
        torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(
    "config, message",
    [
        ("{not json", "is not valid JSON"),
        ('{"model_type": "llama"}', "model_type is 'llama'"),
        ('{"model_type": "gpt2", "activation_function": "relu"}', "not GPT-2's tanh GELU"),
        ('{"model_type": "gpt2", "n_layer": 2}', "missing field"),
        (
            '{"model_type": "gpt2", "n_layer": 2, "n_head": 3, "n_embd": 64, "vocab_size": 10}',
            "divisible",
        ),
    ],
)
def test_bad_hf_config(hf_copy, config, message):
    (hf_copy / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match=message):
        load_model(hf_copy)


def test_missing_config_and_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_model(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="weights file not found"):
        read_safetensors(tmp_path / "nope.safetensors")


def test_bad_checkpoint_config(tmp_path):
    save_checkpoint(tmp_path / "ck", GPT(PRESETS["tiny"]))
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["model"]["n_head"] = 5
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="bad model config"):
        load_model(tmp_path / "ck")
    cfg["version"] = 99
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        load_model(tmp_path / "ck")
