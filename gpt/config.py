"""Model configuration: one typed dataclass and a dict of named presets.

A model is fully described by a `GPTConfig`; the config travels inside every checkpoint
(`config.json`), so nothing about the architecture hides in globals.

>>> cfg = PRESETS["gpt2"]
>>> cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.head_dim
(12, 12, 768, 64)
>>> GPTConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GPT2_VOCAB_SIZE = 50257


def unknown_fields(cls: type, keys: Any) -> list[str]:
    """The names in `keys` that are not fields of the dataclass `cls`, sorted.

    Every config's `from_dict` uses it to reject a misspelt setting by name.

    >>> unknown_fields(GPTConfig, ["n_layer", "colour"])
    ['colour']
    """
    return sorted(set(keys) - {f.name for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class GPTConfig:
    """Hyperparameters of a GPT-2 style decoder.

    Attributes:
        vocab_size: number of token ids the embedding and LM head cover.
        block_size: context length (number of learned positions).
        n_layer: number of transformer blocks.
        n_head: attention heads per block.
        n_embd: width of the residual stream; must be divisible by `n_head`.
        dropout: dropout probability used in training (0 at inference).
        bias: whether Linear layers and LayerNorms carry a bias (GPT-2: True).
        layer_norm_eps: LayerNorm epsilon (GPT-2: 1e-5).
    """

    vocab_size: int = GPT2_VOCAB_SIZE
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """Build a config from a dict, rejecting unknown keys by name."""
        if unknown := unknown_fields(cls, d):
            raise ValueError(f"unknown GPTConfig keys: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> GPTConfig:
        return dataclasses.replace(self, **changes)

    def n_params(self) -> int:
        """Parameter count with the LM head tied to `wte` (counted once).

        >>> PRESETS["gpt2"].n_params()
        124439808
        """
        c, b = self.n_embd, 1 if self.bias else 0
        embeddings = (self.vocab_size + self.block_size) * c
        return embeddings + self.n_layer * self.block_params() + c * (1 + b)  # ... + ln_f

    def block_params(self) -> int:
        """Parameters of one transformer block.

        >>> PRESETS["gpt2"].block_params()
        7087872
        """
        c, b = self.n_embd, 1 if self.bias else 0
        return (
            2 * c * (1 + b)  # ln_1, ln_2
            + c * 3 * c
            + 3 * c * b  # attn.c_attn
            + c * c
            + c * b  # attn.c_proj
            + c * 4 * c
            + 4 * c * b  # mlp.c_fc
            + 4 * c * c
            + c * b  # mlp.c_proj
        )


PRESETS: dict[str, GPTConfig] = {
    # OpenAI's four released sizes.
    "gpt2": GPTConfig(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": GPTConfig(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": GPTConfig(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPTConfig(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    # Small configs for tests and for the starter models trained on CPU.
    "tiny": GPTConfig(vocab_size=512, block_size=64, n_layer=2, n_head=2, n_embd=32),
    "mini": GPTConfig(vocab_size=4096, block_size=256, n_layer=4, n_head=4, n_embd=256),
    "small": GPTConfig(vocab_size=8192, block_size=256, n_layer=6, n_head=6, n_embd=384),
}

# Hub repositories holding the safetensors weights of OpenAI's released sizes.
HUB_IDS: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}

# The starter models: small models trained by `python -m gpt recipes starter` on the bundled data
# alone, committed as safetensors so the app is useful offline. Loaded by name.
STARTER_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"
STARTER_MODELS: tuple[str, ...] = ("starter", "starter-spam", "starter-chat")
