"""The model is exactly GPT-2: parity with Hugging Face, and its own paths agree with each other."""

from __future__ import annotations

import pytest
import torch

from gpt.config import PRESETS, GPTConfig
from gpt.lab.names import load_model
from gpt.model import GPT
from gpt.sampling import SamplingConfig, generate_ids

# GPT-2 124M (a random one, built once per session): the real size, at several seconds a test.
HF_GPT2 = pytest.param("hf_gpt2", marks=pytest.mark.slow)


def hf_greedy(hf, prompt: list[int], n: int) -> list[int]:
    hf.generation_config.eos_token_id = None  # never stop early: compare all n tokens
    x = torch.tensor([prompt])
    with torch.no_grad():
        out = hf.generate(
            x, max_new_tokens=n, do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(x)
        )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("fixture", ["hf_small", HF_GPT2])
def test_logits_match_huggingface(fixture, request):
    folder, hf = request.getfixturevalue(fixture)
    ours = load_model(folder)
    torch.manual_seed(0)
    x = torch.randint(0, ours.config.vocab_size, (2, 100))
    with torch.no_grad():
        expected = hf(x).logits
        got = ours(x)
    assert got.shape == expected.shape == (2, 100, ours.config.vocab_size)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fixture", ["hf_small", HF_GPT2])
def test_greedy_generation_matches_huggingface(fixture, request):
    folder, hf = request.getfixturevalue(fixture)
    ours = load_model(folder)
    prompt = [5, 17, 256, 3, 99, 42]
    cfg = SamplingConfig(temperature=0, max_new_tokens=50, stop_at_eot=False)
    assert generate_ids(ours, prompt, cfg) == hf_greedy(hf, prompt, 50)


def test_attention_maps_match_huggingface(hf_small):
    folder, hf = hf_small
    ours = load_model(folder)
    x = torch.randint(0, 1000, (1, 20))
    hf.set_attn_implementation("eager")
    with torch.no_grad():
        expected = hf(x, output_attentions=True).attentions
    ex = ours.explain(x)
    maps = ours.attention_maps(x)  # the Attention tab's path: no LM head, no last MLP
    assert len(ex.attentions) == len(maps) == len(expected) == 2
    for a, m, b in zip(ex.attentions, maps, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m, b, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return GPT(PRESETS["tiny"]).eval()


def test_kv_cache_equals_full_recomputation(tiny):
    x = torch.randint(0, 512, (2, 40))
    with torch.no_grad():
        full = tiny(x)  # (B, T, V)
        cache = tiny.new_cache(batch_size=2)
        first = tiny(x[:, :10], cache)  # prefill 10, then one token at a time
        steps = [first] + [tiny(x[:, t : t + 1], cache) for t in range(10, 40)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.pos == 40


def _decode_both_ways(model, x, monkeypatch):
    """Logits and cache of one-token steps after a prefill, by the decode fast path and by the
    blocks' own forward, and how many block steps took the fast path."""
    import gpt.model as gm

    plain, fast = gm._plain, []
    monkeypatch.setattr(gm, "_plain", lambda b: fast.append(p := plain(b)) or p)
    out = []
    for use_fast in (True, False):
        if not use_fast:
            monkeypatch.setattr(gm, "_plain", lambda b: None)
        with torch.inference_mode():
            cache = model.new_cache(x.shape[0])
            model(x[:, :6], cache)
            steps = [model(x[:, t : t + 1], cache) for t in range(6, x.shape[1])]
        out.append((torch.cat(steps, 1), cache.k[:, :, :, : cache.pos].clone()))
    return out, sum(p is not None for p in fast)


@pytest.mark.parametrize("bias", [True, False])
def test_decode_fast_path_equals_blocks_exactly(bias, monkeypatch):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**PRESETS["tiny"].__dict__, "bias": bias})).eval()
    x = torch.randint(0, 512, (2, 12))
    ((fast, k_fast), (slow, k_slow)), n_fast = _decode_both_ways(model, x, monkeypatch)
    assert n_fast == 6 * model.config.n_layer  # every block of every one-token step
    assert torch.equal(fast, slow) and torch.equal(k_fast, k_slow)
    # a lone row of batched decoding (the web app's path) takes it too, with the same logits
    ((one, _), (one_slow, _)), _ = _decode_both_ways(model, x[:1], monkeypatch)
    monkeypatch.undo()
    with torch.inference_mode():
        rows = model.new_row_cache(rows=3, max_len=16)
        cache = model.new_cache(1)
        model(x[:1, :6], cache)
        rows.load(0, cache)
        lone = [model.decode_rows(x[:1, t], rows, 1) for t in range(6, 12)]
    assert torch.equal(one, one_slow) and torch.equal(torch.stack(lone, 1), one)


def test_decode_fast_path_steps_aside_for_hooks_lora_and_walks(monkeypatch):
    from gpt.train.lora import apply_lora
    from gpt.walk import knockout

    torch.manual_seed(0)
    x = torch.randint(0, 512, (1, 9))
    model = GPT(PRESETS["tiny"]).eval()
    handle = model.h[1].mlp.c_fc.register_forward_hook(lambda m, a, out: out * 0)
    (_, _), n_fast = _decode_both_ways(model, x, monkeypatch)
    assert n_fast == 3  # block 0 only: block 1's hook must run
    with torch.inference_mode():
        hooked = model(x[:, :1], model.new_cache(1))
    handle.remove()
    with torch.inference_mode():
        assert not torch.equal(hooked, model(x[:, :1], model.new_cache(1)))
    with knockout(model, "gelu"):  # a torch function mode swaps ops inside MLP.forward
        (_, _), n_fast = _decode_both_ways(model, x, monkeypatch)
    assert n_fast == 0
    apply_lora(model, rank=2)
    (_, _), n_fast = _decode_both_ways(model, x, monkeypatch)
    assert n_fast == 0


def test_kv_cache_chunked_prefill_equals_full(tiny):
    x = torch.randint(0, 512, (1, 30))
    with torch.no_grad():
        full = tiny(x)
        cache = tiny.new_cache()
        a = tiny(x[:, :7], cache)
        b = tiny(x[:, 7:19], cache)  # a chunk after cached positions needs an offset mask
        c = tiny(x[:, 19:], cache, last_only=True)
    torch.testing.assert_close(torch.cat([a, b], 1), full[:, :19], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c[:, 0], full[:, -1], atol=1e-5, rtol=1e-5)


def test_explain_equals_fast_path(tiny):
    x = torch.randint(0, 512, (2, 25))
    ex = tiny.explain(x)
    with torch.no_grad():
        torch.testing.assert_close(ex.logits, tiny(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(tiny.ln_f(ex.hidden_states[-1]), tiny.hidden(x))
    cfg = tiny.config
    assert len(ex.hidden_states) == cfg.n_layer + 1
    assert all(h.shape == (2, 25, cfg.n_embd) for h in ex.hidden_states)
    for att in ex.attentions:
        assert att.shape == (2, cfg.n_head, 25, 25)
        torch.testing.assert_close(att.sum(-1), torch.ones(2, cfg.n_head, 25))
        assert torch.all(att.triu(diagonal=1) == 0)  # causal: nothing attends to the future


def test_inference_head_copy_follows_weight_updates():
    model = GPT(PRESETS["tiny"]).eval()
    x = torch.randint(0, 512, (1, 5))

    def infer():
        with torch.inference_mode():
            return model(x)

    before = infer()
    with torch.no_grad():
        model.wte.weight.mul_(2.0)  # an in-place change bumps the version
    torch.testing.assert_close(infer(), model(x).detach())
    assert not torch.allclose(before, infer())
    # A fused optimizer step changes weights without bumping versions; train() drops the copy.
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    model(x).sum().backward()
    opt.step()
    model.eval()
    torch.testing.assert_close(infer(), model(x).detach())
    other = GPT(PRESETS["tiny"])
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(infer(), other.eval()(x).detach())


def test_training_gradients_reach_tied_embedding(tiny):
    model = GPT(PRESETS["tiny"]).train()
    x = torch.randint(0, 512, (2, 16))
    model(x).logsumexp(-1).mean().backward()
    assert model.wte.weight.grad is not None and model.wte.weight.grad.abs().sum() > 0


def test_cpu_autocast_attends_in_float32(tiny, monkeypatch):
    """Under bf16 autocast on the CPU the projections run in bf16 and attention in float32
    (torch's bf16 SDPA kernel is slower there), and the logits stay within bf16's rounding."""
    import torch.nn.functional as F

    seen, real = [], F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu")))
        return real(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    ids = torch.randint(0, tiny.config.vocab_size, (2, 12))
    with torch.no_grad():
        exact = tiny(ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny(ids)
    assert len(seen) == 2 * tiny.config.n_layer
    fp32 = (torch.float32, torch.float32, torch.float32, False)
    assert all(s == fp32 for s in seen[tiny.config.n_layer :])  # the autocast forward's calls
    assert low.dtype == torch.bfloat16
    err = (low.float() - exact).abs().max() / exact.abs().max()
    assert 0 < err < 3e-2


def test_bad_inputs_raise_clear_errors(tiny):
    with pytest.raises(ValueError, match="exceeds the context length 64"):
        tiny(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        tiny(torch.zeros(65, dtype=torch.long))
    cache = tiny.new_cache(max_len=8)
    with torch.no_grad():
        tiny(torch.zeros(1, 6, dtype=torch.long), cache)
        with pytest.raises(ValueError, match="KV cache holds 8 positions"):
            tiny(torch.zeros(1, 3, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="max_len"):
        tiny.new_cache(max_len=65)


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="n_layer must be a positive integer"):
        GPTConfig(n_layer=0)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(dropout=1.5)
    with pytest.raises(ValueError, match="unknown GPTConfig keys: colour"):
        GPTConfig.from_dict({"colour": 1})
    for cfg in PRESETS.values():
        assert GPTConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny", "mini"])
def test_preset_parameter_counts(name):
    cfg = PRESETS[name]
    with torch.device("meta"):
        model = GPT(cfg)
    assert model.num_params() == cfg.n_params()
    published = {"gpt2": 124e6, "gpt2-medium": 355e6, "gpt2-large": 774e6, "gpt2-xl": 1558e6}
    if name in published:
        assert abs(cfg.n_params() - published[name]) / published[name] < 0.01
