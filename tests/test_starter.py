"""The committed starter models load by name and reproduce the test metrics on their cards."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gpt.checkpoint import load_checkpoint
from gpt.classifier import GPTClassifier
from gpt.config import STARTER_DIR, STARTER_MODELS
from gpt.lab.names import load_model, load_tokenizer
from gpt.lab.runs import (
    REAL_SMS,
    REPO,
    RunSpec,
    classify_splits,
    evaluate_run,
    load_run_data,
    predict_labels,
)
from gpt.model import GPT
from gpt.train.data import label_counts
from gpt.train.metrics import balanced_report


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


def card_spec(name: str) -> RunSpec:
    """The spec the model was trained with, reading the data it names (bundled or real SMS)."""
    meta = load_checkpoint(STARTER_DIR / name).metadata
    spec = RunSpec.from_dict({**meta["spec"], "base": name, "tokenizer": name})
    if spec.data != "bundled" and not (REPO / spec.data).is_file():
        pytest.skip(f"{name} was trained on {spec.data}, not present beside the repository")
    return spec


@pytest.mark.slow  # evaluates each model on its whole test set
@pytest.mark.parametrize("name", STARTER_MODELS)
def test_starter_reproduces_its_card_metrics(name):
    spec = card_spec(name)
    model, tok = load_model(name), load_tokenizer(name)
    context = min(spec.context or model.config.block_size, model.config.block_size)
    data = load_run_data(spec, tok, context)
    got = evaluate_run(spec, model, tok, data)
    for key, want in card(name)["test"].items():
        if isinstance(want, float):
            assert got[key] == pytest.approx(want, rel=1e-4, abs=1e-6), key
        else:
            assert got[key] == want, key


@pytest.mark.slow  # evaluates on the whole test set
def test_starter_spam_is_trained_on_real_sms_and_reproduces_its_balanced_metrics():
    """The card credits the real SMS it was tuned on, and the balanced test metrics on it
    (all test spam + as many test ham, averaged over draws) come back from the weights."""
    c = card("starter-spam")
    real = c["trained_on"]["real_sms"]
    assert real["file"] == str(REAL_SMS) and c["spec"]["data"] == str(REAL_SMS)
    assert real["license"] == "CC BY 4.0" and real["doi"] == "10.24432/C5CC84"
    spec = card_spec("starter-spam")
    train, val, test = classify_splits(spec)
    split = c["trained_on"]["split"]
    assert [split[k] for k in ("train", "val", "test")] == [
        label_counts(p) for p in (train, val, test)
    ]
    # held out: a test message is in train only where the file itself holds it twice
    twice = {t for t, n in Counter(e.text for e in train + val + test).items() if n > 1}
    assert {e.text for e in test} & {e.text for e in train} <= twice and len(twice) <= 2
    model, tok = load_model("starter-spam"), load_tokenizer("starter-spam")
    want = c["test_balanced"]
    truth, preds = [e.label for e in test], predict_labels(model, tok, test)
    got = balanced_report(truth, preds, draws=want["draws"])
    assert got["confusion_matrix"] == want["confusion_matrix"]
    for key in ("accuracy", "precision", "recall", "f1", "macro_f1", "n"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    assert want["accuracy"] >= 0.96  # the goal on unseen real messages, equally many of each


def test_recipe_says_clearly_when_the_real_sms_are_missing(tmp_path, monkeypatch):
    from gpt.lab import recipes

    monkeypatch.setattr(recipes, "REAL_SMS", tmp_path.name + "/nowhere/sms-half.tsv")
    with pytest.raises(
        FileNotFoundError, match="trains on real SMS.*nowhere/sms-half.tsv.*missing"
    ):
        recipes.starter_spam(tmp_path / "out", tmp_path / "work")
    with pytest.raises(FileNotFoundError, match="nowhere/sms-half.tsv"):
        recipes.starter(tmp_path / "out", work_dir=tmp_path / "work")
    assert not (tmp_path / "work").exists()  # failed before any work


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
