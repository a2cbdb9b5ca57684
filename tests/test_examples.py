"""'About the data': a few training examples of a model, from the file its card names."""

from __future__ import annotations

from gpt.lab.cards import ModelCard
from gpt.lab.examples import examples_of
from gpt.lab.runs import BUNDLED
from gpt.train import data as gdata
from pages.common.models import card_of, data_markdown


def test_a_classifier_trained_on_the_bundled_sms_shows_both_labels_from_that_file():
    card = ModelCard("job:1", "classify", "", "job", data="data/sms/train.tsv: 2,520 messages")
    got = examples_of(card)
    rows = gdata.read_spam(BUNDLED["classify"]["train"])
    assert {e.label for e in got} == {"ham", "spam"} and len(got) == 3
    assert all(any(r.text == e.text and r.label_name == e.label for r in rows) for e in got)


def test_instructions_show_the_task_and_the_answer_it_was_trained_to_give():
    card = ModelCard("x", "instruct", "", "job", data="data/instructions/train.json: 1,265 ...")
    first = gdata.read_instructions(BUNDLED["instruct"]["train"])[0]
    got = examples_of(card)[0]
    assert got.text.startswith(first.instruction) and got.answer == first.output


def test_the_starter_shows_story_openings_and_gpt2_says_its_data_is_not_here():
    stories = examples_of(card_of("starter"))
    corpus = gdata.read_text(BUNDLED["lm"]["train"])
    assert len(stories) == 3 and all(s.text.rstrip(" …") in corpus for s in stories)
    gpt2 = ModelCard("gpt2", "lm", "", "GPT-2", data="WebText: 8 million web pages")
    assert examples_of(gpt2) == []
    assert "not on this machine" in data_markdown(gpt2)
    shown = data_markdown(card_of("starter"))
    assert "three training examples" in shown and stories[0].text[:40] in shown


def test_a_card_naming_a_file_that_is_not_bundled_shows_nothing():
    upload = ModelCard("job:2", "classify", "", "job", data="the file my-sms.tsv (40 examples)")
    assert examples_of(upload) == []
