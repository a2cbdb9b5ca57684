"""Sampling: greedy, temperature, top-k, top-p, repetition penalty, seeds, stops, candidates."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gpt.config import PRESETS
from gpt.model import GPT
from gpt.sampling import (
    SamplingConfig,
    SamplingError,
    generate,
    generate_ids,
    next_token_distribution,
    sample_steps,
    stream,
)
from gpt.tokenizer import Tokenizer

EOT = 256


@pytest.fixture(scope="module")
def byte_tok():
    """Byte-level tokenizer: id = byte value, plus <|endoftext|> = 256."""
    return Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": EOT})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(PRESETS["tiny"].replace(vocab_size=257)).eval()


def full_recompute_greedy(model: GPT, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt) :]


def test_greedy_equals_argmax_chain_without_cache(model):
    prompt = [72, 105, 33]
    cfg = SamplingConfig(temperature=0, max_new_tokens=30, stop_at_eot=False)
    assert generate_ids(model, prompt, cfg) == full_recompute_greedy(model, prompt, 30)


def test_generation_runs_past_the_context_length(model):
    cfg = SamplingConfig(temperature=0.9, seed=3, max_new_tokens=150, stop_at_eot=False)
    assert len(generate_ids(model, list(range(60)), cfg)) == 150  # context is 64 tokens


def test_seed_makes_sampling_reproducible(model):
    cfg = SamplingConfig(temperature=1.0, seed=123, max_new_tokens=40, stop_at_eot=False)
    a = generate_ids(model, [1, 2, 3], cfg)
    assert a == generate_ids(model, [1, 2, 3], cfg)
    others = [generate_ids(model, [1, 2, 3], dataclasses.replace(cfg, seed=s)) for s in (1, 2, 3)]
    assert any(o != a for o in others)


def test_top_k_1_and_tiny_top_p_are_greedy(model):
    greedy = generate_ids(
        model, [9, 8, 7], SamplingConfig(temperature=0, max_new_tokens=20, stop_at_eot=False)
    )
    k1 = SamplingConfig(temperature=1.5, top_k=1, seed=0, max_new_tokens=20, stop_at_eot=False)
    p0 = SamplingConfig(temperature=1.5, top_p=1e-6, seed=0, max_new_tokens=20, stop_at_eot=False)
    assert generate_ids(model, [9, 8, 7], k1) == greedy
    assert generate_ids(model, [9, 8, 7], p0) == greedy


def test_top_k_keeps_exactly_k_tokens():
    logits = torch.randn(1000)
    probs = next_token_distribution(logits, None, SamplingConfig(top_k=17))
    assert int((probs > 0).sum()) == 17
    assert set(torch.topk(logits, 17).indices.tolist()) == set(
        torch.nonzero(probs).flatten().tolist()
    )
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5)


def test_top_p_keeps_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    probs = next_token_distribution(logits, None, SamplingConfig(top_p=0.8))
    # 0.5 + 0.2 = 0.7 < 0.8, so the third token is needed; the fourth is not.
    assert torch.nonzero(probs).flatten().tolist() == [0, 1, 2]
    torch.testing.assert_close(probs[:3], torch.tensor([0.5, 0.2, 0.15]) / 0.85)


@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0, 10.0, 100.0])
def test_numerically_stable_across_temperatures(temperature):
    logits = torch.tensor([1e4, -1e4, 3e3, 0.0, 88.7, -88.7] * 100)
    probs = next_token_distribution(logits, None, SamplingConfig(temperature=temperature))
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-4)


def test_high_temperature_flattens_low_temperature_sharpens():
    logits = torch.tensor([2.0, 1.0, 0.0])
    hot = next_token_distribution(logits, None, SamplingConfig(temperature=100))
    cold = next_token_distribution(logits, None, SamplingConfig(temperature=0.01))
    assert float(hot.max() - hot.min()) < 0.01
    assert float(cold[0]) > 0.999


def test_repetition_penalty_lowers_seen_tokens():
    logits = torch.tensor([2.0, -1.0, 2.0, -1.0])
    seen = torch.tensor([True, True, False, False])
    base = next_token_distribution(logits, seen, SamplingConfig())
    pen = next_token_distribution(logits, seen, SamplingConfig(repetition_penalty=2.0))
    assert pen[0] < base[0] and pen[1] < base[1]  # positive and negative logits both pushed down
    assert pen[0] < pen[2] and pen[1] < pen[3]


def test_stream_concatenates_to_generate_and_reports_candidates(model, byte_tok):
    kw = dict(temperature=0.8, top_k=40, seed=7, max_new_tokens=25, n_candidates=5)
    events = list(stream(model, byte_tok, "Hello", **kw))
    assert "".join(e.text for e in events) == generate(model, byte_tok, "Hello", **kw)
    assert events[-1].finish_reason in ("length", "eot")
    for e in events:
        probs = [c.prob for c in e.candidates]
        assert len(e.candidates) == 5 and probs == sorted(probs, reverse=True)
        assert all(0 <= c.raw_prob <= 1 for c in e.candidates)
        chosen = [c for c in e.candidates if c.token_id == e.token_id]
        if chosen:
            assert math.isclose(chosen[0].prob, e.prob, rel_tol=1e-5)


def test_stop_string_truncates_and_is_never_emitted(model, byte_tok):
    free = generate(model, byte_tok, "abc", temperature=0, max_new_tokens=60, stop_at_eot=False)
    stop = free[10:13]
    cut = free.find(stop)
    events = list(
        stream(
            model, byte_tok, "abc", temperature=0, max_new_tokens=60, stop=[stop], stop_at_eot=False
        )
    )
    assert "".join(e.text for e in events) == free[:cut]
    assert events[-1].finish_reason == "stop"
    assert all(stop not in e.text for e in events)


def test_stops_at_end_of_text(model, byte_tok):
    # Make <|endoftext|> the model's favourite token, so greedy emits it at once.
    m = GPT(model.config)
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        m.ln_f.weight.zero_()  # every position's features become ln_f.bias ...
        m.ln_f.bias.fill_(1.0)
        m.wte.weight[EOT] = 10.0  # ... which points straight at <|endoftext|>
    events = list(stream(m.eval(), byte_tok, "hi", temperature=0, max_new_tokens=10))
    assert events[-1].finish_reason == "eot" and events[-1].token_id == EOT
    assert generate(m, byte_tok, "hi", temperature=0, max_new_tokens=10) == ""
    assert (
        len(
            generate_ids(m, [1], SamplingConfig(temperature=0, max_new_tokens=5, stop_at_eot=False))
        )
        == 5
    )


def test_streaming_never_splits_a_character(byte_tok):
    dec = byte_tok.stream_decoder()
    pieces = [dec.push(b) for b in "日本🙂é".encode()] + [dec.flush()]
    assert "".join(pieces) == "日本🙂é" and "\ufffd" not in "".join(pieces)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(temperature=-1), "temperature"),
        (dict(temperature=0.001), "temperature"),
        (dict(temperature=1000), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_k=-5), "top_k"),
        (dict(top_k=2.5), "top_k"),
        (dict(top_p=0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(repetition_penalty=0), "repetition_penalty"),
        (dict(repetition_penalty=100), "repetition_penalty"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(seed="abc"), "seed"),
        (dict(stop=[""]), "stop"),
        (dict(n_candidates=1000), "n_candidates"),
        (dict(colour="red"), "unknown sampling argument"),
    ],
)
def test_invalid_arguments_name_the_problem(model, byte_tok, kwargs, name):
    with pytest.raises(SamplingError, match=name):
        generate(model, byte_tok, "x", **kwargs)


def test_invalid_prompts(model, byte_tok):
    with pytest.raises(SamplingError, match="prompt is empty"):
        generate(model, byte_tok, "")
    with pytest.raises(SamplingError, match="outside the model's vocabulary"):
        list(sample_steps(model, [999], SamplingConfig()))
    with pytest.raises(SamplingError, match="prompt must be a string"):
        generate(model, byte_tok, 42)


def test_stream_can_be_resumed_on_other_threads(model, byte_tok):
    # A web server resumes a streaming generator on whichever worker thread is free.
    from concurrent.futures import ThreadPoolExecutor

    kw = dict(temperature=0.7, seed=3, max_new_tokens=12, stop_at_eot=False)
    expected = generate(model, byte_tok, "thread", **kw)
    events = stream(model, byte_tok, "thread", **kw)
    pieces = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(12):
            event = pool.submit(next, events).result()
            pieces.append(event.text)
            pool.submit(lambda: None).result()  # another task on the pool between steps
            if event.finish_reason:
                break
    assert "".join(pieces) == expected


def test_sampling_stages_end_in_the_distribution_sampled_from(model, byte_tok):
    """The stages the Generate tab draws are the sampler's own: replaying a kept step's logits
    through `sampling_stages` gives back the probability of the token that was sampled."""
    from gpt.sampling import sampling_stages

    cfg = dict(temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.3, seed=4)
    events = list(stream(model, byte_tok, "abc", max_new_tokens=8, keep_logits=True, **cfg))
    seen = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    seen[byte_tok.encode("abc")] = True
    for e in events:
        st = sampling_stages(e.logits, seen, SamplingConfig(**cfg))
        assert math.isclose(float(st.probs[e.token_id]), e.prob, rel_tol=1e-6)
        assert torch.equal(st.probs, next_token_distribution(e.logits, seen, SamplingConfig(**cfg)))
        torch.testing.assert_close(st.scaled, st.penalized / 0.7)
        assert int(torch.isfinite(st.top_k).sum()) == 20
        assert int((st.probs > 0).sum()) <= 20 and float(st.softmax.sum()) == pytest.approx(1)
        seen[e.token_id] = True
    assert all(e.logits is None for e in stream(model, byte_tok, "abc", max_new_tokens=2))
    greedy = sampling_stages(events[0].logits, None, SamplingConfig(temperature=0))
    assert float(greedy.probs.max()) == 1.0 and torch.equal(greedy.scaled, greedy.raw)
