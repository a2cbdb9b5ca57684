"""Training checkpoints: everything needed to resume a run exactly, with no pickle.

A training checkpoint is a folder `step-000120/` holding:

- `model.safetensors`: the trained module's state (body, task head, LoRA adapters); when part
  of the module is frozen (methods head, last_blocks, lora), only the rest: the frozen weights
  are the base model's, which a resumed run loads again, and state.json's `frozen` names them
  with a fingerprint that must match on resume (`frozen_fingerprint`). GPT-2 124M's last-block
  weights are then 28 MB instead of 500, and a checkpoint (with Adam's moments, digests
  included) takes about 0.35 s to write instead of 2.3;
- `optimizer.safetensors`: every tensor of the optimizer state, keyed `state.<param>.<name>`;
- `state.json`: the run's `LoopState` (step, micro-batch position, which gives the epoch and
  the place in the data, metric history, best evaluation, evaluations without improvement),
  the optimizer's param groups, the RNG states (hex), and a `files` manifest of sha256 digests.

The learning rate needs no state of its own: it is a function of the step (`gpt.train.loop.lr_at`).

Folders are written beside their final name and renamed into place, so a crash never leaves a
half-written checkpoint under a real name. `verify` recomputes the digests, which catches a file
that was truncated or overwritten later; `latest_valid` falls back to the newest one that passes.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STATE_VERSION = 1


class TrainStateError(ValueError):
    """A training checkpoint that is missing, corrupted or does not fit the run."""


@dataclass
class LoopState:
    """Where a run stands: what `gpt.train.loop.fit` needs, besides the weights, the optimizer's
    moments and the RNG states, to continue exactly. A checkpoint writes it whole into
    state.json (its fields at the top level, as checkpoints have always been laid out) and
    `load_train_state` gives it back whole.

    >>> s = LoopState(step=2, micro=4, max_steps=9, history=[{"step": 1, "loss": 3.5}])
    >>> LoopState.from_dict({"version": 1, "rng": {}, **s.to_dict()}) == s
    True
    >>> s.epoch(micro_per_epoch=8)
    0.5
    """

    step: int = 0  # optimizer steps done
    micro: int = 0  # micro-batches drawn since the start: the epoch and the place in the data
    max_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per logged step
    evals: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # the evaluation with the lowest val_loss so far
    bad_evals: int = 0  # evaluations since `best` (early stopping counts them)
    config: dict[str, Any] = field(default_factory=dict)  # the TrainConfig, for the reader

    def epoch(self, micro_per_epoch: int) -> float:
        """Epochs done, fractional."""
        return self.micro / micro_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        """The loop state inside a checkpoint's state.json (other keys are the checkpoint's)."""
        missing = [f.name for f in fields(cls) if f.name not in d and f.name != "config"]
        if missing:
            raise TrainStateError(f"state.json has no {', '.join(missing)}")
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rng_state() -> dict[str, Any]:
    """The RNG states a training step consumes (dropout, shuffling), JSON-serialisable: the
    CPU's, Python's, NumPy's and, on a CUDA machine, each GPU's (dropout on a GPU draws there)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state().numpy().tobytes().hex(),
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu().numpy().tobytes().hex() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore `rng_state()`; the GPUs' states when both the checkpoint and this machine have
    them (a run resumed on another kind of machine keeps the CPU's, Python's and NumPy's)."""
    torch.set_rng_state(torch.frombuffer(bytearray.fromhex(state["torch"]), dtype=torch.uint8))
    if state.get("cuda") and torch.cuda.is_available():
        gpus = [torch.frombuffer(bytearray.fromhex(h), dtype=torch.uint8) for h in state["cuda"]]
        torch.cuda.set_rng_state_all(gpus[: torch.cuda.device_count()])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{pid}.{name}"] = t.detach().contiguous().cpu()
    return tensors, sd["param_groups"]


def _optimizer_state(tensors: dict[str, torch.Tensor], groups: list) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = t
    return {"state": state, "param_groups": groups}


def frozen_keys(module: torch.nn.Module) -> list[str]:
    """The state_dict keys of `module`'s frozen parameters (`requires_grad` off), in order.

    >>> m = torch.nn.Linear(2, 2); m.bias.requires_grad = False
    >>> frozen_keys(m)
    ['bias']
    """
    frozen = {id(p) for p in module.parameters() if not p.requires_grad}
    state = module.state_dict(keep_vars=True)
    return [k for k, v in state.items() if id(v) in frozen]


def frozen_fingerprint(state: dict[str, torch.Tensor], keys: list[str]) -> str:
    """A digest of the frozen tensors `keys`: each one's name, shape, dtype and up to 4,096
    values spread evenly over it. Cheap (GPT-2 124M: milliseconds, not the seconds a digest of
    500 MB takes) and enough to tell a different base model, or another random initialisation,
    from the one a checkpoint was trained on.

    >>> t = {"w": torch.arange(10.0)}
    >>> frozen_fingerprint(t, ["w"]) == frozen_fingerprint({"w": torch.arange(10.0)}, ["w"])
    True
    >>> frozen_fingerprint(t, ["w"]) == frozen_fingerprint({"w": torch.zeros(10)}, ["w"])
    False
    """
    h = hashlib.sha256()
    for key in keys:
        t = state[key].detach()
        flat = t.reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)].to("cpu", torch.float32).contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()


def save_train_state(
    folder: Path,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loop: LoopState,
) -> Path:
    """Write a training checkpoint folder atomically: weights (the trained ones, when part of
    `module` is frozen), optimizer, `loop` and RNGs."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        full = module.state_dict()
        frozen = frozen_keys(module)
        skip = set(frozen)
        model_state = {k: v.detach().contiguous().cpu() for k, v in full.items() if k not in skip}
        save_file(model_state, str(tmp / "model.safetensors"))
        opt_tensors, groups = _optimizer_tensors(optimizer)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        files = {n: sha256(tmp / n) for n in ("model.safetensors", "optimizer.safetensors")}
        state = {
            "version": STATE_VERSION,
            **loop.to_dict(),
            "param_groups": groups,
            "rng": rng_state(),
            "files": files,
        }
        if frozen:  # not saved: the base's; checked on resume
            state["frozen"] = {"keys": frozen, "fingerprint": frozen_fingerprint(full, frozen)}
        (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def verify(folder: Path) -> dict[str, Any]:
    """Read state.json and check every file's digest; raise TrainStateError naming the damage."""
    path = folder / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise TrainStateError(f"checkpoint {folder} has no state.json") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrainStateError(f"checkpoint {folder}: state.json is corrupted ({e})") from e
    if state.get("version") != STATE_VERSION:
        raise TrainStateError(f"checkpoint {folder}: unsupported version {state.get('version')!r}")
    try:
        LoopState.from_dict(state)
    except TrainStateError as e:
        raise TrainStateError(f"checkpoint {folder}: {e}") from e
    for name, digest in state.get("files", {}).items():
        f = folder / name
        if not f.is_file():
            raise TrainStateError(f"checkpoint {folder}: {name} is missing")
        if sha256(f) != digest:
            raise TrainStateError(f"checkpoint {folder}: {name} is corrupted (checksum mismatch)")
    return state


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders under `root`, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))


def latest_valid(root: Path) -> tuple[Path, dict[str, Any], list[str]]:
    """The newest checkpoint that verifies, its state, and the problems of newer broken ones.

    Raises TrainStateError when none verifies.
    """
    problems: list[str] = []
    for folder in reversed(list_checkpoints(root)):
        try:
            return folder, verify(folder), problems
        except TrainStateError as e:
            problems.append(str(e))
    detail = "; ".join(problems) if problems else "none found"
    raise TrainStateError(f"no valid training checkpoint in {root}: {detail}")


def load_train_state(
    folder: Path,
    state: dict[str, Any],
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> LoopState:
    """Restore module, optimizer and RNG states from a verified checkpoint folder (`state`:
    its state.json, from `verify` or `latest_valid`); return its loop state."""
    loop = LoopState.from_dict(state)
    frozen = state.get("frozen")
    if frozen:  # the checkpoint holds the trained weights; the frozen ones are `module`'s own
        here = module.state_dict()
        missing = [k for k in frozen["keys"] if k not in here]
        if missing or frozen_fingerprint(here, frozen["keys"]) != frozen["fingerprint"]:
            raise TrainStateError(
                f"checkpoint {folder} holds only the trained weights, and this run's frozen "
                "weights are not the ones it was trained with (another base model?)"
            )
    try:
        weights = load_file(str(folder / "model.safetensors"))
        if frozen:
            unexpected = module.load_state_dict(weights, strict=False).unexpected_keys
            left = set(module.state_dict()) - set(weights) - set(frozen["keys"])
            if unexpected or left:
                raise KeyError(f"unexpected {sorted(unexpected)}, missing {sorted(left)}")
        else:
            module.load_state_dict(weights)
        opt = _optimizer_state(
            load_file(str(folder / "optimizer.safetensors")), state["param_groups"]
        )
        optimizer.load_state_dict(opt)
    except (RuntimeError, ValueError, KeyError) as e:
        raise TrainStateError(f"checkpoint {folder} does not fit this run: {e}") from e
    set_rng_state(state["rng"])
    return loop


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints."""
    for folder in list_checkpoints(root)[:-keep]:
        shutil.rmtree(folder, ignore_errors=True)
