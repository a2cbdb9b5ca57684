"""A GPT with a classification head on the last non-padding token (spam / ham, ...).

The head reads the final-LayerNorm features of one position. Because attention is causal, the
last real token is the only position that has seen the whole message, so that is the one pooled;
padding after it cannot change the prediction.

>>> import torch
>>> from gpt.config import PRESETS
>>> clf = GPTClassifier(GPT(PRESETS["tiny"]), num_classes=2).eval()
>>> ids = torch.tensor([[5, 6, 7, 0, 0]])
>>> clf(ids, last_index=torch.tensor([2])).shape
torch.Size([1, 2])
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gpt.model import GPT, Linear


class GPTClassifier(nn.Module):
    """`gpt` (the body) + `head`, a `Linear(n_embd, num_classes)`."""

    def __init__(self, gpt: GPT, num_classes: int = 2, labels: tuple[str, ...] | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.gpt = gpt
        self.head = Linear(gpt.config.n_embd, num_classes)
        self.labels = tuple(labels) if labels else tuple(str(i) for i in range(num_classes))
        if len(self.labels) != num_classes:
            raise ValueError(f"{len(self.labels)} labels given for {num_classes} classes")

    @property
    def config(self):
        return self.gpt.config

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward(
        self,
        idx: torch.Tensor,
        last_index: torch.Tensor | None = None,
        every_position: bool = False,
    ) -> torch.Tensor:
        """Class logits `(B, num_classes)` from the features at `last_index` (default: T - 1),
        or, with `every_position`, `(B, T, num_classes)`: the logits after each prefix."""
        return self.classify(self.gpt.hidden(idx), last_index, every_position)

    def classify(
        self,
        h: torch.Tensor,
        last_index: torch.Tensor | None = None,
        every_position: bool = False,
    ) -> torch.Tensor:
        """What `forward` does once the body has given the final features `h` `(B, T, C)`."""
        if every_position:
            return self.head(h)  # (B, T, K)
        if last_index is None:
            pooled = h[:, -1]
        else:
            pooled = h[torch.arange(h.shape[0], device=h.device), last_index]  # (B, C)
        return self.head(pooled)  # (B, K)

    @torch.no_grad()
    def trace(self, idx: torch.Tensor) -> torch.Tensor:
        """Class probabilities after each prefix of one unpadded row: `(T, num_classes)`.

        Row t is what the classifier would say had the message ended at token t. One forward
        pass computes every prefix, thanks to the causal mask.
        """
        if idx.dim() != 2 or idx.shape[0] != 1:
            raise ValueError(f"trace takes one row of shape (1, T), got {tuple(idx.shape)}")
        h = self.gpt.hidden(idx)[0]  # (T, C)
        return torch.softmax(self.head(h), dim=-1)  # (T, num_classes)


def gpt_body(model: nn.Module) -> GPT:
    """The GPT inside `model`: the model itself, or a classifier's body."""
    return model.gpt if isinstance(model, GPTClassifier) else model
