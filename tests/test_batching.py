"""Batched decoding (gpt.batching, GPT.decode_rows): every run gives what it gives alone.

The model is GPT-2's "tiny" preset with random weights: a 512-token vocabulary whose logits are
spread enough that float differences between a batched row and batch 1 (allclose, 1e-5) never
flip a greedy argmax in these runs; the token-for-token comparisons below check exactly that.
"""

from __future__ import annotations

import threading

import pytest
import torch

from gpt.batching import Batcher, BatchLimits, batcher_for
from gpt.config import PRESETS
from gpt.model import GPT, RowKVCache
from gpt.sampling import SamplingConfig, generate_ids, sample_steps, stream
from gpt.tokenizer import Tokenizer

BLOCK = PRESETS["tiny"].block_size  # 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(PRESETS["tiny"]).eval()


def prompt(n: int, seed: int) -> list[int]:
    return torch.randint(0, 512, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_a_batched_row_has_the_logits_of_the_same_sequence_alone(model):
    prompts = [prompt(n, i) for i, n in enumerate((3, 17, 9))]
    rows = RowKVCache(model.config, rows=4, max_len=32)
    alone = []
    with torch.inference_mode():
        for r, p in enumerate(prompts):
            kv = model.new_cache(1)
            model(torch.tensor([p]), kv, last_only=True)
            rows.load(r, kv)
            alone.append(kv)
        for step in range(5):
            tokens = [(7 * step + r) % 512 for r in range(3)]
            batched = model.decode_rows(torch.tensor(tokens), rows, 3)  # (3, V)
            for r, kv in enumerate(alone):
                one = model(torch.tensor([[tokens[r]]]), kv, last_only=True)[0, -1]
                torch.testing.assert_close(batched[r], one, atol=1e-5, rtol=1e-5)
    assert rows.pos[:3] == [3 + 5, 17 + 5, 9 + 5]


def test_a_lone_row_steps_as_batch_one(model):
    rows = RowKVCache(model.config, rows=3, max_len=8)
    rows.pos[0] = 4
    assert rows.step(1).mask is None and rows.step(2).mask.shape == (2, 1, 1, 5)


def run_all(batcher, model, runs, stagger=None):
    """Run `runs` [(prompt, cfg)] at once, each in its own thread; run i starts once run
    `stagger[i]` = (j, k) has yielded k tokens. Returns each run's token ids."""
    out = [[] for _ in runs]
    started = [threading.Event() for _ in runs]
    progress = [threading.Condition() for _ in runs]

    def go(i):
        if stagger and stagger.get(i):
            j, k = stagger[i]
            with progress[j]:
                progress[j].wait_for(lambda: len(out[j]) >= k or done[j].is_set(), timeout=30)
        for step in batcher.steps(model, runs[i][0], runs[i][1]):
            with progress[i]:
                out[i].append(step.token_id)
                progress[i].notify_all()
        done[i].set()
        with progress[i]:
            progress[i].notify_all()

    done = [threading.Event() for _ in runs]
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(runs))]
    for t, s in zip(threads, started):
        t.start()
        s.set()
    for t in threads:
        t.join(60)
    assert all(d.is_set() for d in done)
    return out


def test_greedy_runs_joining_and_leaving_at_different_steps_match_batch_one(model):
    runs = [
        (prompt(3, 1), SamplingConfig(temperature=0, max_new_tokens=30, stop_at_eot=False)),
        (prompt(20, 2), SamplingConfig(temperature=0, max_new_tokens=12, stop_at_eot=False)),
        (prompt(7, 3), SamplingConfig(temperature=0, max_new_tokens=25, stop_at_eot=False)),
        (prompt(1, 4), SamplingConfig(temperature=0, max_new_tokens=5, stop_at_eot=False)),
        (prompt(40, 5), SamplingConfig(temperature=0, max_new_tokens=18, stop_at_eot=False)),
    ]
    batcher = Batcher(model)
    fed = []
    decode = model.decode_rows

    def counting(tokens, cache, n, packed=None):
        fed.append(n)
        return decode(tokens, cache, n, packed)

    model.decode_rows = counting
    try:  # run 2 joins after run 0's 4th token, run 3 after run 1's 2nd, run 4 after run 2's 10th
        got = run_all(batcher, model, runs, stagger={2: (0, 4), 3: (1, 2), 4: (2, 10)})
    finally:
        del model.decode_rows
    for (p, cfg), tokens in zip(runs, got):
        assert tokens == generate_ids(model, p, cfg)
    assert max(fed) >= 2  # the runs did share steps
    assert batcher.active == 0


def test_seeded_sampling_draws_the_same_tokens_whoever_else_is_in_the_batch(model):
    settings = [
        dict(temperature=1.0, seed=1),
        dict(temperature=0.7, top_k=20, seed=2),
        dict(temperature=1.3, top_p=0.8, repetition_penalty=1.3, seed=3),
        dict(temperature=0, repetition_penalty=1.5),
    ]
    runs = [
        (
            prompt(5 + 6 * i, 10 + i),
            SamplingConfig(max_new_tokens=20 + 3 * i, stop_at_eot=False, **s),
        )
        for i, s in enumerate(settings)
    ]
    got = run_all(Batcher(model), model, runs, stagger={1: (0, 2), 3: (2, 5)})
    for (p, cfg), tokens in zip(runs, got):
        assert tokens == generate_ids(model, p, cfg)


def test_runs_past_the_context_rebuild_their_own_row(model):
    cfg = SamplingConfig(temperature=0, max_new_tokens=80, stop_at_eot=False)
    runs = [
        (prompt(60, 20), cfg),  # fills the context after 4 tokens
        (prompt(BLOCK + 10, 21), cfg),  # longer than the context: its prompt's tail
        (prompt(5, 22), SamplingConfig(temperature=0, max_new_tokens=30, stop_at_eot=False)),
    ]
    got = run_all(Batcher(model), model, runs)
    for (p, c), tokens in zip(runs, got):
        assert tokens == generate_ids(model, p, c)


def test_stopping_one_run_leaves_the_others_running(model):
    batcher = Batcher(model)
    cfg = SamplingConfig(temperature=0, max_new_tokens=40, stop_at_eot=False)
    a, b = prompt(4, 30), prompt(9, 31)
    run_a = batcher.steps(model, a, cfg)
    run_b = batcher.steps(model, b, cfg)
    got_a = [next(run_a).token_id for _ in range(3)]
    got_b = [next(run_b).token_id for _ in range(5)]
    run_b.close()  # B's Stop
    got_a += [s.token_id for s in run_a]
    assert got_a == generate_ids(model, a, cfg)
    assert got_b == generate_ids(model, b, cfg)[:5]
    assert batcher.active == 0


def test_eot_ends_a_row_and_candidates_and_logits_come_per_run(model):
    cfg = SamplingConfig(
        temperature=0.9, seed=5, max_new_tokens=30, n_candidates=4, keep_logits=True
    )
    p = prompt(6, 40)
    alone = list(sample_steps(model, p, cfg, eot_id=3))
    other = SamplingConfig(temperature=0, max_new_tokens=30, stop_at_eot=False)
    batcher = Batcher(model)
    got = run_all(batcher, model, [(prompt(8, 41), other)])  # warm: a second run shares steps
    assert got[0] == generate_ids(model, prompt(8, 41), other)
    shared = list(batcher.steps(model, p, cfg, 3))
    assert [s.token_id for s in shared] == [s.token_id for s in alone]
    for x, y in zip(shared, alone):
        assert [c.token_id for c in x.candidates] == [c.token_id for c in y.candidates]
        torch.testing.assert_close(x.logits, y.logits, atol=1e-5, rtol=1e-5)
        assert x.logits.untyped_storage().nbytes() == 512 * 4  # its own, not the batch's


def test_the_batch_stays_within_its_row_and_memory_caps(model):
    cfg = SamplingConfig(temperature=0, max_new_tokens=15, stop_at_eot=False)
    runs = [(prompt(4 + i, 50 + i), cfg) for i in range(5)]
    per_row = RowKVCache.bytes_per_position(model.config) * 64  # one row of 64 positions
    for limits, cap in ((BatchLimits(max_rows=2), 2), (BatchLimits(cache_bytes=3 * per_row), 3)):
        batcher = Batcher(model, limits)
        fed = []
        decode = model.decode_rows
        model.decode_rows = lambda t, c, n, p=None, fed=fed, d=decode: (
            fed.append(n) or d(t, c, n, p)
        )
        try:
            got = run_all(batcher, model, runs)
        finally:
            del model.decode_rows
        assert max(fed) <= cap
        for (p, c), tokens in zip(runs, got):
            assert tokens == generate_ids(model, p, c)


def test_stream_through_the_batcher_keeps_stop_strings(model):
    tok = Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256})
    m = GPT(PRESETS["tiny"].replace(vocab_size=257)).eval()
    cfg = SamplingConfig(temperature=1.0, seed=7, max_new_tokens=60, stop=("e", "a"))
    alone = list(stream(m, tok, "Once upon", cfg=cfg))
    shared = list(stream(m, tok, "Once upon", cfg=cfg, sampler=batcher_for(m).steps))
    assert [(e.text, e.token_id, e.finish_reason) for e in shared] == [
        (e.text, e.token_id, e.finish_reason) for e in alone
    ]
    assert batcher_for(m) is batcher_for(m)


def test_a_batch_steps_on_its_own_threads_and_leaves_everyone_elses_alone(model):
    seen = []
    decode = model.decode_rows
    model.decode_rows = lambda t, c, n, p=None: (
        seen.append((n, torch.get_num_threads())) or decode(t, c, n, p)
    )
    default = torch.get_num_threads()  # 1 in the tests (conftest): the batch's 2 differ
    try:
        cfg = SamplingConfig(temperature=0, max_new_tokens=48, stop_at_eot=False)
        runs = [(prompt(3, 60), cfg), (prompt(5, 61), cfg)]  # the second joins the first's batch
        batcher = Batcher(model, BatchLimits(threads=default + 1))
        got = run_all(batcher, model, runs, stagger={1: (0, 1)})
    finally:
        del model.decode_rows
    assert {t for n, t in seen if n > 1} == {default + 1}
    assert {t for n, t in seen if n == 1} <= {default}
    assert torch.get_num_threads() == default
    out = []
    t = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert out == [default]  # a thread started later: torch's own count
    assert got == [generate_ids(model, p, c) for p, c in runs]


def test_packed_weights_give_the_batched_logits_and_the_same_tokens(model):
    from gpt.model import PackedWeights

    packed = PackedWeights.of(model)
    if packed is None:
        pytest.skip("no oneDNN in this torch build")
    rows = RowKVCache(model.config, rows=3, max_len=32)
    with torch.inference_mode():
        for r, p in enumerate([prompt(4, 70), prompt(9, 71), prompt(2, 72)]):
            kv = model.new_cache(1)
            model(torch.tensor([p]), kv, last_only=True)
            rows.load(r, kv)
        plain_rows = rows.resized(3, 32, keep=3)
        tokens = torch.tensor([5, 6, 7])
        plain = model.decode_rows(tokens, plain_rows, 3)
        fast = model.decode_rows(tokens, rows, 3, packed)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rows.k, plain_rows.k, atol=1e-5, rtol=1e-5)
    cfg = SamplingConfig(temperature=0, max_new_tokens=20, stop_at_eot=False)
    runs = [(prompt(3 + 4 * i, 80 + i), cfg) for i in range(4)]
    batcher = Batcher(model, BatchLimits(pack_bytes=PackedWeights.nbytes_of(model)))
    for _ in range(2):  # the first batched step starts the packing; later ones use the packs
        got = run_all(batcher, model, runs)
        assert got == [generate_ids(model, p, c) for p, c in runs]
    assert batcher._packed is not None or batcher._worker is None  # packed (or idled out)
    with torch.no_grad():
        model.h[0].mlp.c_fc.weight.add_(0.0)  # the weights changed: the packs are stale
    assert not packed.fresh()


def test_a_long_prompt_is_prefilled_in_chunks_between_the_others_steps(model, monkeypatch):
    """A prompt longer than PREFILL_TOKENS is fed in chunks, a shared step after each, so the
    runs already going keep getting tokens; its own tokens are still those it gets alone."""
    import gpt.batching as batching

    monkeypatch.setattr(batching, "PREFILL_TOKENS", 16)
    events = []
    real_prefill, real_step = Batcher._prefill, Batcher._step

    def prefill(self, row, chunk):
        events.append(("chunk", len(chunk)))
        return real_prefill(self, row, chunk)

    def step(self):
        events.append(("step", len(self._rows)))
        return real_step(self)

    monkeypatch.setattr(Batcher, "_prefill", prefill)
    monkeypatch.setattr(Batcher, "_step", step)
    runs = [
        (prompt(3, 6), SamplingConfig(temperature=0, max_new_tokens=30, stop_at_eot=False)),
        (prompt(50, 7), SamplingConfig(temperature=0, max_new_tokens=8, stop_at_eot=False)),
    ]
    got = run_all(Batcher(model), model, runs, stagger={1: (0, 3)})
    for (p, cfg), tokens in zip(runs, got):
        assert tokens == generate_ids(model, p, cfg)
    long = [i for i, e in enumerate(events) if e == ("chunk", 16) or e == ("chunk", 2)]
    assert [events[i][1] for i in long] == [16, 16, 16, 2]  # 50 tokens in four chunks
    for a, b in zip(long, long[1:]):  # a step of the running batch between two chunks
        assert ("step", 1) in events[a + 1 : b]
