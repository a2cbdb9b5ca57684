"""Weights in and out: OpenAI's GPT-2 (Hugging Face safetensors layout) and our own checkpoints.

Only safetensors are ever read; nothing here unpickles a file.

Two folder layouts are loaded:

- **Hugging Face GPT-2**: `config.json` (`model_type: gpt2`) + `model.safetensors` (or shards
  listed by `model.safetensors.index.json`). Keys may carry a `transformer.` prefix; the causal
  mask buffers (`attn.bias`, `attn.masked_bias`) are skipped; `lm_head.weight`, if present, must
  equal `wte.weight` (GPT-2 ties them). HF's `Conv1D` stores weights `(in, out)` exactly as our
  `Linear` does, so no tensor needs a transpose.
- **GPT-2 Lab checkpoint** (what training writes):
  `config.json` = `{"format": "gpt2-lab", "version": 1, "model": {GPTConfig fields},
  "task": "lm" | "classify" | "instruct", "tokenizer": "gpt2" | "tokenizer.json",
  "head": {...} | null, "metadata": {...}}`, `model.safetensors` with the model's keys (and a task
  head's keys under `head.`), and `tokenizer.json` when the model has its own tokenizer.

Every way a file can be wrong (missing, not safetensors, truncated, wrong shapes, missing or extra
keys, an unknown config) raises `CheckpointError` with a message naming the file and the problem.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gpt.classifier import GPTClassifier
from gpt.config import GPTConfig
from gpt.model import GPT

FORMAT: Literal["gpt2-lab"] = "gpt2-lab"
Layout = Literal["gpt2-lab", "hf"]  # our checkpoint folder, or Hugging Face GPT-2's
FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB
_HF_SKIP_SUFFIXES = (".attn.bias", ".attn.masked_bias")


class CheckpointError(ValueError):
    """A weights file or folder that cannot be loaded; the message says what is wrong."""


# --- safetensors files --------------------------------------------------------------------------


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file, after checking its header and its size.

    safetensors' own errors for a truncated or foreign file are terse; this names the file and
    what is wrong with it before anything is loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is not a safetensors file: only {size} bytes long")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > _MAX_HEADER or 8 + n > size:
            raise CheckpointError(
                f"{path} is not a safetensors file (its first 8 bytes do not give a valid header "
                f"length; a pickle .bin/.pt file is not accepted, convert it to safetensors)"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path} is not a safetensors file: bad header ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file: header is not a JSON object")
    data_len = max(
        (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
    )
    if 8 + n + data_len > size:
        raise CheckpointError(
            f"{path} is truncated: its header promises {8 + n + data_len} bytes, the file has "
            f"{size}"
        )
    try:
        with safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path} could not be read as safetensors: {e}") from e


_REQUIRED: Any = object()


def read_json(path: Path, default: Any = _REQUIRED) -> Any:
    """The JSON object in `path`. A file that is missing, unreadable, not JSON or not an object
    gives `default` when one is passed, else a CheckpointError that says which."""
    try:
        if not path.is_file():
            raise CheckpointError(f"missing {path.name} in {path.parent}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path} is not valid JSON: {e}") from e
        except OSError as e:  # unreadable: permissions, a vanished file
            raise CheckpointError(f"{path} could not be read: {e.strerror or e}") from e
        if not isinstance(d, dict):
            raise CheckpointError(f"{path} must hold a JSON object")
        return d
    except CheckpointError:
        if default is _REQUIRED:
            raise
        return default


def _check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Raise a CheckpointError naming missing/unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys: {first_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {first_few(unexpected)}")
    for k in sorted(set(expected) & set(state)):
        if tuple(state[k].shape) != tuple(expected[k].shape):
            problems.append(
                f"{k} has shape {tuple(state[k].shape)}, the config needs {tuple(expected[k].shape)}"
            )
    if problems:
        raise CheckpointError(f"weights in {source} do not fit the model: " + "; ".join(problems))


def first_few(names: list[str], n: int = 5) -> str:
    """Names for an error message, the first `n` of them.

    >>> first_few(["a", "b", "c"], 2), first_few([])
    ('a, b (+1 more)', 'none')
    """
    if not names:
        return "none"
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _build(
    config: GPTConfig, state: dict[str, torch.Tensor], source: Path, dtype: torch.dtype
) -> GPT:
    with torch.device("meta"):  # no memory for a random init that is overwritten at once
        model = GPT(config)
    _check_state(model, state, source)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, assign=True)
    return model.eval()


# --- Hugging Face GPT-2 ---------------------------------------------------------------------------


def config_from_hf(d: dict[str, Any], source: str = "config.json") -> GPTConfig:
    """Map a Hugging Face GPT-2 `config.json` dict to a `GPTConfig`.

    >>> config_from_hf({"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8,
    ...                 "n_positions": 16, "vocab_size": 50}).n_embd
    8
    """
    if d.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(f"{source}: model_type is {d.get('model_type')!r}, expected 'gpt2'")
    act = d.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CheckpointError(f"{source}: activation_function {act!r} is not GPT-2's tanh GELU")
    try:
        return GPTConfig(
            vocab_size=d["vocab_size"],
            block_size=d.get("n_positions", d.get("n_ctx", 1024)),
            n_layer=d["n_layer"],
            n_head=d["n_head"],
            n_embd=d["n_embd"],
            layer_norm_eps=float(d.get("layer_norm_epsilon", 1e-5)),
        )
    except KeyError as e:
        raise CheckpointError(f"{source}: missing field {e.args[0]!r}") from e
    except (TypeError, ValueError) as e:  # e.g. "layer_norm_epsilon": null
        raise CheckpointError(f"{source}: {e}") from e


def hf_state_to_ours(state: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    """Rename HF GPT-2 keys to ours, drop mask buffers, and check the head is tied."""
    out: dict[str, torch.Tensor] = {}
    head = None
    for k, v in state.items():
        if k == "lm_head.weight":
            head = v
            continue
        k = k.removeprefix("transformer.")
        if k.endswith(_HF_SKIP_SUFFIXES):
            continue
        out[k] = v
    if head is not None and "wte.weight" in out and not torch.equal(head, out["wte.weight"]):
        raise CheckpointError(
            f"{source}: lm_head.weight differs from wte.weight; GPT-2's head must be tied"
        )
    return out


def _hf_weight_files(folder: Path) -> list[Path]:
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        if not shards:
            raise CheckpointError(f"{index} lists no weight shards")
        return [folder / s for s in shards]
    pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
    hint = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
    raise CheckpointError(f"no model.safetensors in {folder}{hint}")


def load_hf_gpt2(folder: str | Path, dtype: torch.dtype = torch.float32) -> GPT:
    """Load GPT-2 weights from a folder in the Hugging Face layout (any of the four sizes)."""
    folder = Path(folder)
    config = config_from_hf(read_json(folder / "config.json"), str(folder / "config.json"))
    state: dict[str, torch.Tensor] = {}
    for f in _hf_weight_files(folder):
        state.update(read_safetensors(f))
    return _build(config, hf_state_to_ours(state, folder), folder, dtype)


# --- our checkpoints ------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A loaded GPT-2 Lab checkpoint: the model and what travels with it."""

    model: GPT
    task: str = "lm"
    tokenizer: str = "gpt2"  # "gpt2" or the name of a tokenizer file inside the folder
    head: dict[str, Any] | None = None  # task head description (e.g. {"num_classes": 2})
    head_state: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def is_checkpoint(folder: str | Path) -> bool:
    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("format") == FORMAT
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def read_model_config(folder: str | Path) -> tuple[Layout, GPTConfig, dict[str, Any]]:
    """(layout, architecture, config.json as read) of a model folder, without its weights.

    A config.json with `"format": "gpt2-lab"` is our checkpoint's, which must carry this code's
    version and valid `GPTConfig` fields; any other is read as Hugging Face GPT-2's
    (`config_from_hf`). CheckpointError says what is wrong.
    """
    folder = Path(folder)
    cfg = read_json(folder / "config.json")
    if cfg.get("format") != FORMAT:
        return "hf", config_from_hf(cfg, str(folder / "config.json")), cfg
    if cfg.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder}: checkpoint version {cfg.get('version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION})"
        )
    try:
        config = GPTConfig.from_dict(cfg["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / 'config.json'}: bad model config ({e})") from e
    return FORMAT, config, cfg


def save_checkpoint(
    folder: str | Path,
    model: GPT,
    *,
    task: str = "lm",
    tokenizer: Any = "gpt2",
    head: dict[str, Any] | None = None,
    head_state: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (written beside it, then renamed into place).

    `tokenizer` is "gpt2" or an object with a `save(path)` method (our trained BPE).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        for k, v in (head_state or {}).items():
            tensors[f"head.{k}"] = v.detach().contiguous().cpu()
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        tok_name = "gpt2"
        if not isinstance(tokenizer, str):
            tok_name = "tokenizer.json"
            tokenizer.save(tmp / tok_name)
        elif tokenizer != "gpt2":
            raise CheckpointError(
                f"tokenizer must be 'gpt2' or a tokenizer object, got {tokenizer!r}"
            )
        config = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": model.config.to_dict(),
            "task": task,
            "tokenizer": tok_name,
            "head": head,
            "metadata": metadata or {},
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_checkpoint(folder: str | Path, dtype: torch.dtype = torch.float32) -> Checkpoint:
    """Load a GPT-2 Lab checkpoint folder written by `save_checkpoint`."""
    folder = Path(folder)
    if not is_checkpoint(folder):
        read_json(folder / "config.json")  # a missing or broken file says so
        raise CheckpointError(f"{folder / 'config.json'} is not a {FORMAT} checkpoint config")
    _, config, cfg = read_model_config(folder)
    state = read_safetensors(folder / "model.safetensors")
    head_state = {k[5:]: v for k, v in state.items() if k.startswith("head.")}
    body = {k: v for k, v in state.items() if not k.startswith("head.")}
    return Checkpoint(
        model=_build(config, body, folder, dtype),
        task=cfg.get("task", "lm"),
        tokenizer=cfg.get("tokenizer", "gpt2"),
        head=cfg.get("head"),
        head_state=head_state,
        metadata=cfg.get("metadata") or {},
        path=folder,
    )


def model_from_checkpoint(ck: Checkpoint) -> GPT | GPTClassifier:
    """The runnable model of a checkpoint: the GPT itself, or a classifier with its head."""
    if ck.task != "classify":
        return ck.model
    head = ck.head or {}
    try:
        clf = GPTClassifier(ck.model, int(head["num_classes"]), head.get("labels"))
        clf.head.load_state_dict(ck.head_state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{ck.path}: bad classification head ({e})") from e
    return clf.to(ck.model.dtype).eval()


def load_model(folder: str | Path, dtype: torch.dtype = torch.float32) -> GPT | GPTClassifier:
    """Load the model in a folder: a GPT-2 Lab checkpoint (a classification checkpoint loads as a
    `GPTClassifier`) or a Hugging Face GPT-2 folder. Loading by *name* (`gpt2`, `starter`,
    `job:<id>`) is `gpt.lab.names.load_model`, which resolves the name to a folder first."""
    folder = Path(folder)
    if read_model_config(folder)[0] == FORMAT:
        return model_from_checkpoint(load_checkpoint(folder, dtype))
    return load_hf_gpt2(folder, dtype)
