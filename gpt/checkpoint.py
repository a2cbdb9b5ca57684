"""Weights in and out: OpenAI's GPT-2 (Hugging Face safetensors layout) and our own checkpoints.

Safetensors first; a PyTorch `pytorch_model.bin` (or `.pth`) only through
`torch.load(weights_only=True)`, which loads plain tensors and refuses code. Nothing else is
unpickled.

These folder layouts are loaded:

- **Hugging Face GPT-2**: `config.json` (`model_type: gpt2`) + `model.safetensors` (or shards
  listed by `model.safetensors.index.json`). Keys may carry a `transformer.` prefix; the causal
  mask buffers (`attn.bias`, `attn.masked_bias`) are skipped; `lm_head.weight`, if present, must
  equal `wte.weight` (tied) or is kept as `UntiedGPT.out_head`; `score.weight`
  (`GPT2ForSequenceClassification`) becomes a `GPTClassifier` with `id2label`'s labels; fp16/bf16
  tensors are cast. HF's `Conv1D` stores weights `(in, out)` exactly as our `Linear` does, so no
  tensor needs a transpose. A config of another architecture is refused, naming it.
- **LLMs-from-scratch** (Raschka's book: `tok_emb`, `trf_blocks.N.att.W_query`, ...), with or
  without a config.json: `convert_scratch_state` maps the keys, the shapes give the size.
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


# --- Hugging Face GPT-2 and the other GPT-2 layouts -----------------------------------------------

HF_ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model", "GPT2ForSequenceClassification",
                    "GPT2DoubleHeadsModel", "GPT2ForTokenClassification")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class UntiedGPT(GPT):
    """A GPT-2 whose output head is its own `(vocab, C)` matrix `out_head`, not `wte` (some
    fine-tunes on the hub save an untied `lm_head.weight`). Everything else is `GPT`'s.

    >>> m = UntiedGPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4))
    >>> m(torch.zeros(1, 3, dtype=torch.long)).shape
    torch.Size([1, 3, 10])
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.out_head = torch.nn.Parameter(torch.empty(config.vocab_size, config.n_embd))
        torch.nn.init.normal_(self.out_head, std=0.02)

    def lm_head(self, h: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(h, self.out_head)  # (B, T, vocab)


def config_from_hf(d: dict[str, Any], source: str = "config.json") -> GPTConfig:
    """Map a Hugging Face GPT-2 `config.json` dict to a `GPTConfig`; a config of another
    architecture (or a GPT-2 variant this model cannot run) is a CheckpointError saying which.

    >>> config_from_hf({"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8,
    ...                 "n_positions": 16, "vocab_size": 50}).n_embd
    8
    >>> config_from_hf({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    Traceback (most recent call last):
        ...
    gpt.checkpoint.CheckpointError: config.json: model_type is 'llama', expected 'gpt2' (this is a LlamaForCausalLM): only GPT-2-architecture models (GPT-2 sizes, distilgpt2, DialoGPT, GPT-2 fine-tunes) load here
    """
    if d.get("model_type", "gpt2") != "gpt2":
        archs = ", ".join(map(str, d.get("architectures") or [])) or "model of another architecture"
        raise CheckpointError(
            f"{source}: model_type is {d.get('model_type')!r}, expected 'gpt2' (this is a "
            f"{archs}): only GPT-2-architecture models (GPT-2 sizes, distilgpt2, DialoGPT, "
            "GPT-2 fine-tunes) load here"
        )
    act = d.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        raise CheckpointError(f"{source}: activation_function {act!r} is not GPT-2's tanh GELU")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if d.get(flag):
            raise CheckpointError(f"{source}: {flag}=true is a GPT-2 variant this model lacks")
    if d.get("scale_attn_weights") is False:
        raise CheckpointError(f"{source}: scale_attn_weights=false is not GPT-2's attention")
    n_embd = d.get("n_embd")
    if d.get("n_inner") not in (None, 4 * (n_embd or 0)):
        raise CheckpointError(f"{source}: n_inner {d['n_inner']} is not 4 x n_embd ({n_embd})")
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


@dataclass
class HFWeights:
    """A checkpoint's tensors in our key names: `body` (the `GPT`'s), `out_head` (an untied
    `(vocab, C)` output head, else None) and `score` (a sequence classifier's `(K, C)` head,
    else None)."""

    body: dict[str, torch.Tensor]
    out_head: torch.Tensor | None = None
    score: torch.Tensor | None = None


def convert_hf_state(state: dict[str, torch.Tensor], source: Path | str) -> HFWeights:
    """HF GPT-2 keys to ours: the `transformer.` prefix dropped, the mask buffers (`attn.bias`,
    `attn.masked_bias`) skipped, `lm_head.weight` kept only when it differs from `wte.weight`
    (untied), `score.weight` (GPT2ForSequenceClassification) kept apart. HF's `Conv1D` stores
    `(in, out)` as our `Linear` does: no transposes."""
    out: dict[str, torch.Tensor] = {}
    head = score = None
    for k, v in state.items():
        if k == "lm_head.weight":
            head = v
        elif k == "score.weight":
            score = v
        elif k.startswith(("multiple_choice_head.", "classifier.", "score.")):
            continue  # other task heads: the body is what is used
        else:
            k = k.removeprefix("transformer.")
            if not k.endswith(_HF_SKIP_SUFFIXES):
                out[k] = v
    if head is not None and "wte.weight" in out and torch.equal(head, out["wte.weight"]):
        head = None  # tied
    return HFWeights(out, head, score)


def hf_state_to_ours(state: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    """Rename HF GPT-2 keys to ours (`convert_hf_state`); an untied head is an error here."""
    w = convert_hf_state(state, source)
    if w.out_head is not None:
        raise CheckpointError(
            f"{source}: lm_head.weight differs from wte.weight; GPT-2's head must be tied here "
            "(`load_hf_model` keeps an untied head as `UntiedGPT`)"
        )
    return w.body


def is_scratch_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether the keys are the LLMs-from-scratch book's (`tok_emb`, `trf_blocks.N.att.W_query`)."""
    return "tok_emb.weight" in state and any(k.startswith("trf_blocks.") for k in state)


def scratch_config(state: dict[str, torch.Tensor], source: Path | str) -> GPTConfig:
    """The architecture of an LLMs-from-scratch state dict, from its shapes. The head count is
    not in the shapes: GPT-2's sizes all use 64-wide heads, so n_head = emb_dim / 64."""
    try:
        vocab, n_embd = state["tok_emb.weight"].shape
        block = state["pos_emb.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"{source}: missing {e.args[0]} (LLMs-from-scratch layout)") from e
    n_layer = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("trf_blocks."))
    if n_embd % 64:
        raise CheckpointError(f"{source}: emb_dim {n_embd} is not a multiple of GPT-2's 64-wide heads")
    return GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_embd // 64,
                     n_embd=n_embd)


def convert_scratch_state(state: dict[str, torch.Tensor], source: Path | str) -> HFWeights:
    """LLMs-from-scratch keys to ours. Its `nn.Linear`s store `(out, in)` (ours `(in, out)`),
    its queries, keys and values are three matrices (ours one `c_attn`), its LayerNorms call
    their parameters `scale`/`shift`; a missing qkv bias (`qkv_bias=False`) becomes zeros.

    | theirs | ours |
    |---|---|
    | `tok_emb`, `pos_emb` | `wte`, `wpe` |
    | `trf_blocks.N.att.W_query/W_key/W_value` | `h.N.attn.c_attn` (concatenated, transposed) |
    | `trf_blocks.N.att.out_proj` | `h.N.attn.c_proj` |
    | `trf_blocks.N.ff.layers.0`, `.layers.2` | `h.N.mlp.c_fc`, `h.N.mlp.c_proj` |
    | `trf_blocks.N.norm1`, `norm2`, `final_norm` | `h.N.ln_1`, `h.N.ln_2`, `ln_f` |
    | `out_head.weight` | tied to `wte` when equal, else `UntiedGPT.out_head` |
    """
    cfg = scratch_config(state, source)
    s = dict(state)

    def take(key: str) -> torch.Tensor:
        if key not in s:
            raise CheckpointError(f"{source}: missing {key} (LLMs-from-scratch layout)")
        return s.pop(key)

    out = {"wte.weight": take("tok_emb.weight"), "wpe.weight": take("pos_emb.weight")}
    for i in range(cfg.n_layer):
        p, q = f"trf_blocks.{i}.", f"h.{i}."
        qkv = [take(f"{p}att.W_{n}.weight") for n in ("query", "key", "value")]  # (C, C) each
        out[q + "attn.c_attn.weight"] = torch.cat([w.t() for w in qkv], dim=1)  # (C, 3C)
        biases = [s.pop(f"{p}att.W_{n}.bias", None) for n in ("query", "key", "value")]
        out[q + "attn.c_attn.bias"] = torch.cat(
            [b if b is not None else torch.zeros(cfg.n_embd, dtype=qkv[0].dtype) for b in biases]
        )
        for theirs, ours in (("att.out_proj", "attn.c_proj"), ("ff.layers.0", "mlp.c_fc"),
                             ("ff.layers.2", "mlp.c_proj")):
            out[f"{q}{ours}.weight"] = take(f"{p}{theirs}.weight").t()
            out[f"{q}{ours}.bias"] = take(f"{p}{theirs}.bias")
        for theirs, ours in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[f"{q}{ours}.weight"] = take(f"{p}{theirs}.scale")
            out[f"{q}{ours}.bias"] = take(f"{p}{theirs}.shift")
        s.pop(f"{p}att.mask", None)  # the causal-mask buffer
    out["ln_f.weight"], out["ln_f.bias"] = take("final_norm.scale"), take("final_norm.shift")
    head = s.pop("out_head.weight", None)
    if s:
        raise CheckpointError(f"{source}: unexpected keys {first_few(sorted(s))}")
    if head is not None and torch.equal(head, out["wte.weight"]):
        head = None
    return HFWeights(out, head)


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file, or of a PyTorch `.bin`/`.pth` file through
    `torch.load(weights_only=True)`, which refuses anything but tensors and plain containers
    (no code runs)."""
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for anything that is not plain tensors
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(
            f"{path} could not be read with torch.load(weights_only=True), which loads plain "
            f"tensors only; other pickle files are never loaded ({first})"
        ) from e
    if isinstance(state, dict) and isinstance(state.get("model_state_dict"), dict):
        state = state["model_state_dict"]  # the book's training checkpoints
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def stored_dtype(path: Path) -> str | None:
    """The storage type of a weights file's first tensor ("float32", "float16", "bfloat16"),
    read from its header (safetensors) or a lazy `torch.load(weights_only=True, mmap=True)`;
    None when unreadable."""
    try:
        if path.suffix == ".safetensors":
            floats = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
            with safe_open(path, framework="pt") as f:
                codes = [f.get_slice(k).get_dtype() for k in sorted(f.keys())]  # noqa: SIM118
            return next((floats[c] for c in codes if c in floats), None)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        first = next(v for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
        return str(first.dtype).removeprefix("torch.")
    except Exception:  # a card is a courtesy: loading says what is wrong with the file
        return None


def hf_weight_files(folder: Path) -> list[Path]:
    """The weight files of a model folder, in the order tried: `model.safetensors`, the shards
    of `model.safetensors.index.json`, one other `*.safetensors` (the smallest), then
    `pytorch_model.bin` (read through `torch.load(weights_only=True)` only), then one `*.pth`.
    """
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        if not shards:
            raise CheckpointError(f"{index} lists no weight shards")
        return [folder / s for s in shards]
    for pattern in ("*.safetensors", "pytorch_model.bin", "*.pth"):
        found = sorted(folder.glob(pattern), key=lambda p: (p.stat().st_size, p.name))
        if found:
            return [found[0]]
    others = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
    hint = f" (found {', '.join(others)}: only pytorch_model.bin is read)" if others else ""
    raise CheckpointError(f"no model.safetensors or pytorch_model.bin in {folder}{hint}")


def _untie(state: dict[str, torch.Tensor]) -> HFWeights:
    """Our checkpoint's tensors, an `UntiedGPT`'s own head (`out_head`) apart."""
    body = dict(state)
    return HFWeights(body, body.pop("out_head", None))


def _build_hf(config: GPTConfig, w: HFWeights, source: Path, dtype: torch.dtype) -> GPT:
    if w.out_head is None:
        return _build(config, w.body, source, dtype)
    with torch.device("meta"):
        model = UntiedGPT(config)
    _check_state(model, {**w.body, "out_head": w.out_head}, source)
    state = {k: v.to(dtype) for k, v in {**w.body, "out_head": w.out_head}.items()}
    model.load_state_dict(state, assign=True)
    return model.eval()


def load_hf_model(folder: str | Path, dtype: torch.dtype = torch.float32) -> GPT | GPTClassifier:
    """Load a GPT-2-architecture model folder: Hugging Face's layout (config.json + weights;
    fp16/bf16 storage is cast to `dtype`; an untied head gives an `UntiedGPT`; a
    `GPT2ForSequenceClassification` gives a `GPTClassifier` with `id2label`'s labels), or the
    LLMs-from-scratch book's key names (no config.json needed: the shapes say the size)."""
    folder = Path(folder)
    try:
        files = hf_weight_files(folder)
    except CheckpointError:
        read_json(folder / "config.json")  # a folder without either: "missing config.json"
        raise
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(read_weights_file(f))
    if is_scratch_state(state):
        return _build_hf(scratch_config(state, files[0]), convert_scratch_state(state, files[0]),
                         folder, dtype)
    raw = read_json(folder / "config.json")
    config = config_from_hf(raw, str(folder / "config.json"))
    w = convert_hf_state(state, folder)
    model = _build_hf(config, w, folder, dtype)
    if w.score is None:
        return model
    k = w.score.shape[0]
    id2label = raw.get("id2label") or {}
    labels = tuple(str(id2label.get(str(i), id2label.get(i, i))) for i in range(k))
    clf = GPTClassifier(model, k, labels)
    with torch.no_grad():
        clf.head.weight.copy_(w.score.t())  # (C, K): our Linear stores (in, out)
        clf.head.bias.zero_()  # HF's score layer has no bias
    return clf.to(dtype).eval()


def load_hf_gpt2(folder: str | Path, dtype: torch.dtype = torch.float32) -> GPT:
    """Load a GPT-2 language model from a folder in the Hugging Face layout (`load_hf_model`;
    a sequence classifier is refused here)."""
    model = load_hf_model(folder, dtype)
    if isinstance(model, GPTClassifier):
        raise CheckpointError(f"{folder} holds a sequence classifier, not a language model")
    return model


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
    if not (folder / "config.json").is_file():
        scratch = _scratch_config_from_header(folder)
        if scratch is not None:
            return "hf", scratch, {"model_type": "gpt2", "layout": "llms-from-scratch"}
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


def _scratch_config_from_header(folder: Path) -> GPTConfig | None:
    """The size of an LLMs-from-scratch weights file in a folder without config.json, from the
    tensors' shapes alone (a safetensors header, or a `.pth` mapped lazily through
    `torch.load(weights_only=True, mmap=True)`); None when the folder holds no such file."""
    try:
        path = hf_weight_files(folder)[0]
    except CheckpointError:
        return None
    try:
        if path.suffix == ".safetensors":
            with safe_open(path, framework="pt") as f:
                shapes = {k: torch.empty(f.get_slice(k).get_shape(), device="meta")
                          for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            shapes = {k: torch.empty(v.shape, device="meta") for k, v in loaded.items()
                      if isinstance(v, torch.Tensor)} if isinstance(loaded, dict) else {}
    except Exception:  # unreadable here: loading the weights says why
        return None
    return scratch_config(shapes, path) if is_scratch_state(shapes) else None


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
        model=_build_hf(config, _untie(body), folder, dtype),
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
    if (folder / "config.json").is_file() and read_model_config(folder)[0] == FORMAT:
        return model_from_checkpoint(load_checkpoint(folder, dtype))
    return load_hf_model(folder, dtype)
