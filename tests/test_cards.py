"""Model cards: built from what each kind of model has on disk, rendered by the one helper.

Starter cards are checked against their card.json, GPT-2 cards against the model presets
(no weights needed), a job's card against a real tiny job's metrics, and broken or missing
card files must give a smaller card, never an error.
"""

from __future__ import annotations

import json

import pytest

import gpt
from gpt.config import HUB_IDS, PRESETS, STARTER_DIR, STARTER_MODELS
from gpt.jobs import JobManager
from gpt.lab.cards import card_for_entry, describe_data, gpt2_card, model_card
from gpt.lab.registry import (
    ModelRegistry,
    add_job_models,
    extra_source,
    folder_entry,
    starter_source,
)

pytest.importorskip("gradio")
from pages.common.models import card_markdown  # noqa: E402

TINY = gpt.GPTConfig(vocab_size=300, block_size=64, n_layer=1, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def starters():
    reg = ModelRegistry(sources=[starter_source])
    if reg.names() != list(STARTER_MODELS):
        pytest.skip("the starter models are not installed under assets/models/")
    return reg


@pytest.mark.parametrize("name", STARTER_MODELS)
def test_starter_card_reports_its_card_json(starters, name):
    raw = json.loads((STARTER_DIR / name / "card.json").read_text(encoding="utf-8"))
    entry = starters.entry(name)
    card = model_card(name, starters)
    assert card.name == name and card.task == entry.task and card.source == "starter"
    assert card.parameters == entry.n_params == PRESETS["mini"].n_params()
    shown = {m.label: m.value for m in card.metrics}
    labels = {"lm": "perplexity", "classify": "accuracy", "instruct": "ROUGE-L F1"}
    key = {"lm": "test_ppl", "classify": "test_accuracy", "instruct": "test_rouge_l_f1"}
    assert shown[labels[entry.task]] == raw["test"][key[entry.task]]
    assert card.limits and card.data and card.training and not card.multi_turn
    text = card_markdown(card)
    assert text.startswith(f"**{name}**") and "**Limits**" in text
    assert f"{card.parameters / 1e6:.1f}M parameters" in text
    assert "Held-out results" in text and card.metrics[0].text in text
    if "untuned_starter_test" in raw:  # starter-chat: the base's scores before tuning
        assert card.baseline[0].value == raw["untuned_starter_test"]["test_rouge_l_f1"]
        assert f"Before fine-tuning (starter):** ROUGE-L F1 {card.baseline[0].text}" in text


def test_bundled_spam_card_says_templated_data(starters):
    raw = json.loads((STARTER_DIR / "starter-spam" / "card.json").read_text(encoding="utf-8"))
    card = model_card("starter-spam", starters)
    if raw.get("data", {}).get("data") == "bundled" and "limits" not in raw:
        assert "templated" in card.limits[0]
        assert "2,520" in card.data and "data/sms/train.tsv" in card.data
        assert "1 ham called spam, 0 spam missed" in card.metrics_on
    assert "a 2-class head: ham / spam" in card.architecture


@pytest.mark.parametrize("size", list(HUB_IDS))
def test_gpt2_card_from_facts_without_weights(size):
    empty = ModelRegistry(sources=[])
    card = model_card(size, empty)  # not listed, no weights anywhere: still a card
    assert card == gpt2_card(size)
    cfg = PRESETS[size]
    assert card.parameters == cfg.n_params()
    text = card_markdown(card)
    for fact in ("OpenAI", "2019", "WebText", "40 GB", "Reddit", "context 1024", "50,257"):
        assert fact in text, fact
    assert f"{cfg.n_layer} layers" in text
    assert "instruction" in card.limits[0] and "offensive" in card.limits[1]
    assert [m.label for m in card.metrics] == ["LAMBADA accuracy", "WikiText-103 perplexity"]


def test_gpt2_card_values_are_the_papers_table_3():
    assert [gpt2_card(s).metrics[0].text for s in HUB_IDS] == ["46.0%", "55.5%", "60.1%", "63.2%"]
    assert gpt2_card("gpt2").metrics[1].value == 37.50
    with pytest.raises(ValueError, match="unknown GPT-2 size"):
        gpt2_card("gpt3")


@pytest.mark.slow  # a real job: a worker process trains a tiny classifier for 4 steps
def test_job_model_card_from_its_spec_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2LAB_JOB_THREADS", "1")
    tok = gpt.Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256})
    tok.save(tmp_path / "tok.json")
    rows = [
        f"spam\tWIN a free prize now, call {i}" if i % 3 == 0 else f"ham\tsee you at lunch {i}"
        for i in range(40)
    ]
    (tmp_path / "sms.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    spec = {
        "kind": "classify",
        "base": "preset:tiny",
        "tokenizer": str(tmp_path / "tok.json"),
        "data": str(tmp_path / "sms.tsv"),
        "method": "full",
        "max_steps": 4,
        "batch_size": 4,
        "eval_every": 2,
    }
    with JobManager(tmp_path / "jobs") as jobs:
        job_id = jobs.submit(spec)
        status = jobs.wait(job_id, timeout=60)
        assert status.state == "succeeded", status.error
        reg = ModelRegistry(sources=[])
        add_job_models(reg, jobs)
        card = model_card(f"job:{job_id}", reg)
    metrics = json.loads(
        (tmp_path / "jobs" / job_id / "out" / "metrics.json").read_text(encoding="utf-8")
    )
    assert card.source == "job" and card.task == "classify" and job_id in card.summary
    assert card.parameters == metrics["parameters"]
    shown = {m.label: m.value for m in card.metrics}
    assert shown["accuracy"] == metrics["test"]["test_accuracy"]
    assert "4 steps" in card.training and "full fine-tuning of preset:tiny" in card.training
    n = metrics["data"]["train_examples"]
    assert card.data == f"the file sms.tsv ({n} training examples)"
    assert card.limits[0] == f"Trained on {n} messages from sms.tsv: trust it only on similar text."
    text = card_markdown(card)
    assert f"job {job_id}" in text and "accuracy **" in text


def test_folder_without_card_gets_a_minimal_one(tmp_path, monkeypatch):
    folder = gpt.save_checkpoint(tmp_path / "bare", gpt.GPT(TINY), tokenizer="gpt2")
    monkeypatch.setenv("GPT2LAB_EXTRA_MODELS", str(folder))
    reg = ModelRegistry(sources=[extra_source])
    card = model_card("bare", reg)
    assert card.source == "checkpoint" and card.task == "lm"
    assert card.parameters == TINY.n_params() and card.metrics == () and card.data is None
    assert card.architecture == "GPT-2, 1 layers, 2 heads, 16 wide, context 64"
    text = card_markdown(card)
    assert "none recorded" in text and str(folder.resolve()) in text


@pytest.mark.parametrize(
    "card_text",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"test": "oops", "data": 3, "limits": 5, "spec": [], "steps": "x"}),
        json.dumps({"test": {"test_accuracy": "high", "test_confusion_matrix": [1]}}),
    ],
)
def test_broken_card_json_never_crashes(tmp_path, card_text):
    folder = gpt.save_checkpoint(tmp_path / "odd", gpt.GPT(TINY), task="instruct", tokenizer="gpt2")
    (folder / "card.json").write_text(card_text, encoding="utf-8")
    card = card_for_entry(folder_entry("odd", folder, "extra"))
    assert card.name == "odd" and card.task == "instruct" and card.metrics == ()
    assert "**odd**" in card_markdown(card)


def test_card_json_words_win_and_missing_fields_are_omitted(tmp_path):
    folder = gpt.save_checkpoint(
        tmp_path / "real", gpt.GPT(TINY), task="classify", tokenizer="gpt2"
    )
    (folder / "card.json").write_text(
        json.dumps(
            {
                "summary": "Spam filter tuned on real SMS.",
                "data": {"data": "/x/sms-spam-collection/sms-half.tsv", "train_examples": 2000},
                "test": {"test_accuracy": 0.98},
                "multi_turn": True,
            }
        ),
        encoding="utf-8",
    )
    card = card_for_entry(folder_entry("real", folder, "extra"))
    assert card.summary == "Spam filter tuned on real SMS." and card.multi_turn
    assert card.limits[0].startswith("Trained on 2,000 real SMS from the UCI SMS Spam Collection")
    assert [m.text for m in card.metrics] == ["98.0%"] and card.base is None
    text = card_markdown(card)
    assert "Fine-tuned from" not in text and "Training:" not in text
    record = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    record["limits"] = ["Trained on 2k real SMS from the UCI collection."]
    (folder / "card.json").write_text(json.dumps(record), encoding="utf-8")
    card = card_for_entry(folder_entry("real", folder, "extra"))
    assert card.limits[0] == "Trained on 2k real SMS from the UCI collection."


@pytest.mark.parametrize(
    ("task", "data", "expected"),
    [
        ("classify", {"data": "sms-spam", "train_examples": 3900}, "3,900 real SMS from the UCI"),
        ("instruct", {"data": "alpaca"}, "single-turn"),
        ("lm", {"file": "/a/b/my_text.txt"}, "Knows only the text of my_text.txt."),
        ("instruct", {"data": "bundled", "train_examples": 9}, "invented world"),
    ],
)
def test_data_limits(task, data, expected):
    assert expected in describe_data(task, data)[1]


def test_card_markdown_of_nothing():
    assert "not in the model list" in card_markdown(None, "ghost")
    assert card_markdown(None) == "No model is picked."


def test_card_text_cannot_inject_html(tmp_path):
    folder = gpt.save_checkpoint(tmp_path / "x", gpt.GPT(TINY), tokenizer="gpt2")
    (folder / "card.json").write_text(json.dumps({"summary": "<script>x</script>"}), "utf-8")
    text = card_markdown(card_for_entry(folder_entry("x", folder, "extra")))
    assert "<script>" not in text and "&lt;script&gt;" in text
