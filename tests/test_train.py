"""The training loop: each task learns, resume is exact, freezing works, DDP matches one process."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gpt.classifier import GPTClassifier
from gpt.config import PRESETS
from gpt.device import BF16_ENV
from gpt.model import GPT
from gpt.train.loop import (
    IGNORE_INDEX,
    TASKS,
    ClassifyTask,
    InstructTask,
    LMTask,
    StopTraining,
    Task,
    TrainConfig,
    fit,
    prepare_model,
    split_rows,
)
from gpt.train.optim import make_optimizer
from gpt.train.state import LoopState, TrainStateError, latest_valid, load_train_state

TINY = PRESETS["tiny"]
pytestmark = pytest.mark.slow  # training loops (and DDP in two processes)


def counting_data(
    n: int = 64, T: int = 32, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Sequences that count up from a random start with a random stride: easy to learn."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        start, stride = (
            torch.randint(0, 512, (1,), generator=g),
            torch.randint(1, 4, (1,), generator=g),
        )
        seq = (start + stride * torch.arange(T + 1)) % 32
        rows.append((seq[:-1], seq[1:]))
    return rows


def classify_data(n: int = 96, seed: int = 0):
    """Label 1 when token 7 appears; variable lengths, padded by the collate."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = int(torch.randint(4, 20, (1,), generator=g))
        ids = torch.randint(10, 512, (length,), generator=g)
        label = i % 2
        if label:
            ids[int(torch.randint(0, length, (1,), generator=g))] = 7
        rows.append((ids, label))
    return rows


def classify_collate(batch, pad: int = 0):
    T = max(len(ids) for ids, _ in batch)
    x = torch.full((len(batch), T), pad, dtype=torch.long)
    for i, (ids, _) in enumerate(batch):
        x[i, : len(ids)] = ids
    last = torch.tensor([len(ids) - 1 for ids, _ in batch])
    return x, last, torch.tensor([label for _, label in batch])


def test_lm_loss_falls():
    torch.manual_seed(0)
    data = counting_data()
    result = fit(
        GPT(TINY),
        LMTask(),
        data,
        data[:16],
        TrainConfig(max_steps=40, batch_size=8, lr=3e-3, eval_every=40),
    )
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < 0.6 * first
    assert result.final["val_loss"] < first and result.final["val_ppl"] > 1


def test_classify_learns_and_reports_metrics():
    torch.manual_seed(0)
    data = classify_data()
    model = GPTClassifier(GPT(TINY), num_classes=2)
    cfg = TrainConfig(task="classify", max_steps=60, batch_size=16, lr=3e-3, eval_every=60)
    result = fit(model, ClassifyTask(), data, data[:32], cfg, collate=classify_collate)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    for key in ("val_accuracy", "val_precision", "val_recall", "val_f1", "val_confusion_matrix"):
        assert key in result.final
    assert result.final["val_accuracy"] > 0.75


def test_prefix_loss_equals_last_token_loss_plus_weighted_loss_on_every_prefix():
    torch.manual_seed(0)
    model = GPTClassifier(GPT(TINY), num_classes=2).eval()
    batch = classify_collate(classify_data(6))
    ids, last, labels = batch
    ref_final, ref_prefix = [], []
    for row, end, label in zip(ids, last, labels):  # one row at a time, through `trace`
        probs = model.trace(row[None, : end + 1])  # (T_row, 2)
        ref_final.append(-probs[-1, label].log())
        ref_prefix.extend(-probs[:, label].log())
    expected = torch.stack(ref_final).mean() + 0.5 * torch.stack(ref_prefix).mean()
    loss, tokens = ClassifyTask(prefix_weight=0.5).loss(model, batch)
    assert torch.allclose(loss, expected, atol=1e-5) and tokens == int((last + 1).sum())
    plain, _ = ClassifyTask().loss(model, batch)
    assert torch.allclose(plain, torch.stack(ref_final).mean(), atol=1e-5)
    with pytest.raises(ValueError, match="prefix_weight must be >= 0"):
        ClassifyTask(prefix_weight=-1)


def test_class_weights_weigh_each_example_by_its_label():
    """Weighted loss = sum of w[label] * per-example loss over sum of w[label], in both terms;
    equal weights give the plain loss."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = GPTClassifier(GPT(TINY), num_classes=2).eval()
    batch = classify_collate(classify_data(6))
    ids, last, labels = batch
    w = torch.tensor([0.5, 3.0])
    logits = model(ids, every_position=True)  # (B, T, 2)
    final = F.cross_entropy(logits[torch.arange(len(ids)), last], labels, reduction="none")
    expected = (w[labels] * final).sum() / w[labels].sum()
    loss, _ = ClassifyTask(class_weights=w.tolist()).loss(model, batch)
    assert torch.allclose(loss, expected, atol=1e-5)
    plain, _ = ClassifyTask().loss(model, batch)
    assert not torch.allclose(loss, plain, atol=1e-4)
    same, _ = ClassifyTask(prefix_weight=0.5, class_weights=[2.0, 2.0]).loss(model, batch)
    assert torch.allclose(same, ClassifyTask(prefix_weight=0.5).loss(model, batch)[0], atol=1e-6)
    with pytest.raises(ValueError, match="class_weights must all be > 0"):
        ClassifyTask(class_weights=[1.0, 0.0])


@pytest.mark.parametrize("lora", [False, True])
def test_instruct_loss_projects_only_targets_with_the_same_loss_and_gradients(lora):
    """InstructTask computes the vocabulary logits at target positions only; the loss and every
    gradient equal those of the whole (B, T, V) logits with prompt and padding ignored."""
    from gpt.train.loop import lm_loss
    from gpt.train.lora import apply_lora

    torch.manual_seed(0)
    model = GPT(TINY)
    if lora:
        apply_lora(model, rank=4, alpha=8)
        for name, p in model.named_parameters():  # adapters start at zero: move them
            if "lora" in name:
                p.data.normal_(0, 0.1)
    x = torch.randint(0, TINY.vocab_size, (3, 12))
    y = x.roll(-1, 1)
    y[:, :5] = IGNORE_INDEX  # prompts
    y[1, 9:] = IGNORE_INDEX  # padding
    loss, n = InstructTask().loss(model, (x, y))
    loss.backward()
    ours = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    ref = lm_loss(model(x), y)
    ref.backward()
    assert n == int((y != IGNORE_INDEX).sum()) == 3 * 7 - 3
    assert torch.allclose(loss, ref, atol=1e-6)
    assert ours and ours.keys() == {k for k, p in model.named_parameters() if p.grad is not None}
    for k, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(ours[k], p.grad, atol=1e-6, rtol=1e-5)


def test_instruct_loss_falls_with_masked_targets():
    torch.manual_seed(0)
    data = []
    for x, y in counting_data(48):
        y = y.clone()
        y[:10] = IGNORE_INDEX  # a "prompt" that is never a target
        data.append((x, y))
    cfg = TrainConfig(task="instruct", max_steps=30, batch_size=8, lr=3e-3, eval_every=30)
    result = fit(GPT(TINY), InstructTask(), data, data[:8], cfg)
    assert result.history[-1]["loss"] < 0.7 * result.history[0]["loss"]


def test_resume_equals_uninterrupted_run(tmp_path):
    data = counting_data(40)
    cfg = TrainConfig(
        max_steps=8, batch_size=6, grad_accum=2, lr=2e-3, warmup_steps=2, eval_every=3, seed=5
    )
    dropout_cfg = TINY.replace(
        dropout=0.1
    )  # dropout draws random numbers: resume must restore them

    torch.manual_seed(1)
    full_model = GPT(dropout_cfg)
    init = {k: v.clone() for k, v in full_model.state_dict().items()}
    full = fit(full_model, LMTask(), data, data[:6], cfg, out_dir=tmp_path / "a")

    def stop_at_5(event):
        if event.kind == "step" and event.step == 5:
            raise StopTraining

    part_model = GPT(dropout_cfg)
    part_model.load_state_dict(init)
    part = fit(
        part_model, LMTask(), data, data[:6], cfg, out_dir=tmp_path / "b", callbacks=[stop_at_5]
    )
    assert part.status == "stopped" and part.step == 5

    resumed_model = GPT(dropout_cfg)  # a fresh process would start from scratch like this
    resumed = fit(resumed_model, LMTask(), data, data[:6], cfg, out_dir=tmp_path / "b", resume=True)
    assert resumed.status == "finished" and resumed.step == 8
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert resumed.evals == full.evals
    for k, v in full_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k


@pytest.mark.parametrize("method", ["last_blocks", "lora"])
def test_frozen_runs_checkpoint_only_the_trained_weights_and_resume_exactly(tmp_path, method):
    """A run that freezes part of the model checkpoints the rest (the frozen weights are the
    base's: a resumed run loads them again), resumes as if uninterrupted, and refuses a base
    whose frozen weights differ."""
    from safetensors.torch import load_file

    data, val = classify_data(40), classify_data(8, seed=1)
    cfg = TrainConfig(task="classify", method=method, max_steps=6, batch_size=8, lr=3e-3,
                      eval_every=2, seed=3)  # fmt: skip

    def model(seed: int = 0) -> GPTClassifier:
        torch.manual_seed(seed)
        m = GPTClassifier(GPT(TINY), 2)
        prepare_model(m, cfg)
        return m

    def run(m, out, **kw):
        task = ClassifyTask(collate=classify_collate)
        return fit(m, task, data, val, cfg, out_dir=tmp_path / out, **kw)

    full_model = model()
    full = run(full_model, "a")
    def stop_at_3(event):
        if event.kind == "step" and event.step == 3:
            raise StopTraining

    assert run(model(), "b", callbacks=[stop_at_3]).status == "stopped"
    folder, state, _ = latest_valid(tmp_path / "b" / "checkpoints")
    saved = load_file(folder / "model.safetensors")
    trained = {n for n, p in full_model.named_parameters() if p.requires_grad}
    assert set(saved) == trained and "gpt.wte.weight" in state["frozen"]["keys"]
    assert set(state["frozen"]["keys"]) | trained == set(full_model.state_dict())

    resumed_model = model()  # a fresh process builds the same base
    resumed = run(resumed_model, "b", resume=True)
    assert resumed.resumed["step"] == 3
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for k, v in full_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k
    with pytest.raises(TrainStateError, match="frozen weights are not the ones"):
        run(model(seed=1), "b", resume=True)  # another base: its frozen weights differ


def test_token_tasks_train_in_bf16_and_classifiers_in_float32(monkeypatch):
    """Where bf16 is on, an LM's training forward runs under bf16 autocast; a classifier's in
    float32 (bf16 cost it balanced accuracy); evaluation in float32 for both."""
    monkeypatch.setenv(BF16_ENV, "1")
    seen: dict[str, list[bool]] = {}

    def spying(task):
        real = task.loss

        def loss(model, batch):
            seen.setdefault(task.name, []).append(torch.is_autocast_enabled("cpu"))
            return real(model, batch)

        task.loss = loss
        return task

    cfg = TrainConfig(max_steps=2, batch_size=4, eval_every=2)
    fit(GPT(TINY), spying(LMTask()), counting_data(8), None, cfg)
    clf = GPTClassifier(GPT(TINY), 2)
    task = spying(ClassifyTask(collate=classify_collate))
    fit(clf, task, classify_data(8), classify_data(4), dataclasses.replace(cfg, task="classify"))
    assert seen == {"lm": [True, True], "classify": [False, False]}


def test_callbacks_see_progress(tmp_path):
    events = []
    data = counting_data(16)
    cfg = TrainConfig(max_steps=4, batch_size=4, eval_every=2)
    fit(GPT(TINY), LMTask(), data, data[:4], cfg, out_dir=tmp_path, callbacks=[events.append])
    kinds = [e.kind for e in events]
    assert kinds.count("step") == 4 and kinds.count("eval") == 2 and kinds.count("checkpoint") == 2
    assert kinds[-1] == "end"
    steps = [e for e in events if e.kind == "step"]
    assert all(e.eta_s is not None and e.metrics["tokens_per_s"] > 0 for e in steps)
    assert steps[-1].eta_s == 0
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2  # keep_checkpoints


def test_checkpoint_minutes_adds_checkpoints_by_time(tmp_path):
    """Steps slower than `checkpoint_minutes` get a checkpoint each, whatever the step cadence."""
    events = []
    data = counting_data(16)

    def slow(event):
        events.append(event)
        if event.kind == "step":
            time.sleep(0.05)  # each step ends more than checkpoint_minutes after the last

    cfg = TrainConfig(max_steps=5, batch_size=4, eval_every=100, checkpoint_minutes=0.0005)
    fit(GPT(TINY), LMTask(), data, None, cfg, out_dir=tmp_path, callbacks=[slow])
    saved = [e.step for e in events if e.kind == "checkpoint"]
    assert saved == [1, 2, 3, 4, 5]  # by steps alone (every 100, and the end): only [5]
    with pytest.raises(ValueError, match="checkpoint_minutes must be > 0 or None"):
        TrainConfig(checkpoint_minutes=0)


def test_early_stopping():
    data = counting_data(16)
    noise = [(torch.randint(0, 512, (32,)), torch.randint(0, 512, (32,))) for _ in range(8)]
    cfg = TrainConfig(max_steps=200, batch_size=8, lr=1e-2, eval_every=2, patience=2)
    result = fit(GPT(TINY), LMTask(), data, noise, cfg)  # val on noise stops improving quickly
    assert result.status == "early_stopped" and result.step < 200


def test_pooling_ignores_padding():
    torch.manual_seed(0)
    clf = GPTClassifier(GPT(TINY), 2).eval()
    ids = torch.randint(10, 512, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = clf(ids, torch.tensor([8]))
        b = clf(padded, torch.tensor([8]))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(clf.trace(ids)[-1], torch.softmax(a[0], -1))


@pytest.mark.parametrize(
    "method, trainable_prefixes",
    [
        ("head", ("head.",)),
        ("last_blocks", ("gpt.h.1.", "gpt.ln_f.", "head.")),
        ("lora", ("head.", "lora")),
    ],
)
def test_freeze_modes(method, trainable_prefixes):
    clf = GPTClassifier(GPT(TINY), 2)
    names = prepare_model(clf, TrainConfig(task="classify", method=method))
    assert names and all(any(p in n for p in trainable_prefixes) for n in names)
    assert any(n.startswith("head.") for n in names)


def test_bad_config_values():
    with pytest.raises(ValueError, match="lr must be in"):
        TrainConfig(lr=5)
    with pytest.raises(ValueError, match="'head' only for the classify task"):
        TrainConfig(task="lm", method="head")
    with pytest.raises(ValueError, match="unknown TrainConfig keys: speed"):
        TrainConfig.from_dict({"speed": 1})
    with pytest.raises(ValueError, match="no training examples"):
        fit(GPT(TINY), LMTask(), [], None, TrainConfig())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resume_skips_a_damaged_checkpoint_and_says_so(tmp_path):
    data = counting_data(16)
    cfg = TrainConfig(max_steps=4, batch_size=4, eval_every=2)
    fit(GPT(TINY), LMTask(), data, None, cfg, out_dir=tmp_path)
    newest = sorted((tmp_path / "checkpoints").iterdir())[-1]
    (newest / "model.safetensors").write_bytes(b"garbage")
    events = []
    result = fit(
        GPT(TINY),
        LMTask(),
        data,
        None,
        cfg,
        out_dir=tmp_path,
        resume=True,
        callbacks=[events.append],
    )
    assert result.resumed["step"] == 2 and result.step == 4
    assert "checksum mismatch" in result.resumed["skipped"][0]
    assert events[0].kind == "resume" and events[0].metrics["skipped"]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_split_rows_shares_every_row_once_and_weights_average_to_one(world):
    for n in range(1, 10):
        rows = list(range(100, 100 + n))
        shares = [split_rows(rows, r, world) for r in range(world)]
        assert [i for share, w in shares if w for i in share] == rows  # in order, each once
        assert all(share for share, _ in shares)  # no rank ever gets an empty micro-batch
        sizes = [len(share) for share, w in shares if w]
        assert max(sizes) - min(sizes) <= 1
        # DDP averages the ranks' gradients: the weights must make that the micro-batch mean
        assert sum(w for _, w in shares) == pytest.approx(world)
        assert all(w == pytest.approx(world * len(s) / n) for s, w in shares if w)


DDP_RUNS = [  # (examples, config): full global batches, then last ones that do not fill 2 ranks
    (32, TrainConfig(max_steps=6, batch_size=8, lr=3e-3, eval_every=100)),  # 4 + 4 every step
    (20, TrainConfig(epochs=1, batch_size=8, lr=3e-3, eval_every=100)),  # 4 rows: 2 + 2
    (19, TrainConfig(epochs=2, batch_size=8, grad_accum=2, lr=3e-3, eval_every=100)),  # 2 + 1
    (17, TrainConfig(epochs=1, batch_size=8, lr=3e-3, eval_every=100)),  # 1 row: 1 + none
]


def _one_run(n: int, cfg: TrainConfig):
    torch.manual_seed(0)
    model = GPT(TINY)
    result = fit(model, LMTask(), counting_data(n), None, cfg)
    return [h["loss"] for h in result.history], model.state_dict()


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    from gpt.train.loop import leave_distributed

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    torch.set_num_threads(1)
    for i, (n, cfg) in enumerate(DDP_RUNS):
        losses, state = _one_run(n, cfg)
        if rank == 0:
            save_file(state, f"{out}.{i}.safetensors")
            with open(f"{out}.{i}.json", "w") as f:
                json.dump(losses, f)
    leave_distributed()  # a plain exit can abort in gloo's teardown (its docstring)


@pytest.mark.slow
def test_ddp_matches_one_process_including_short_last_batches(tmp_path, monkeypatch):
    """Two gloo ranks train exactly as one process: the same losses and the same weights, with
    full global batches and with a last one that does not fill every rank (4, 3 or 1 rows on
    2 ranks of 4), which used to give rank 1 an empty micro-batch and crash. In float32: bf16
    autocast (on where the CPU has it) rounds differently for other batch shapes."""
    from safetensors.torch import load_file

    monkeypatch.setenv(BF16_ENV, "0")  # the ranks inherit it

    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    for i, (n, cfg) in enumerate(DDP_RUNS):
        losses, state = _one_run(n, cfg)
        ddp_losses = json.loads(Path(f"{out}.{i}.json").read_text())
        assert len(ddp_losses) == len(losses) and ddp_losses == pytest.approx(losses, rel=1e-4)
        ddp_state = load_file(f"{out}.{i}.safetensors")
        for k, v in state.items():
            torch.testing.assert_close(ddp_state[k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_checkpoint_holds_the_whole_loop_state_in_the_original_layout(tmp_path):
    """state.json keeps the keys checkpoints have always had (older ones resume as they are),
    and reading one gives the LoopState back whole."""
    data = counting_data(16)
    cfg = TrainConfig(max_steps=3, batch_size=4, eval_every=2, patience=5)
    fit(GPT(TINY), LMTask(), data, data[:4], cfg, out_dir=tmp_path)
    folder, state, _ = latest_valid(tmp_path / "checkpoints")
    assert set(state) == {
        *("version", "step", "micro", "max_steps", "history", "evals", "best", "bad_evals"),
        *("config", "param_groups", "rng", "files"),
    }
    model = GPT(TINY)
    loop = load_train_state(folder, state, model, make_optimizer(model, cfg.lr))
    assert (loop.step, loop.micro, loop.max_steps, len(loop.history)) == (3, 3, 3, 3)
    assert loop.best == min(loop.evals, key=lambda e: e["val_loss"])
    assert loop.config == cfg.to_dict() and LoopState.from_dict(state) == loop


def test_resume_from_a_checkpoint_without_loop_state_says_what_is_missing(tmp_path):
    data = counting_data(16)
    cfg = TrainConfig(max_steps=2, batch_size=4, eval_every=1, keep_checkpoints=1)
    fit(GPT(TINY), LMTask(), data, None, cfg, out_dir=tmp_path)
    state_file = next((tmp_path / "checkpoints").iterdir()) / "state.json"
    state = json.loads(state_file.read_text())
    del state["micro"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(TrainStateError, match="state.json has no micro"):
        fit(GPT(TINY), LMTask(), data, None, cfg, out_dir=tmp_path, resume=True)


def test_every_task_meets_the_task_protocol():
    for make in TASKS.values():
        assert isinstance(make(), Task)
    x = torch.tensor([[5, 6, 7]])
    batch = ClassifyTask(collate=classify_collate).collate([(x[0], 1)])
    assert [t.tolist() for t in batch] == [[[5, 6, 7]], [2], [1]]
    assert [t.tolist() for t in LMTask().collate([(x[0], x[0])])] == [[[5, 6, 7]]] * 2
