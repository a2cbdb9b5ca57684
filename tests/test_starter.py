"""The committed starter models load by name and reproduce the test metrics on their cards."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gpt.checkpoint import load_checkpoint, load_model
from gpt.classifier import GPTClassifier
from gpt.config import STARTER_DIR, STARTER_MODELS
from gpt.model import GPT
from gpt.runs import RunSpec, evaluate_run, load_run_data
from gpt.tokenizer import load_tokenizer


def card(name: str) -> dict:
    return json.loads((STARTER_DIR / name / "card.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", STARTER_MODELS)
def test_starter_loads_by_name_with_its_card(name):
    model, tok = load_model(name), load_tokenizer(name)
    expected = {"starter": GPT, "starter-spam": GPTClassifier, "starter-chat": GPT}[name]
    assert isinstance(model, expected)
    assert tok.n_vocab <= model.config.vocab_size and tok.name.startswith("starter-bpe")
    c = card(name)
    assert c["name"] == name and c["steps"] > 0 and c["train_seconds"] > 0 and c["test"]
    size = sum(f.stat().st_size for f in (STARTER_DIR / name).iterdir())
    assert size < 20e6


def test_starter_models_total_under_50_mb():
    total = sum(f.stat().st_size for f in STARTER_DIR.rglob("*") if f.is_file())
    assert total < 50e6


@pytest.mark.parametrize("name", STARTER_MODELS)
def test_starter_reproduces_its_card_metrics(name):
    meta = load_checkpoint(STARTER_DIR / name).metadata
    spec = RunSpec.from_dict({**meta["spec"], "base": name, "tokenizer": name})
    model, tok = load_model(name), load_tokenizer(name)
    context = min(spec.context or model.config.block_size, model.config.block_size)
    data = load_run_data(dataclasses.replace(spec, data="bundled"), tok, context)
    got = evaluate_run(spec, model, tok, data)
    for key, want in card(name)["test"].items():
        if isinstance(want, float):
            assert got[key] == pytest.approx(want, rel=1e-4, abs=1e-6), key
        else:
            assert got[key] == want, key


def test_starter_spam_trace_rises_as_the_evidence_appears():
    """`starter-spam` learned from every prefix (prefix_weight): P(spam) after each token
    crosses 0.5 where the spam starts, not only at the message's last token."""
    import torch

    model, tok = load_model("starter-spam"), load_tokenizer("starter-spam")

    def trace(text: str) -> list[float]:
        return model.trace(torch.tensor([tok.encode(text)]))[:, 1].tolist()

    spam = trace("Free entry to our weekly prize draw, text WIN to 80086")
    first = next(i for i, p in enumerate(spam) if p > 0.5)
    assert first <= len(spam) - 10 and min(spam[first:]) > 0.5, spam
    ham = trace("Can you pick up milk on your way home? Thanks x")
    assert max(ham) < 0.5, ham
