"""Shared fixtures: randomly initialised Hugging Face GPT-2 folders made by the tests themselves.

Nothing here touches the network: the reference models are built from a config with random
weights and written with `save_pretrained`, exactly the layout of the hub's GPT-2 folders.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

SMALL_HF = dict(n_layer=2, n_head=4, n_embd=64, n_positions=128, vocab_size=1000)


def make_hf_gpt2(folder: Path, seed: int = 0, **config):
    """Save a random `transformers.GPT2LMHeadModel` to `folder`; return the model (eval mode)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = GPT2Config(**config)
    cfg.bos_token_id = cfg.eos_token_id = min(50256, cfg.vocab_size - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GPT2LMHeadModel(cfg).eval()
        model.save_pretrained(folder)
    return model


@pytest.fixture(scope="session")
def hf_small(tmp_path_factory):
    """(folder, hf_model) for a 2-layer GPT-2 with a 1000-token vocabulary."""
    folder = tmp_path_factory.mktemp("hf-small")
    return folder, make_hf_gpt2(folder, **SMALL_HF)


@pytest.fixture(scope="session")
def hf_gpt2(tmp_path_factory):
    """(folder, hf_model) for a randomly initialised GPT-2 124M (the `gpt2` config)."""
    folder = tmp_path_factory.mktemp("hf-gpt2")
    return folder, make_hf_gpt2(folder, seed=1)
