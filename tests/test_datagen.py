"""Tests for the bundled-data generators in ``datagen`` and the committed files in ``data/``."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

import datagen
from datagen import instructions, sms, stories, world
from datagen.templates import article_for, fill

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    """One in-process generation of every file, shared by the tests below."""
    return datagen.render_all()


# --- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "article"),
    [("owl", "an"), ("fox", "a"), ("hour", "an"), ("unicorn", "a"), ("umbrella", "an"),
     ("egg", "an"), ("one", "a")],
)
def test_article_for(word, article):
    assert article_for(word) == article


def test_fill_resolves_choices_slots_and_articles():
    out = fill("[A|A] {Who} saw a(n) {what}.", random.Random(0), {"who": "pip", "what": "owl"})
    assert out == "A Pip saw an owl."


# --- determinism ------------------------------------------------------------------------------


def test_generators_are_deterministic():
    a = stories.generate_corpus(seed=5, target_bytes=50_000).text
    b = stories.generate_corpus(seed=5, target_bytes=50_000).text
    assert a == b
    assert sms.generate_splits(seed=5, n=400) == sms.generate_splits(seed=5, n=400)
    assert instructions.generate_splits(5, n_per_task=8) == instructions.generate_splits(
        5, n_per_task=8
    )
    assert stories.generate_corpus(seed=6, target_bytes=50_000).text != a


def test_committed_files_equal_a_fresh_generation(fresh, tmp_path, monkeypatch):
    calls = []  # write_all renders through render_all: the module's one generation, reused
    monkeypatch.setattr(datagen, "render_all", lambda seed: calls.append(seed) or fresh)
    sizes = datagen.write_all(tmp_path)
    assert calls == [datagen.DEFAULT_SEED]
    assert set(sizes) == set(fresh)
    for rel, text in fresh.items():
        written = (tmp_path / rel).read_bytes()
        assert written == text.encode("utf-8")
        committed = DATA / rel
        assert committed.exists(), f"{rel} missing: run `python -m datagen`"
        assert committed.read_bytes() == written, f"{rel} is stale: run `python -m datagen`"


# --- stories ----------------------------------------------------------------------------------


def test_corpus_size_and_separators(fresh):
    text = fresh["corpus/stories.txt"]
    size = len(text.encode("utf-8"))
    assert 1_000_000 <= size < 5_000_000
    parts = text.split(f"\n\n{stories.SEPARATOR}\n")
    assert len(parts) > 1000
    assert all(p.strip() and "\n\n" not in p for p in parts)
    marker_lines = [line for line in text.splitlines() if stories.SEPARATOR in line]
    assert all(line == stories.SEPARATOR for line in marker_lines)
    assert len(marker_lines) == len(parts) - 1


def test_corpus_has_few_duplicate_sentences(fresh):
    assert stories.duplicate_sentence_fraction(fresh["corpus/stories.txt"]) < 0.20


def test_corpus_text_is_tidy(fresh):
    text = fresh["corpus/stories.txt"]
    for bad in ("{", "}", "[", "]", "a(n)", "  ", " ,", " .", "..", "a apple", "an fox"):
        assert bad not in text, bad
    for para in text.splitlines():
        if para and para != stories.SEPARATOR:
            assert para[0].isupper() or para[0] == '"', para[:40]
            assert para.rstrip()[-1] in '.!?"', para[-40:]


def test_summary_follows_the_plot():
    for seed in range(30):
        story = stories.make_story(random.Random(seed))
        assert story.plot.hero.name in story.summary
        assert story.plot.hero.name in story.text
        assert story.summary[0].isupper() and story.summary.endswith(".")


def test_split_sentences_keeps_dialogue_with_its_speaker():
    assert stories.split_sentences('"Hi. Look!" said Pip. It rained.') == [
        '"Hi. Look!" said Pip.',
        "It rained.",
    ]


# --- sms --------------------------------------------------------------------------------------


def _read_tsv(text: str) -> list[tuple[str, str]]:
    rows = []
    for line in text.splitlines():
        cols = line.split("\t")
        assert len(cols) == 2, line
        rows.append((cols[0], cols[1]))
    return rows


def test_sms_files_parse(fresh):
    splits = {name: _read_tsv(fresh[f"sms/{name}.tsv"]) for name in ("train", "val", "test")}
    total = sum(len(rows) for rows in splits.values())
    assert total >= 2000
    for name, rows in splits.items():
        assert rows, name
        for label, text in rows:
            assert label in ("ham", "spam")
            assert text and text == text.strip() and "\n" not in text and "\r" not in text
    texts = [text.lower() for rows in splits.values() for _, text in rows]
    assert len(texts) == len(set(texts)), "duplicate messages across or within splits"


def test_sms_proportions_and_stratified_split(fresh):
    splits = {name: _read_tsv(fresh[f"sms/{name}.tsv"]) for name in ("train", "val", "test")}
    total = sum(len(rows) for rows in splits.values())
    for name, frac in sms.SPLITS:
        rows = splits[name]
        assert abs(len(rows) / total - frac) < 0.01
        spam = sum(label == "spam" for label, _ in rows) / len(rows)
        assert 0.12 <= spam <= 0.16, (name, spam)


def test_sms_has_texting_style_and_hard_cases():
    rows = sms.generate_messages(seed=9, n=1500)
    ham = [t for label, t in rows if label == "ham"]
    spam = [t for label, t in rows if label == "spam"]
    assert any(len(t.split()) == 1 for t in ham)
    assert sum(" u " in f" {t} " or " ur " in f" {t} " for t in ham) > 20
    assert any("£" in t or "$" in t for t in ham)  # innocent money
    assert any("http" in t for t in ham)  # innocent link
    assert sum("STOP" in t.upper() for t in spam) > 10
    assert any(t.isupper() for t in spam) and any(t.islower() for t in spam)


# --- instructions -----------------------------------------------------------------------------


def test_instruction_files_have_the_alpaca_keys(fresh):
    total = 0
    for name, _ in instructions.SPLITS:
        records = json.loads(fresh[f"instructions/{name}.json"])
        assert isinstance(records, list) and records
        for rec in records:
            assert set(rec) == {"instruction", "input", "output"}
            assert all(isinstance(v, str) for v in rec.values())
            assert rec["instruction"].strip() and rec["output"].strip()
        total += len(records)
    assert total >= 1000


def test_instruction_splits_are_stratified_and_disjoint():
    splits = instructions.generate_splits(seed=datagen.DEFAULT_SEED + 2)
    total = sum(len(v) for v in splits.values())
    for name, frac in instructions.SPLITS:
        assert abs(len(splits[name]) / total - frac) < 0.01
        tasks = Counter(task for task, _ in splits[name])
        assert set(tasks) == set(instructions.TASKS), name
    keys = [(r["instruction"], r["input"]) for items in splits.values() for _, r in items]
    assert len(keys) == len(set(keys))


def test_instruction_answers_are_correct():
    items = instructions.generate(seed=11, n_per_task=40)
    for task, rec in items:
        inp, out = rec["input"], rec["output"]
        if task == "reverse_word" and inp:
            assert out == inp[::-1]
        elif task == "count_words":
            assert out == f"There are {len(inp.split())} words."
        elif task == "alphabetical_sort":
            assert out.split(", ") == sorted(inp.split(", "))
        elif task == "arithmetic" and inp:
            a, op, b = inp.split()
            expect = {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op]
            assert out == f"{inp} = {expect}"
        elif task == "capitalisation" and "uppercase" in rec["instruction"]:
            assert out == inp.upper()


def test_world_answers_agree_with_world():
    items = instructions.generate(seed=3, n_per_task=60)
    for task, rec in items:
        if task != "world_facts":
            continue
        q, out = rec["instruction"], rec["output"]
        for c in world.CHARACTERS:
            if q.startswith(f"Where does {c.name} the {c.kind} live"):
                assert c.home in out


def test_spam_task_avoids_the_sms_set(fresh):
    sms_texts = {
        line.split("\t")[1].lower()
        for name in ("train", "val", "test")
        for line in fresh[f"sms/{name}.tsv"].splitlines()
    }
    for name, _ in instructions.SPLITS:
        for rec in json.loads(fresh[f"instructions/{name}.json"]):
            assert rec["input"].lower() not in sms_texts
