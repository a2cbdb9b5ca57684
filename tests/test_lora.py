"""LoRA: wrapping, freezing, training only the adapters, merging back, saving and loading them."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gpt.config import PRESETS
from gpt.model import GPT, Linear
from gpt.train.lora import (
    LoRAError,
    LoRALinear,
    adapter_config,
    apply_lora,
    count_trainable,
    load_adapters,
    lora_state_dict,
    merge_lora,
    save_adapters,
)

CFG = PRESETS["tiny"]
ALL_LINEARS = [
    f"h.{i}.{n}" for i in range(2) for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
]


def tiny(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(CFG).eval()


def batch(seed: int = 1, T: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, CFG.vocab_size, (2, T), generator=g)


def randomise_adapters(model: GPT, seed: int = 2) -> None:
    """Give B non-zero values so the adapters change the output (B starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in lora_state_dict(model).values():
            t.copy_(torch.randn(t.shape, generator=g) * 0.1)


@pytest.mark.parametrize(
    "targets, expected",
    [
        (("c_attn", "c_proj", "c_fc"), ALL_LINEARS),
        (("c_attn",), ["h.0.attn.c_attn", "h.1.attn.c_attn"]),
        ("attn.c_proj", ["h.0.attn.c_proj", "h.1.attn.c_proj"]),
        (
            ("mlp.c_proj", "c_fc"),
            ["h.0.mlp.c_fc", "h.0.mlp.c_proj", "h.1.mlp.c_fc", "h.1.mlp.c_proj"],
        ),
    ],
)
def test_apply_wraps_matching_layers_and_freezes_everything_else(targets, expected):
    model = tiny()
    x = batch()
    with torch.no_grad():
        before = model(x)
    names = apply_lora(model, rank=4, alpha=8, targets=targets)
    assert names == expected
    for name in names:
        layer = model.get_submodule(name)
        assert isinstance(layer, LoRALinear) and isinstance(layer.base, Linear)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)
    assert len(trainable) == 2 * len(names)
    with torch.no_grad():
        assert torch.equal(model(x), before)  # B == 0: the wrapped model is unchanged


def test_state_dict_keys_and_counts():
    model = tiny()
    apply_lora(model, rank=2, alpha=4, targets=("c_attn",))
    keys = set(model.state_dict())
    assert {"h.0.attn.c_attn.base.weight", "h.0.attn.c_attn.base.bias"} <= keys
    assert {"h.0.attn.c_attn.lora_A", "h.0.attn.c_attn.lora_B"} <= keys
    assert model.h[0].attn.c_attn.lora_A.shape == (32, 2)
    assert model.h[0].attn.c_attn.lora_B.shape == (2, 96)
    trainable, total = count_trainable(model)
    assert trainable == 2 * (32 * 2 + 2 * 96)
    assert total == GPT(CFG).num_params() + trainable


def test_lora_A_init_scale_and_B_zero():
    torch.manual_seed(0)
    layer = LoRALinear(Linear(256, 8), rank=16, alpha=32)
    bound = 1 / 256**0.5
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.std() > bound / 3
    assert torch.count_nonzero(layer.lora_B) == 0
    assert layer.scale == 2.0


def test_training_changes_only_adapters_and_lowers_loss():
    model = tiny()
    apply_lora(model, rank=4, alpha=8)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = batch(T=32)
    inp, target = x[:, :-1], x[:, 1:]

    def loss_fn():
        logits = model(inp)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    first = loss_fn().item()
    for _ in range(20):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    assert loss_fn().item() < first - 0.1
    for k, v in model.state_dict().items():
        changed = not torch.equal(v, before[k])
        assert changed == k.endswith(("lora_A", "lora_B")), k


def test_merge_matches_unmerged_outputs_and_plain_keys():
    model = tiny()
    apply_lora(model, rank=4, alpha=8)
    randomise_adapters(model)
    x = batch()
    with torch.no_grad():
        unmerged = model(x)
    assert not torch.allclose(unmerged, tiny()(x))  # the adapters really do something
    merged_names = merge_lora(model)
    assert merged_names == ALL_LINEARS
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(type(model.get_submodule(n)) is Linear for n in ALL_LINEARS)
    with torch.no_grad():
        torch.testing.assert_close(model(x), unmerged, atol=1e-5, rtol=0)
    plain = GPT(CFG)
    assert list(model.state_dict()) == list(plain.state_dict())
    assert all(model.state_dict()[k].shape == v.shape for k, v in plain.state_dict().items())
    plain.load_state_dict(model.state_dict())  # strict: a merged model loads into a plain GPT
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), unmerged, atol=1e-5, rtol=0)


def test_apply_again_after_merge_is_allowed():
    model = tiny()
    apply_lora(model, rank=2, alpha=2)
    merge_lora(model)
    assert len(apply_lora(model, rank=2, alpha=2)) == 8


def test_dropout_only_in_training():
    model = tiny()
    apply_lora(model, rank=4, alpha=8, dropout=0.5)
    randomise_adapters(model)
    x = batch()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
    assert not torch.equal(a, b)


def test_save_load_round_trip(tmp_path):
    model = tiny()
    apply_lora(model, rank=4, alpha=8, targets=("c_attn", "c_fc"))
    randomise_adapters(model)
    x = batch()
    with torch.no_grad():
        want = model(x)
    path = save_adapters(
        model, tmp_path / "sub" / "adapters.safetensors", {"base": "tiny", "steps": 3}
    )
    assert path.is_file()

    cfg = adapter_config(path)
    assert cfg["rank"] == 4 and cfg["alpha"] == 8.0
    assert cfg["targets"] == ["c_attn", "c_fc"]
    assert cfg["meta"] == {"base": "tiny", "steps": 3}

    fresh = tiny()  # same base weights, new random A and zero B
    apply_lora(fresh, rank=cfg["rank"], alpha=cfg["alpha"], targets=cfg["targets"])
    with torch.no_grad():
        assert not torch.allclose(fresh(x), want)
    assert load_adapters(fresh, path)["meta"]["steps"] == 3
    with torch.no_grad():
        assert torch.equal(fresh(x), want)
    assert all(
        p.requires_grad == n.endswith(("lora_A", "lora_B")) for n, p in fresh.named_parameters()
    )


def test_file_holds_adapters_only_without_pickle(tmp_path):
    model = tiny()
    apply_lora(model, rank=2, alpha=4)
    path = save_adapters(model, tmp_path / "a.safetensors")
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    keys = set(header) - {"__metadata__"}
    assert keys == {f"{m}.{p}" for m in ALL_LINEARS for p in ("lora_A", "lora_B")}
    assert header["__metadata__"]["format"] == "gpt2-lab-lora"


@pytest.mark.parametrize(
    "other, needle",
    [
        (dict(rank=8, alpha=8), "rank 4 in the file, 8 in the model"),
        (dict(rank=4, alpha=16), "alpha 8.0 in the file, 16.0 in the model"),
        (
            dict(rank=4, alpha=8, targets=("c_attn", "c_proj")),
            "not wrapped in the model: h.0.mlp.c_fc",
        ),
        (dict(rank=4, alpha=8, targets=("c_attn", "c_fc", "c_proj")), "absent from the file"),
    ],
)
def test_load_into_mismatched_model_names_the_difference(tmp_path, other, needle):
    model = tiny()
    apply_lora(model, rank=4, alpha=8, targets=("c_attn", "c_fc"))
    path = save_adapters(model, tmp_path / "a.safetensors")
    target = tiny()
    apply_lora(target, **other)
    before = {k: v.clone() for k, v in lora_state_dict(target).items()}
    with pytest.raises(LoRAError, match="do not fit the model") as info:
        load_adapters(target, path)
    assert needle in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in lora_state_dict(target).items())


def test_load_errors_for_bad_files(tmp_path):
    model = tiny()
    apply_lora(model, rank=2, alpha=4)
    with pytest.raises(LoRAError, match="not found"):
        load_adapters(model, tmp_path / "missing.safetensors")
    pickle_like = tmp_path / "adapters.pt"
    pickle_like.write_bytes(b"\x80\x04\x95 not a safetensors file at all")
    with pytest.raises(LoRAError, match="not a readable safetensors file"):
        load_adapters(model, pickle_like)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(LoRAError, match="not a GPT-2 Lab adapter file"):
        load_adapters(model, foreign)


def test_load_or_save_without_lora_layers(tmp_path):
    model = tiny()
    apply_lora(model, rank=2, alpha=4)
    path = save_adapters(model, tmp_path / "a.safetensors")
    with pytest.raises(LoRAError, match="no LoRA layers"):
        load_adapters(tiny(), path)
    with pytest.raises(LoRAError, match="no LoRA layers"):
        save_adapters(tiny(), tmp_path / "b.safetensors")
    with pytest.raises(LoRAError, match="JSON"):
        save_adapters(model, tmp_path / "c.safetensors", meta={"bad": object()})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rank=0), "rank must be a positive integer"),
        (dict(rank=-2), "rank must be a positive integer"),
        (dict(rank=2.5), "rank must be a positive integer"),
        (dict(alpha=0), "alpha must be positive"),
        (dict(dropout=1.0), "dropout must be in"),
        (
            dict(targets=("c_atn",)),
            "no Linear layer matches LoRA target.*'c_atn'.*c_attn, c_fc, c_proj",
        ),
        (dict(targets=()), "at least one target"),
    ],
)
def test_apply_errors(kwargs, match):
    model = tiny()
    with pytest.raises(ValueError, match=match):
        apply_lora(model, **kwargs)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen on failure


def test_apply_twice_and_merge_without_lora_raise():
    model = tiny()
    apply_lora(model)
    with pytest.raises(LoRAError, match="already has LoRA layers"):
        apply_lora(model)
    with pytest.raises(LoRAError, match="no LoRA layers"):
        merge_lora(tiny())
