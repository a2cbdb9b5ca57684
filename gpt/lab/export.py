"""Models out: any model the lab can load becomes a Hugging Face `transformers` folder.

`export(name, folder)` writes what `transformers` needs to load the model with no code of ours:

- `config.json`: GPT-2's architecture (`GPT2LMHeadModel`, or `GPT2ForSequenceClassification`
  for a classifier, with `id2label`);
- `model.safetensors`: the weights under HF's key names (`transformer.h.0.attn.c_attn.weight`,
  ...). HF's `Conv1D` stores `(in, out)` as our `Linear` does, so nothing is transposed; the LM
  head is tied to `wte` and not stored (`tie_word_embeddings`);
- `vocab.json` + `merges.txt` (+ `tokenizer_config.json`, `special_tokens_map.json`): GPT-2's
  tokenizer, or our own byte-level BPE written in the same format, so `AutoTokenizer` gives our
  ids (both use GPT-2's split pattern; another pattern is refused by name);
- `generation_config.json`: `<|endoftext|>` as the end of text;
- `README.md`: a model card with the data credit, the held-out results and the limits from
  `gpt.lab.cards`.

A classifier's head has a bias and HF's `score` layer has none. The export keeps the
probabilities exact by folding the bias into `ln_f`'s bias: with `h = γ·n + β` the head gives
`h·W + b`; a `δ` with `Wᵀδ = b` (least squares, `W` is `(C, K)` with `K ≪ C`, so the system is
exactly solvable when `W` has rank K) makes `(γ·n + β + δ)·W = h·W + b`. `ln_f` feeds only the
head in a classifier, so nothing else changes. The residual `max |Wᵀδ - b|` is measured in
float64, reported (`ExportReport.bias_residual`) and written on the card.

>>> from gpt.config import PRESETS
>>> hf_config(PRESETS["tiny"], eot=511)["architectures"]
['GPT2LMHeadModel']
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from gpt.bpe import GPT2_PATTERN, ranks_to_merges, token_to_unicode
from gpt.checkpoint import CheckpointError
from gpt.classifier import GPTClassifier
from gpt.config import GPTConfig
from gpt.gpt2_vocab import GPT2_EOT
from gpt.model import GPT
from gpt.tokenizer import Tokenizer

BIAS_TOLERANCE = 1e-4  # largest |Wᵀδ - b| accepted when folding a classifier's bias into ln_f


class ExportError(CheckpointError):
    """A model that cannot be written as a Hugging Face folder; the message says why."""


@dataclass(frozen=True)
class ExportReport:
    """What `export` wrote.

    Attributes:
        folder: the Hugging Face folder.
        architecture: "GPT2LMHeadModel" or "GPT2ForSequenceClassification".
        files: the file names written, sorted.
        bias_residual: a classifier's `max |Wᵀδ - b|` after folding its head's bias into
            `ln_f` (None for a language model).
    """

    folder: Path
    architecture: str
    files: tuple[str, ...]
    bias_residual: float | None = None


# --- config and weights ---------------------------------------------------------------------------


def hf_config(
    config: GPTConfig,
    eot: int | None,
    labels: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """`transformers.GPT2Config` fields for our architecture; with `labels`, a sequence
    classifier's (it pools the last token that is not `pad_token_id`, our `<|endoftext|>`)."""
    cfg: dict[str, Any] = {
        "architectures": ["GPT2ForSequenceClassification" if labels else "GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "use_cache": True,
        "torch_dtype": "float32",
        "bos_token_id": eot,
        "eos_token_id": eot,
    }
    if labels:
        cfg["num_labels"] = len(labels)
        cfg["id2label"] = {str(i): label for i, label in enumerate(labels)}
        cfg["label2id"] = {label: i for i, label in enumerate(labels)}
        cfg["pad_token_id"] = eot
        cfg["problem_type"] = "single_label_classification"
    return cfg


def fold_head_bias(
    ln_bias: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """(`ln_f`'s new bias β + δ, residual) with `Wᵀδ = b` solved in float64.

    `weight` is the head's `(C, K)`, `bias` its `(K,)`. The residual is `max |Wᵀδ - b|`.

    >>> w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> new, res = fold_head_bias(torch.zeros(3), w, torch.tensor([0.5, -1.0]))
    >>> (new @ w).tolist(), res < 1e-6
    ([0.5, -1.0], True)
    """
    w, b = weight.detach().double(), bias.detach().double()
    delta = torch.linalg.lstsq(w.T, b.unsqueeze(1)).solution.squeeze(1)  # (C,)
    new = ln_bias.detach().double() + delta
    # The residual of what is stored (float32), not of the float64 solution.
    stored = new.to(ln_bias.dtype)
    residual = (w.T @ (stored.double() - ln_bias.detach().double()) - b).abs().max().item()
    return stored, residual


def hf_state(model: GPT | GPTClassifier) -> tuple[dict[str, torch.Tensor], float | None]:
    """(tensors under HF key names, the bias-folding residual of a classifier or None)."""
    body = model.gpt if isinstance(model, GPTClassifier) else model
    state = {f"transformer.{k}": v for k, v in body.state_dict().items()}
    if "transformer.out_head" in state:  # an untied head (`UntiedGPT`, from the hub)
        state["lm_head.weight"] = state.pop("transformer.out_head")  # (vocab, C)
    if not body.config.bias:  # HF's GPT-2 always has biases: ours are zero
        for name, module in body.named_modules():
            if getattr(module, "bias", "absent") is None:
                out = module.weight.shape[-1] if module.weight.dim() == 2 else module.weight.shape[0]
                state[f"transformer.{name}.bias"] = torch.zeros(out, dtype=module.weight.dtype)
    residual = None
    if isinstance(model, GPTClassifier):
        key = "transformer.ln_f.bias"
        state[key], residual = fold_head_bias(state[key], model.head.weight, model.head.bias)
        if residual > BIAS_TOLERANCE:
            raise ExportError(
                f"the classifier's head bias cannot be folded into ln_f (residual {residual:.2g} "
                f"> {BIAS_TOLERANCE}): its head weight has rank below {model.num_classes}"
            )
        state["score.weight"] = model.head.weight.detach().T  # (K, C): nn.Linear's layout
    out = {k: v.detach().float().contiguous().cpu() for k, v in state.items()}
    return out, residual


# --- tokenizer ----------------------------------------------------------------------------------


def write_tokenizer(tokenizer: Tokenizer, folder: Path, max_length: int) -> list[str]:
    """GPT-2's tokenizer files for `tokenizer` (GPT-2's own, or our BPE with its pattern).

    `vocab.json` maps each token's bytes (in GPT-2's byte-to-unicode alphabet) to its id; the
    merges are recovered from the ranks (`gpt.bpe.ranks_to_merges`), lowest rank first, which
    is the order `transformers`' BPE applies them in.
    """
    if tokenizer.pattern != GPT2_PATTERN:
        raise ExportError(
            f"tokenizer {tokenizer.name!r} splits text with its own pattern; only GPT-2's split "
            "pattern can be written as vocab.json + merges.txt"
        )
    vocab = {token_to_unicode(t): i for t, i in sorted(tokenizer.ranks.items(), key=lambda x: x[1])}
    vocab.update(tokenizer.special_tokens)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = [f"{token_to_unicode(a)} {token_to_unicode(b)}" for a, b in ranks_to_merges(tokenizer.ranks)]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    eot = GPT2_EOT if GPT2_EOT in tokenizer.special_tokens else None
    specials = {"bos_token": eot, "eos_token": eot, "unk_token": eot} if eot else {}
    added = {
        str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for s, i in sorted(tokenizer.special_tokens.items(), key=lambda x: x[1])
    }
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_prefix_space": False,
        "add_bos_token": False,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": added,
        **specials,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2), encoding="utf-8")
    return ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"]


# --- the card -----------------------------------------------------------------------------------


def card_readme(card: Any, architecture: str, bias_residual: float | None = None) -> str:
    """A Hugging Face README.md (YAML front matter + Markdown) from a `gpt.lab.cards.ModelCard`
    (None: a card with the architecture only)."""
    name = getattr(card, "name", "model")
    tag = "text-classification" if architecture == "GPT2ForSequenceClassification" else "text-generation"
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {tag}",
        "tags: [gpt2, gpt2-lab]",
        *([f"license: {card.licence}"] if getattr(card, "licence", None) else []),
        "---",
        "",
        f"# {name}",
        "",
        getattr(card, "summary", "") or "A GPT-2 architecture model exported by GPT-2 Lab.",
        "",
        f"Exported by GPT-2 Lab (`python -m gpt export`) as `{architecture}`: load it with "
        "`transformers.AutoTokenizer` and "
        + ("`AutoModelForSequenceClassification`." if tag == "text-classification"
           else "`AutoModelForCausalLM`."),
        "",
    ]
    if card is not None:
        facts = [
            ("Parameters", f"{card.parameters:,}" if card.parameters else None),
            ("Architecture", card.architecture),
            ("Tokenizer", card.tokenizer),
            ("Fine-tuned from", card.base),
            ("Training data", card.data),
            ("Training", card.training),
            ("Licence", getattr(card, "licence", None)),
        ]
        lines += [f"- **{k}:** {v}" for k, v in facts if v]
        lines.append("")
        if card.metrics:
            on = f" (on {card.metrics_on})" if card.metrics_on else ""
            lines += [f"## Held-out results{on}", "", "| Metric | Value |", "|---|---|"]
            lines += [f"| {m.label} | {m.text} |" for m in card.metrics]
            if card.baseline:
                lines += [f"| {m.label}, before fine-tuning | {m.text} |" for m in card.baseline]
            lines.append("")
        if card.limits:
            lines += ["## Limits", "", *(f"- {limit}" for limit in card.limits), ""]
    if bias_residual is not None:
        lines += [
            "## Export note",
            "",
            "GPT-2 Lab's classification head has a bias; `GPT2ForSequenceClassification`'s "
            "`score` layer has none. The bias was folded into `transformer.ln_f.bias` (δ with "
            f"Wᵀδ = b); the largest logit error this leaves is {bias_residual:.1e}.",
            "",
        ]
    return "\n".join(lines)


# --- export ------------------------------------------------------------------------------------


def export_model(
    model: GPT | GPTClassifier,
    tokenizer: Tokenizer,
    folder: str | Path,
    card: Any = None,
) -> ExportReport:
    """Write `model` and `tokenizer` as a Hugging Face folder (replacing `folder`'s files)."""
    folder = Path(folder)
    body = model.gpt if isinstance(model, GPTClassifier) else model
    if tokenizer.n_vocab > body.config.vocab_size:
        raise ExportError(
            f"tokenizer {tokenizer.name!r} has {tokenizer.n_vocab} ids; the model only "
            f"{body.config.vocab_size}"
        )
    labels = model.labels if isinstance(model, GPTClassifier) else None
    state, residual = hf_state(model)
    cfg = hf_config(body.config, tokenizer.eot_token, labels)
    cfg["tie_word_embeddings"] = "lm_head.weight" not in state
    architecture = cfg["architectures"][0]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    files = ["config.json", "model.safetensors", "README.md"]
    files += write_tokenizer(tokenizer, folder, body.config.block_size)
    if labels is None:
        gen = {"bos_token_id": tokenizer.eot_token, "eos_token_id": tokenizer.eot_token,
               "pad_token_id": tokenizer.eot_token, "do_sample": True, "top_k": 40,
               "max_length": body.config.block_size}
        (folder / "generation_config.json").write_text(json.dumps(gen, indent=2), encoding="utf-8")
        files.append("generation_config.json")
    readme = card_readme(card, architecture, residual)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return ExportReport(folder, architecture, tuple(sorted(files)), residual)


def export(name: Any, folder: str | Path, jobs: Any = None) -> ExportReport:
    """Export the model a name means (`starter`, `gpt2`, `job:<id>` asked of `jobs`, a run's
    model folder) to `folder`, with its card.

    >>> import tempfile; d = tempfile.mkdtemp()
    >>> export("starter-spam", d).architecture
    'GPT2ForSequenceClassification'
    """
    from gpt import checkpoint
    from gpt.lab import cards, names
    from gpt.lab.registry import ModelEntry

    ref = names.resolve(name, jobs=jobs, download=True)
    if ref.folder is None:
        raise ExportError(f"{ref.name!r} has no weights to export: a preset is only a shape")
    model = checkpoint.load_model(ref.folder)
    tokenizer = names.load_tokenizer(Path(ref.tokenizer) if ref.tokenizer != "gpt2" else "gpt2")
    try:
        if ref.kind == "hub":
            card = cards.hub_card(ref.name, ref.folder, ref.task, ref.config)
        elif ref.kind in ("gpt2", "starter"):
            card = cards.model_card(ref.name)
        else:
            source = {"job": "job", "starter": "starter"}.get(ref.kind, "folder")
            entry = ModelEntry(
                name=ref.name, task=ref.task, source=source, description="",
                location=str(ref.folder), tokenizer=ref.tokenizer,
                n_params=sum(p.numel() for p in model.parameters()), ref=ref,
            )
            card = cards.card_for_entry(entry)
    except Exception:  # a card is a courtesy: a model without one still exports
        card = None
    return export_model(model, tokenizer, folder, card)


def export_zip(name: Any, zip_path: str | Path, jobs: Any = None) -> Path:
    """`export` into a temporary folder, then zip it to `zip_path` (files at the zip's root)."""
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = export(name, Path(tmp) / "model", jobs)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
            for f in report.files:
                z.write(report.folder / f, f)
    return zip_path


def push(
    folder: str | Path,
    repo_id: str,
    token: str | None,
    private: bool = True,
    endpoint: str | None = None,
) -> str:
    """Upload an exported folder to the hub as `repo_id` (`name` alone: in the token owner's
    namespace), created private by default, with `token`; returns the repo's URL. The hub is
    `endpoint`, else `HF_ENDPOINT`, else huggingface.co."""
    from huggingface_hub import HfApi

    if not token:
        raise ExportError("pushing needs a Hugging Face token: log in, or set HF_TOKEN")
    api = HfApi(endpoint=endpoint, token=token)
    if "/" not in repo_id:
        repo_id = f"{api.whoami()['name']}/{repo_id}"
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="GPT-2 Lab export")
    return str(url)

