"""The Chat tab's prompts: single-turn like training by default, earlier turns only on request.

The starter chat model was tuned on one Alpaca record per prompt (`gpt.train.data`), so a chat turn
must send exactly the prompt training built for the same instruction: same text, same tokens.
"""

from __future__ import annotations

import pytest

from gpt.config import STARTER_DIR
from gpt.lab.names import load_tokenizer
from gpt.lab.runs import BUNDLED
from gpt.train.data import Instruction, InstructionDataset, format_prompt, read_instructions

pytest.importorskip("gradio")
from pages import chat as chat_page  # noqa: E402

pytestmark = pytest.mark.slow  # the Chat tab's turns, each a generation with starter-chat

CHAT_MODEL = "starter-chat"
HISTORY = [
    {"role": "user", "content": "Is a robin a mammal, a bird or a fish?"},
    {"role": "assistant", "content": "A robin is a bird."},
]


@pytest.fixture(scope="module")
def tok():
    if not (STARTER_DIR / CHAT_MODEL / "config.json").is_file():
        pytest.skip("starter-chat is not installed under assets/models/")
    return load_tokenizer(str(STARTER_DIR / CHAT_MODEL))


def turn(message: str, history: list[dict], remember: bool) -> str:
    """The prompt one chat turn sends (the last one the tab shows), greedy, 2 new tokens."""
    outs = list(chat_page.chat(message, history, CHAT_MODEL, 0, 40, 0.9, 2, remember))
    return outs[-1][1]


def test_single_turn_prompt_is_trainings_prompt(tok):
    records = [r for r in read_instructions(BUNDLED["instruct"]["test"]) if not r.input][:12]
    assert len(records) == 12
    data = InstructionDataset(records, tok, context=256)
    for i, record in enumerate(records):
        sent = turn(record.instruction, HISTORY, remember=False)
        assert sent == format_prompt(Instruction(record.instruction))
        ids, prompt_length = data[i]  # what training fed the model before the response
        assert tok.encode(sent) == ids[:prompt_length].tolist()
        assert "robin" not in sent


def test_remember_puts_earlier_turns_in_the_input_section(tok):
    sent = turn("Where does Pip the fox live?", HISTORY, remember=True)
    assert sent == format_prompt(
        Instruction(
            "Where does Pip the fox live?",
            "User: Is a robin a mammal, a bird or a fish?\nAssistant: A robin is a bird.",
        )
    )
    assert turn("Where does Pip the fox live?", [], remember=True) == format_prompt(
        Instruction("Where does Pip the fox live?")
    )


def test_remember_trims_the_oldest_turns_to_fit(tok):
    history = [{"role": "user", "content": f"old turn {i} " + "word " * 30} for i in range(20)]
    prompt = chat_page.fit_prompt_note("Hi.", history, tok, budget=200, remember=True)[0]
    assert len(tok.encode(prompt)) <= 200
    assert "old turn 19" in prompt and "old turn 0 " not in prompt
    assert chat_page.fit_prompt_note("Hi.", history, tok, 200, remember=False)[0] == format_prompt(
        Instruction("Hi.")
    )


def test_our_chat_models_default_to_single_turn(tok):
    assert chat_page.remember_default(CHAT_MODEL) is False
    assert chat_page.remember_default(None) is False
    assert chat_page.remember_default("no-such-model") is False


def test_the_stream_reads_exactly_the_prompt_shown(tok, monkeypatch):
    seen = []
    real = chat_page.stream

    def spy(model, tokenizer, prompt, **kw):
        seen.append(prompt)
        return real(model, tokenizer, prompt, **kw)

    monkeypatch.setattr(chat_page, "stream", spy)
    shown = turn("Reverse the letters of the word shout.", HISTORY, remember=False)
    assert seen == [shown]


def test_new_chat_empties_the_conversation():
    shown, state, value, prompt = chat_page.new_chat()
    assert shown == state == value == []
    assert prompt == format_prompt(Instruction("(your message)"))


def test_chat_prompt_ignores_surrounding_whitespace_like_training_data():
    assert chat_page.chat_prompt("  Say hi.\n") == format_prompt(Instruction("Say hi."))


def test_trimming_turns_is_said(tok):
    history = [{"role": "user", "content": f"old turn {i} " + "word " * 30} for i in range(20)]
    prompt, note = chat_page.fit_prompt_note("Hi.", history, tok, budget=200, remember=True)
    kept = sum(f"old turn {i} " in prompt for i in range(20))
    assert note.startswith(f"Left out the {20 - kept} oldest turns of the conversation")
    assert chat_page.fit_prompt_note("Hi.", history[:1], tok, 200, remember=True)[1] == ""


def test_one_dropped_turn_and_a_message_too_long_read_right(tok):
    turn = [{"role": "user", "content": "old turn " + "word " * 60}]
    _, note = chat_page.fit_prompt_note("Hi.", turn, tok, budget=60, remember=True)
    assert note.startswith("Left out the oldest turn of the conversation")
    long = "word " * 100
    _, note = chat_page.fit_prompt_note(long, turn, tok, budget=60, remember=True)
    assert note.startswith("Left out the earlier turn. The prompt is")
    assert "the reply gets less room" in note
