"""Frozen-trunk caching and length bucketing: the same losses as without them, less work."""

from __future__ import annotations

import pytest
import torch

from gpt.classifier import GPTClassifier
from gpt.config import PRESETS
from gpt.device import BF16_ENV
from gpt.model import GPT
from gpt.train.loop import (
    IGNORE_INDEX,
    ClassifyTask,
    InstructTask,
    StopTraining,
    TrainConfig,
    _epoch_batches,
    fit,
    prepare_model,
)
from gpt.train.trunk import frozen_split
from tests.test_train import classify_collate, classify_data

SMALL = PRESETS["tiny"].replace(n_layer=3)
pytestmark = pytest.mark.slow  # training loops


@pytest.fixture(autouse=True)
def float32(monkeypatch):
    """Caching is exact in float32; bf16 autocast (on where the CPU has it) rounds the cached
    and the uncached trunk differently, and has a test of its own here."""
    monkeypatch.setenv(BF16_ENV, "0")


def instruct_data(n: int = 40, seed: int = 0):
    """(ids, prompt_length) rows of varied lengths, as `gpt.train.data.InstructionDataset` gives."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(6, 30, (1,), generator=g))
        rows.append((torch.randint(10, 512, (length,), generator=g), length // 3))
    return rows


def instruct_collate(batch, pad: int = 0):
    from gpt.train.data import collate_instructions

    return collate_instructions(batch, pad_id=pad, mask_prompt=True)


def train(kind: str, method: str, cache: bool, epochs: float = 3, **kw):
    """(result, model, calls of the first block per epoch) for a small run."""
    torch.manual_seed(0)
    body = GPT(SMALL.replace(dropout=kw.pop("dropout", 0.0)))
    if kind == "classify":
        model, task = GPTClassifier(body, 2), ClassifyTask(prefix_weight=0.5)
        data, collate = classify_data(48), classify_collate
    else:
        model, task = body, InstructTask()
        data, collate = instruct_data(), instruct_collate
    cfg = TrainConfig(
        task=kind,
        method=method,
        epochs=epochs,
        batch_size=8,
        lr=3e-3,
        eval_every=4,
        cache_trunk=cache,
        **kw,
    )
    prepare_model(model, cfg)
    calls: dict[int, int] = {}  # epoch -> calls of block 0 while training (not evaluating)
    epoch = [0]

    def count(*_):
        if model.training:
            calls[epoch[0]] = calls.get(epoch[0], 0) + 1

    def on_event(event):
        if event.kind == "step":  # the next step is in the epoch this one ended at
            epoch[0] = int(event.epoch + 1e-9)

    body.h[0].register_forward_hook(count)
    result = fit(model, task, data, data[:12], cfg, collate=collate, callbacks=[on_event])
    return result, model, calls


@pytest.mark.parametrize(
    "kind, method", [("classify", "head"), ("classify", "last_blocks"), ("instruct", "last_blocks")]
)
def test_cached_run_equals_uncached_run(kind, method):
    cached, cached_model, _ = train(kind, method, cache=True)
    plain, plain_model, _ = train(kind, method, cache=False)
    assert len(cached.history) == len(plain.history) == {"classify": 18, "instruct": 15}[kind]
    a, b = [h["loss"] for h in cached.history], [h["loss"] for h in plain.history]
    assert a == pytest.approx(b, abs=1e-5)
    assert a[-1] < a[0]  # and it learns
    assert [e["val_loss"] for e in cached.evals] == pytest.approx(
        [e["val_loss"] for e in plain.evals], abs=1e-5
    )
    for k, v in plain_model.state_dict().items():
        torch.testing.assert_close(cached_model.state_dict()[k], v, atol=1e-4, rtol=0)  # Adam


def test_dropout_in_the_trained_part_keeps_the_cache_exact():
    """The frozen part runs in eval mode either way, so only the trained part draws dropout."""
    cached, _, _ = train("classify", "last_blocks", cache=True, dropout=0.1)
    plain, _, _ = train("classify", "last_blocks", cache=False, dropout=0.1)
    a, b = [h["loss"] for h in cached.history], [h["loss"] for h in plain.history]
    assert a == pytest.approx(b, abs=1e-5)


def test_bf16_trunk_features_are_float32_and_agree_to_bf16_precision(monkeypatch):
    """Under bf16 autocast the cache computes the trunk in bf16 and keeps float32 values, off
    from the float32 trunk by bf16's rounding (not more, not zero); training through them
    follows the float32 run to that precision."""
    from gpt.train.trunk import TrunkCache

    torch.manual_seed(0)
    model = GPTClassifier(GPT(SMALL), 2)
    cfg = TrainConfig(task="classify", method="last_blocks")
    prepare_model(model, cfg)
    data = classify_data(16)
    lengths = [int(last) + 1 for _, last, _ in (classify_collate([ex]) for ex in data)]
    split = frozen_split(model, cfg.method, cfg.last_n_blocks)
    stores = {}
    for flag in ("0", "1"):
        monkeypatch.setenv(BF16_ENV, flag)
        cache = TrunkCache(model.eval(), split, data, classify_collate, lengths)
        cache.for_rows([0])(classify_collate([data[0]])[0])  # fills example 0's group: all 16
        stores[flag] = torch.cat([t for t in cache.store if t is not None])
    assert stores["1"].dtype == torch.float32 and stores["1"].shape == stores["0"].shape
    err = (stores["1"] - stores["0"]).abs().max() / stores["0"].abs().max()
    assert 0 < err < 2e-2  # rounded as bf16 rounds (8 bits of mantissa), no worse

    monkeypatch.setenv(BF16_ENV, "1")
    bf16, _, _ = train("classify", "last_blocks", cache=True)
    monkeypatch.setenv(BF16_ENV, "0")
    fp32, _, _ = train("classify", "last_blocks", cache=True)
    a, b = [h["loss"] for h in bf16.history], [h["loss"] for h in fp32.history]
    assert a != b and a == pytest.approx(b, abs=0.05)
    assert a[-1] < a[0]


@pytest.mark.parametrize("method", ["head", "last_blocks"])
def test_frozen_blocks_run_only_in_the_first_epoch(method):
    _, _, cached = train("classify", method, cache=True)
    _, _, plain = train("classify", method, cache=False)
    assert cached == {0: 1}  # 48 examples, in one group (of up to 64); epochs 2, 3 reuse them
    assert plain == {0: 6, 1: 6, 2: 6}  # 6 batches an epoch, each through block 0


@pytest.mark.parametrize("method", ["head", "last_blocks"])
def test_validation_runs_the_frozen_blocks_once(method):
    """Evaluations go through a cache of their own: block 0 sees the 12 validation examples
    once (one group), not once per evaluation (5 evaluations of 2 batches each without it)."""
    evals: dict[bool, int] = {}
    for cache in (True, False):
        torch.manual_seed(0)
        model = GPTClassifier(GPT(SMALL), 2)
        cfg = TrainConfig(
            task="classify", method=method, epochs=3, batch_size=8, eval_every=4, cache_trunk=cache
        )
        prepare_model(model, cfg)
        evals[cache] = 0

        def count(*_, cache=cache, model=model):  # block 0's calls while evaluating
            evals[cache] += 0 if model.training else 1

        model.gpt.h[0].register_forward_hook(count)
        data = classify_data(48)
        fit(model, ClassifyTask(), data, data[:12], cfg, collate=classify_collate)
    assert evals == {True: 1, False: 5 * 2}


def test_cache_over_its_cap_is_skipped_and_said():
    notes = []
    torch.manual_seed(0)
    model = GPTClassifier(GPT(SMALL), 2)
    cfg = TrainConfig(task="classify", method="head", max_steps=2, batch_size=8, cache_max_mb=0)
    prepare_model(model, cfg)
    data = classify_data(16)
    fit(model, ClassifyTask(), data, None, cfg, collate=classify_collate, callbacks=[notes.append])
    note = next(e for e in notes if e.kind == "note").metrics["message"]
    assert note.startswith("frozen-trunk cache off: it would take") and "cache_max_mb 0" in note


def test_no_cache_when_nothing_is_frozen():
    clf = GPTClassifier(GPT(SMALL), 2)
    assert frozen_split(clf, "last_blocks", 1) is None  # prepare_model was not called
    prepare_model(clf, TrainConfig(task="classify", method="last_blocks", last_n_blocks=3))
    assert frozen_split(clf, "last_blocks", 3) is None  # every block trains


def test_residual_then_hidden_from_equals_hidden():
    torch.manual_seed(0)
    body = GPT(SMALL).eval()
    idx = torch.randint(0, 512, (2, 9))
    for k in range(SMALL.n_layer + 1):
        torch.testing.assert_close(body.hidden_from(body.residual(idx, k), k), body.hidden(idx))


def test_bucketing_pads_each_batch_to_its_own_longest():
    data = classify_data(96)
    lengths = [len(ids) for ids, _ in data]
    seen = []

    def spy(batch):
        out = classify_collate(batch)
        seen.append((out[0].shape[1], [len(ids) for ids, _ in batch]))
        return out

    def padding(bucket: bool) -> int:
        seen.clear()
        cfg = TrainConfig(task="classify", epochs=1, batch_size=8, eval_every=100, bucket=bucket)
        fit(GPTClassifier(GPT(SMALL), 2), ClassifyTask(), data, None, cfg, collate=spy)
        assert all(max(ls) == T for T, ls in seen)  # padded to the batch's longest, no further
        return sum(T * len(ls) - sum(ls) for T, ls in seen)

    assert padding(bucket=True) < padding(bucket=False) / 3
    a = _epoch_batches(96, 8, 1, 5, lengths)
    assert a == _epoch_batches(96, 8, 1, 5, lengths)  # a function of (seed, epoch)
    assert a != _epoch_batches(96, 8, 2, 5, lengths)
    assert sorted(i for b in a for i in b) == list(range(96))


def test_resume_with_cache_and_buckets_equals_uninterrupted_run(tmp_path):
    data = classify_data(40)
    cfg = TrainConfig(
        task="classify", method="last_blocks", max_steps=12, batch_size=6, lr=2e-3, eval_every=4
    )

    def model():
        torch.manual_seed(1)
        clf = GPTClassifier(GPT(SMALL), 2)
        prepare_model(clf, cfg)
        return clf

    def stop_at_8(event):
        if event.kind == "step" and event.step == 8:  # in the second epoch: the cache is full
            raise StopTraining

    full_model = model()
    full = fit(full_model, ClassifyTask(), data, data[:6], cfg, collate=classify_collate)
    part = fit(
        model(), ClassifyTask(), data, data[:6], cfg, collate=classify_collate,
        out_dir=tmp_path, callbacks=[stop_at_8],
    )  # fmt: skip
    assert part.step == 8
    resumed_model = model()
    resumed = fit(
        resumed_model, ClassifyTask(), data, data[:6], cfg, collate=classify_collate,
        out_dir=tmp_path, resume=True,
    )  # fmt: skip
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for k, v in full_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k


def test_row_lengths_end_at_the_last_target():
    x = torch.zeros(2, 5, dtype=torch.long)
    y = torch.tensor([[1, 2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX, 3, 4, 5, 6]])
    assert InstructTask().row_lengths((x, y)).tolist() == [2, 5]
    assert ClassifyTask().row_lengths((x, torch.tensor([0, 3]), None)).tolist() == [1, 4]


def test_instruct_batches_sort_longer_runs_than_classify():
    """Instructions vary far more in length than messages: their epochs sort runs of
    `BUCKET_CHUNKS["instruct"]` batches (padding a few percent), messages runs of 8."""
    from gpt.train.loop import BUCKET_CHUNK, BUCKET_CHUNKS, step_schedule

    g = torch.Generator().manual_seed(0)
    lengths = (torch.rand(1200, generator=g) ** 3 * 400 + 5).long().tolist()  # long-tailed

    def padding(task: str) -> float:
        cfg = TrainConfig(task=task, batch_size=8, epochs=1)
        batches = [b for step in step_schedule(len(lengths), cfg, lengths) for b in step]
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        return sum(len(b) * max(lengths[i] for i in b) for b in batches) / sum(lengths) - 1

    assert BUCKET_CHUNKS["instruct"] > BUCKET_CHUNK
    assert padding("instruct") < 0.08 < padding("classify")
