"""Chat prompt formats (issue 19, part 2): each model is sent the format it was trained in, and
`format_losses` measures which format that is."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from gpt.config import STARTER_DIR
from gpt.lab import hubmodels
from gpt.lab.cards import hub_card
from gpt.lab.names import load_model, load_tokenizer
from gpt.lab.prompts import FORMATS, answer_ids, best_format, format_chat, format_losses, stops
from gpt.train.data import Instruction, format_prompt, read_instructions

REPO = STARTER_DIR.parent.parent
CHAT = STARTER_DIR / "starter-chat"


@pytest.fixture(scope="module")
def starter_chat():
    if not (CHAT / "config.json").is_file():
        pytest.skip("starter-chat is not installed under assets/models/")
    return load_model(CHAT).eval(), load_tokenizer(str(CHAT))


def test_each_format_lays_out_the_turns():
    turns = [("user", "Hi"), ("assistant", "Hello!")]
    assert format_chat("alpaca", " Add 2 and 3.\n") == format_prompt(Instruction("Add 2 and 3."))
    assert "### Input:\nUser: Hi\nAssistant: Hello!" in format_chat("alpaca", "And now?", turns)
    assert format_chat("dialogpt", "And now?", turns) == (
        "Hi<|endoftext|>Hello!<|endoftext|>And now?<|endoftext|>"
    )
    assert format_chat("plain", "And now?", turns) == (
        "User: Hi\nAssistant: Hello!\nUser: And now?\nAssistant:"
    )
    assert stops("alpaca") == ("### Instruction:", "### Input:", "### Response:")
    with pytest.raises(ValueError, match="unknown prompt format 'chatml'"):
        format_chat("chatml", "Hi")


def test_the_answer_loss_is_the_loss_at_the_answer_positions(starter_chat):
    model, tok = starter_chat
    example = Instruction("Give a synonym for fast.", "", "Quick.")
    for fmt in FORMATS:
        prompt, answer = answer_ids(fmt, example, tok)
        assert answer[-1] == tok.eot_token
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logits = model(ids[:, :-1])[0]  # (T-1, V): position t predicts token t+1
        want = F.cross_entropy(logits[len(prompt) - 1 :], ids[0, len(prompt) :]).item()
        got = format_losses(model, tok, [example], [fmt])[fmt]
        assert got == pytest.approx(want, rel=1e-5)


def test_the_measurement_names_the_format_a_model_was_trained_in(starter_chat):
    """starter-chat was instruction-tuned in the Alpaca prompt: on held-out instructions (our
    own, never trained on) the measurement must find that, by a clear margin."""
    model, tok = starter_chat
    held_out = read_instructions(REPO / "data" / "instructions" / "test.json")[:20]
    losses = format_losses(model, tok, held_out)
    assert set(losses) == set(FORMATS)
    assert best_format(losses) == "alpaca"
    assert min(v for k, v in losses.items() if k != "alpaca") > losses["alpaca"] + 0.5


def test_curated_chat_models_say_their_format_in_the_card():
    dialogpt = next(m for m in hubmodels.CURATED if m.prompt_format == "dialogpt")
    card = hub_card(dialogpt.repo, None, dialogpt.task)  # not downloaded: from the curated list
    assert dialogpt.task == "instruct"  # listed in the Chat tab
    assert (card.prompt_format, card.multi_turn) == ("dialogpt", True)
    alpaca = hub_card("vicgalle/gpt2-alpaca", None, "instruct")
    assert (alpaca.prompt_format, alpaca.multi_turn) == ("alpaca", False)
    assert hub_card("distilbert/distilgpt2", None, "lm").prompt_format is None


def test_the_chat_tab_sends_a_models_own_format(starter_chat, tmp_path, monkeypatch):
    """A chat model whose card says "dialogpt" gets its turns ended by <|endoftext|>, remembers
    them by default, and its prompt box says so."""
    pytest.importorskip("gradio")
    from gpt.lab.registry import ModelRegistry
    from pages import chat as chat_page
    from pages.common import models

    folder = tmp_path / "talker"
    shutil.copytree(CHAT, folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "prompt_format": "dialogpt",
                                                  "multi_turn": True}))  # fmt: skip
    reg = ModelRegistry(sources=[])
    reg.add("talker", folder)
    monkeypatch.setattr(models, "default_registry", lambda: reg)
    monkeypatch.setattr("gpt.lab.cards.default_registry", lambda: reg)
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert chat_page.format_of("talker") == "dialogpt" and chat_page.remember_default("talker")
    assert "dialogpt format" in chat_page.prompt_label("talker")
    outs = list(chat_page.chat("And now?", history, "talker", 0, 40, 0.9, 2, True))
    assert outs[-1][1] == "Hi<|endoftext|>Hello!<|endoftext|>And now?<|endoftext|>"
    outs = list(chat_page.chat("And now?", history, "talker", 0, 40, 0.9, 2, False))
    assert outs[-1][1] == "And now?<|endoftext|>"
    (folder / "card.json").write_text(json.dumps({**card, "prompt_format": "nonsense"}))
    assert chat_page.format_of("talker") == "alpaca"  # an unknown format: ours
