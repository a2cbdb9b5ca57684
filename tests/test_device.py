"""The device choice (`gpt.device`) and the code paths it reaches, tested on the CPU.

There is no GPU here, so two things stand in for one:
- `torch.cuda.is_available` / `torch.backends.mps.is_available` are monkeypatched to test the
  choice itself (order, overrides, errors, the DDP backend);
- the model stays on the CPU while `torch.set_default_device("meta")` is on: a tensor made
  without following the model's device lands on "meta", where it either fails to mix with the
  model's tensors or leaves a "meta" result. Every view must run and give exactly what it gives
  without that default, so every tensor it makes follows the model (or is the CPU on purpose).

`scripts/gpu_check.sh` runs the same paths on a real CUDA machine.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from gpt import device as gdevice
from gpt import inside, walk
from gpt.checkpoint import UntiedGPT
from gpt.classifier import GPTClassifier
from gpt.config import PRESETS
from gpt.device import (
    BF16_ENV,
    DEVICE_ENV,
    DeviceError,
    autocast,
    choose_device,
    device_of,
    running_on,
)
from gpt.model import GPT
from gpt.sampling import SamplingConfig, generate_ids
from gpt.train.loop import LMTask, TrainConfig, fit, on_device, setup_distributed

TINY = PRESETS["tiny"]
IDS = [3, 1, 4, 1, 5, 9, 2, 6]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (DEVICE_ENV, "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def machine(monkeypatch, cuda: bool = False, mps: bool = False, n_cuda: int = 1) -> None:
    """Pretend this machine has (or lacks) CUDA and MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_cuda if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


# --- the choice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda:0"), (True, False, "cuda:0"), (False, True, "mps"), (False, False, "cpu")],
)
def test_order_is_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    machine(monkeypatch, cuda, mps)
    assert choose_device() == torch.device(expected)
    assert choose_device("auto") == torch.device(expected)
    assert gdevice.available()[0] == expected.split(":")[0]


def test_under_torchrun_cuda_is_the_process_own_gpu(monkeypatch):
    machine(monkeypatch, cuda=True, n_cuda=2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert choose_device() == choose_device("cuda") == torch.device("cuda:1")
    assert choose_device("cuda:0") == torch.device("cuda:0")  # an explicit index wins


def test_env_overrides_the_order_and_the_argument_overrides_the_env(monkeypatch):
    machine(monkeypatch, cuda=True, mps=True)
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert choose_device() == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, " MPS ")
    assert choose_device() == torch.device("mps")
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "")  # empty: unset
    assert choose_device() == torch.device("cuda:0")


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda:x", "cuda:-1", "mps:0", "cpu:1", "0"])
def test_bad_names_say_which_are_valid(bad):
    with pytest.raises(DeviceError, match=r"unknown device .*use one of auto, cuda, cuda:N, mps, cpu"):
        choose_device(bad)


def test_a_device_this_machine_lacks_is_a_clear_error_saying_where_it_was_asked(monkeypatch):
    machine(monkeypatch)
    with pytest.raises(DeviceError, match=r"'cuda' \(the argument\) is not available.*available: cpu"):
        choose_device("cuda")
    monkeypatch.setenv(DEVICE_ENV, "mps")
    with pytest.raises(DeviceError, match=r"'mps' \(\$GPT2LAB_DEVICE\) is not available"):
        choose_device()
    machine(monkeypatch, cuda=True, n_cuda=2)
    with pytest.raises(DeviceError, match="has 2 CUDA device"):
        choose_device("cuda:2")
    assert isinstance(DeviceError("x"), ValueError)  # the CLI and the registry report ValueErrors


def test_running_on_names_the_device_or_the_problem(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert running_on() == "Running on CPU (2 threads)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert running_on() == "Running on CPU (1 thread)"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "NVIDIA H200")
    machine(monkeypatch, cuda=True)
    assert running_on() == "Running on CUDA: NVIDIA H200"
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    assert running_on().startswith("Device problem: unknown device 'tpu' ($GPT2LAB_DEVICE)")


def test_autocast_is_bf16_where_bf16_is_fast(monkeypatch):
    monkeypatch.setattr(gdevice, "cpu_has_bf16", lambda: False)  # e.g. an older x86
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
    monkeypatch.setattr(gdevice, "cpu_has_bf16", lambda: True)  # AVX512-BF16 or AMX
    cm = autocast(torch.device("cpu"))
    assert isinstance(cm, torch.autocast) and cm.fast_dtype == torch.bfloat16
    monkeypatch.setenv(BF16_ENV, "0")  # the switch: float32 everywhere
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
    monkeypatch.setattr(gdevice, "cpu_has_bf16", lambda: False)
    monkeypatch.setenv(BF16_ENV, "1")  # forced on a CPU without it (emulated)
    assert isinstance(autocast(torch.device("cpu")), torch.autocast)
    assert isinstance(autocast(torch.device("mps")), contextlib.nullcontext)
    monkeypatch.delenv(BF16_ENV)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    with warnings.catch_warnings():  # "CUDA is not available": made here, never entered
        warnings.simplefilter("ignore")
        cm = autocast(torch.device("cuda", 0))
    assert isinstance(cm, torch.autocast) and cm.fast_dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a T4
    assert isinstance(autocast(torch.device("cuda", 0)), contextlib.nullcontext)


def test_device_of_and_on_device_follow_the_weights():
    assert device_of(nn.Identity()) == torch.device("cpu")  # no weights: the CPU
    meta = nn.Linear(2, 2, device="meta")
    assert device_of(meta) == torch.device("meta")
    batch = (torch.tensor([[1, 2]]), torch.tensor([3]))
    assert {t.device.type for t in on_device(batch, meta)} == {"meta"}


def test_device_module_is_core_torch_and_the_standard_library_only():
    tree = ast.parse(Path(gdevice.__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) == {"torch"}


# --- what it reaches -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    lm = GPT(TINY).eval()
    clf = GPTClassifier(GPT(TINY), 2).eval()
    untied = UntiedGPT(TINY).eval()  # a hub fine-tune's own lm_head
    return lm, clf, untied


VIEWS = {  # name -> (model index, call)
    "generate": (0, lambda m: generate_ids(m, IDS, SamplingConfig(max_new_tokens=6, seed=1,
                                                                 repetition_penalty=1.3))),
    "generate_past_context": (0, lambda m: generate_ids(
        m, IDS, SamplingConfig(max_new_tokens=TINY.block_size, temperature=0, stop_at_eot=False))),
    "logit_lens": (0, lambda m: inside.logit_lens(m, IDS, target=7)),
    "logit_lens_fast": (0, lambda m: inside.logit_lens(m, IDS, target="top", fast=True)),
    "surprisal": (0, lambda m: inside.predictions(m, IDS)),
    "ablate_mean": (0, lambda m: inside.ablate(m, IDS, [(0, 0), (1, 1)], mode="mean")),
    "occlusion": (0, lambda m: inside.occlusion(m, IDS, positions=[1, 2])),
    "gradient": (0, lambda m: inside.gradient_x_input(m, IDS)),
    "patch": (0, lambda m: inside.patch(m, IDS, [3, 1, 4, 1, 5, 9, 2, 7], 7)),
    "compare": (0, lambda m: inside.compare(m, m, IDS)),
    "walk_trace": (0, lambda m: walk.trace(m, IDS)),
    "walk_knockouts": (0, lambda m: walk.compare_knockouts(
        m, IDS, ["causal_mask", "positions", "gelu", "layernorm", "shuffle"], n_new=3)),
    "classifier_lens": (1, lambda m: inside.logit_lens(m, IDS)),
    "classifier_occlusion": (1, lambda m: inside.occlusion(m, IDS)),
    "classifier_patch": (1, lambda m: inside.patch(m, IDS, [3, 1, 4, 1, 5, 9, 2, 7], 1)),
    "classifier_trace": (1, lambda m: walk.trace(m, IDS)),
    "untied_lens_fast": (2, lambda m: inside.logit_lens(m, IDS, target="top", fast=True)),
    "untied_generate": (2, lambda m: generate_ids(m, IDS, SamplingConfig(max_new_tokens=4, seed=2))),
    "untied_trace": (2, lambda m: walk.trace(m, IDS)),
}


def tensors(obj, path: str = "out"):
    """(path, tensor) of every tensor in a result (dataclasses, lists, tuples)."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            if name not in ("config", "module"):
                yield from tensors(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            yield from tensors(x, f"{path}[{i}]")


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
    return a == b


FAST_VIEWS = ("generate", "logit_lens", "walk_trace")  # the others run in the slow suite


@pytest.mark.parametrize(
    "view", [v if v in FAST_VIEWS else pytest.param(v, marks=pytest.mark.slow) for v in VIEWS]
)
def test_every_view_makes_its_tensors_on_the_model_device(models, view):
    index, call = VIEWS[view]
    model = models[index]
    torch.manual_seed(0)
    expected = call(model)
    torch.set_default_device("meta")  # a tensor not made on the model's device lands here
    try:
        torch.manual_seed(0)
        got = call(model)
    finally:
        torch.set_default_device(None)
    found = dict(tensors(got))
    assert not [p for p, t in found.items() if t.device.type == "meta"]
    for path, t in tensors(expected):
        assert same(t, found[path]), path
    if not found:  # generation: a list of ids
        assert got == expected


@pytest.mark.parametrize(
    "view", ["logit_lens", *(pytest.param(v, marks=pytest.mark.slow)
                            for v in ("generate", "walk_trace", "ablate_mean"))]
)
def test_an_explicit_cpu_device_gives_the_default_path_results(models, view):
    index, call = VIEWS[view]
    default = models[index]
    moved = copy.deepcopy(default).to(choose_device("cpu"))
    torch.manual_seed(0)
    a = call(default)
    torch.manual_seed(0)
    b = call(moved)
    pairs = list(zip(tensors(a), tensors(b), strict=True)) or [(("ids", a), ("ids", b))]
    for (path, x), (_, y) in pairs:
        assert same(x, y), path
        if isinstance(y, torch.Tensor):  # results are on the CPU, where pages read them
            assert y.device.type == "cpu", path


def _train(device: str | None, monkeypatch, env: str | None = None):
    if env:
        monkeypatch.setenv(DEVICE_ENV, env)
    torch.manual_seed(0)
    model = GPT(TINY.replace(dropout=0.1))
    data = [(torch.arange(i, i + 16) % 512, torch.arange(i + 1, i + 17) % 512) for i in range(8)]
    cfg = TrainConfig(max_steps=2, batch_size=4, eval_every=2, lr=1e-3)
    result = fit(model, LMTask(), data, data[:4], cfg, device=device)
    return result, model


@pytest.mark.slow  # three short training runs
def test_training_with_an_explicit_device_matches_the_default(monkeypatch):
    default, m0 = _train(None, monkeypatch)
    explicit, m1 = _train("cpu", monkeypatch)
    by_env, m2 = _train(None, monkeypatch, env="cpu")
    losses = [h["loss"] for h in default.history]
    assert losses == [h["loss"] for h in explicit.history] == [h["loss"] for h in by_env.history]
    assert default.final["val_loss"] == explicit.final["val_loss"]
    for k, v in m0.state_dict().items():
        assert torch.equal(v, m1.state_dict()[k]) and torch.equal(v, m2.state_dict()[k]), k
    assert device_of(m1) == torch.device("cpu")


def test_training_on_a_device_this_machine_lacks_fails_before_any_step(monkeypatch):
    machine(monkeypatch)
    with pytest.raises(DeviceError, match="'cuda' .* not available"):
        _train("cuda", monkeypatch)


@pytest.mark.parametrize(
    "cuda, env, backend", [(False, None, "gloo"), (True, "cpu", "gloo"), (True, None, "nccl")]
)
def test_ddp_backend_follows_the_device(monkeypatch, cuda, env, backend):
    """NCCL only when this rank trains on its GPU (set as the current one first), else gloo:
    also on a GPU machine told to train on the CPU."""
    import torch.distributed as dist

    machine(monkeypatch, cuda=cuda, n_cuda=2)
    if env:
        monkeypatch.setenv(DEVICE_ENV, env)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "init_process_group", lambda b, **k: calls.append(("init", b)))
    assert setup_distributed() == (0, 1)  # (nothing really joined)
    if backend == "nccl":
        assert calls == [("set_device", torch.device("cuda:1")), ("init", "nccl")]
    else:
        assert calls == [("init", "gloo")]


def test_cli_device_option_is_checked_before_anything_loads(capsys):
    from gpt.__main__ import main

    assert main(["generate", "--model", "nope", "--prompt", "x", "--device", "tpu"]) == 2
    assert "unknown device 'tpu' (--device): use one of auto, cuda" in capsys.readouterr().err
    assert main(["train", "lm", "--out", "x", "--device", "cuda:x"]) == 2
    assert "unknown device 'cuda:x'" in capsys.readouterr().err


@pytest.mark.slow  # the first load_model of a process pays ~2 s for torch's meta-device init
def test_registry_loads_each_model_once_onto_the_chosen_device(monkeypatch, tmp_path):
    import gpt
    from gpt.lab.registry import ModelRegistry, RegistryError, folder_entry

    tok = gpt.Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256})
    folder = gpt.save_checkpoint(tmp_path / "m", GPT(TINY), tokenizer=tok)
    reg = ModelRegistry(sources=[lambda: [folder_entry("m", folder, "test")]])
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(RegistryError, match="unknown device 'tpu'"):
        reg.get("m")
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    model, _ = reg.get("m")
    assert device_of(model) == torch.device("cpu") and not model.training


@pytest.mark.slow  # builds the whole app
def test_the_app_says_where_it_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("GPT2LAB_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    import app

    demo = app.build_app()
    (header,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "header"]
    n = torch.get_num_threads()
    assert f"*Running on CPU ({n} thread{'s' if n != 1 else ''})*" in header.value


@pytest.mark.slow  # real job worker processes
def test_a_job_trains_on_the_device_it_inherits_and_a_bad_one_fails_it_clearly(monkeypatch, tmp_path):
    import gpt
    from gpt.jobs import JobManager

    tok = gpt.Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256})
    tok.save(tmp_path / "tok.json")
    lines = [f"{'spam' if i % 3 == 0 else 'ham'}\tmessage number {i}" for i in range(24)]
    (tmp_path / "sms.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = {
        "kind": "classify", "base": "preset:tiny", "tokenizer": str(tmp_path / "tok.json"),
        "data": str(tmp_path / "sms.tsv"), "method": "full", "max_steps": 2, "batch_size": 4,
        "eval_every": 2,
    }
    monkeypatch.setenv("GPT2LAB_JOB_THREADS", "1")
    with JobManager(tmp_path / "jobs") as jobs:
        monkeypatch.setenv(DEVICE_ENV, "tpu")  # the worker inherits the app's environment
        bad = jobs.wait(jobs.submit(spec), timeout=60)
        monkeypatch.setenv(DEVICE_ENV, "cpu")
        good_id = jobs.submit(spec)
        good = jobs.wait(good_id, timeout=60)
        log = jobs.log(good_id)
    assert bad.state == "failed" and "unknown device 'tpu' ($GPT2LAB_DEVICE)" in bad.error
    assert good.state == "succeeded", (good.error, log)
    assert "training on CPU (1 thread)" in log


@pytest.mark.slow  # builds two optimizers and trunk plans (~2 s on first use)
def test_training_keeps_a_model_already_off_the_cpu_where_it_is(monkeypatch):
    """A model on the CPU goes where `choose_device` says; one the caller put on an accelerator
    stays there ("meta" stands in for the accelerator)."""
    from gpt.train.loop import Trainer

    data = [(torch.arange(16), torch.arange(1, 17))] * 8
    cfg = TrainConfig(max_steps=1, batch_size=4)
    placed = GPT(TINY).to("meta")
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert Trainer(placed, LMTask(), data, None, cfg).device == torch.device("meta")
    assert Trainer(GPT(TINY), LMTask(), data, None, cfg).device == torch.device("cpu")


def test_checkpoints_keep_each_gpus_rng_state(monkeypatch):
    """On a CUDA machine the loop state also holds every GPU's RNG (dropout draws there), and a
    resume restores it; faked here: two "GPUs" whose states are recorded and set back."""
    from gpt.train import state as trainstate

    gpus = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    saved = json.loads(json.dumps(trainstate.rng_state()))  # as written to the checkpoint
    assert len(saved["cuda"]) == 2
    trainstate.set_rng_state(saved)
    assert [t.tolist() for t in restored] == [g.tolist() for g in gpus]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # resumed on a CPU machine
    restored.clear()
    trainstate.set_rng_state(saved)
    assert restored == [] and "cuda" not in trainstate.rng_state()


def test_eval_runs_on_the_chosen_device(monkeypatch, capsys):
    """`python -m gpt eval` takes --device (checked first) and evaluates where it points."""
    from gpt.__main__ import main
    from gpt.lab import runs

    assert main(["eval", "lm", "--model", "starter", "--data", "x", "--device", "tpu"]) == 2
    assert "unknown device 'tpu' (--device)" in capsys.readouterr().err
    seen = []
    monkeypatch.setattr(runs, "choose_device", lambda: torch.device("meta"))
    monkeypatch.setattr(runs, "evaluate_run", lambda spec, model, *a: seen.append(model) or {})
    runs.evaluate_file("lm", "starter", runs.BUNDLED["lm"]["train"])
    assert {p.device.type for p in seen[0].parameters()} == {"meta"}
