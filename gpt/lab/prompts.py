"""Chat prompt formats, and how to measure which one a model expects.

A chat model answers best in the prompt layout it was trained on. Three formats:

- "alpaca": the Alpaca template (`gpt.train.data.format_prompt`): preamble, `### Instruction:`,
  the earlier turns (if any) as a transcript in `### Input:`, `### Response:`. Our own chat
  models and the gpt2-alpaca fine-tunes were trained in it.
- "dialogpt": DialoGPT's turns, each ended by `<|endoftext|>`; the reply follows the last one.
- "plain": "User: ..." / "Assistant: ..." lines, the reply after a last "Assistant:".

`format_losses` measures the fit: the mean loss per token of reference answers (our own
instructions, `data/instructions/`) after each format's prompt. The format with the lowest loss
is the one the model expects (`bench/bench_prompt_formats.py` runs it for the chat models).

>>> format_chat("dialogpt", "How are you?", [("user", "Hi"), ("assistant", "Hello!")])
'Hi<|endoftext|>Hello!<|endoftext|>How are you?<|endoftext|>'
>>> format_chat("plain", "Say hi.")
'User: Say hi.\\nAssistant:'
>>> stops("plain")
('\\nUser:',)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from gpt.train.data import Instruction, format_prompt

FORMATS = ("alpaca", "dialogpt", "plain")
EOT = "<|endoftext|>"
Turn = tuple[str, str]  # (role, text): role "user" or "assistant"
_STOPS = {
    "alpaca": ("### Instruction:", "### Input:", "### Response:"),
    "dialogpt": (),  # the reply ends at <|endoftext|>
    "plain": ("\nUser:",),
}


def transcript(turns: Iterable[Turn]) -> str:
    """Earlier turns as "User: ..." / "Assistant: ..." lines.

    >>> transcript([("user", "Hi"), ("assistant", "Hello!")])
    'User: Hi\\nAssistant: Hello!'
    """
    return "\n".join(f"{'User' if r == 'user' else 'Assistant'}: {t.strip()}" for r, t in turns)


def format_chat(fmt: str, message: str, turns: Sequence[Turn] = ()) -> str:
    """The prompt asking for a reply to `message` after the earlier `turns`, in format `fmt`."""
    stops(fmt)  # a known format
    message = message.strip()
    if fmt == "alpaca":
        return format_prompt(Instruction(message, transcript(turns)))
    if fmt == "dialogpt":
        return "".join(f"{text.strip()}{EOT}" for _, text in turns) + f"{message}{EOT}"
    before = transcript(turns)  # "plain"
    return (before + "\n" if before else "") + f"User: {message}\nAssistant:"


def stops(fmt: str) -> tuple[str, ...]:
    """The strings that end a reply in format `fmt` (a model starting the next turn)."""
    if fmt not in _STOPS:
        raise ValueError(f"unknown prompt format {fmt!r}; known: {', '.join(FORMATS)}")
    return _STOPS[fmt]


def answer_ids(fmt: str, example: Instruction, tokenizer: Any) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of `example` in `fmt`: the answer as the model should write it
    (the plain format puts a space after "Assistant:"), then `<|endoftext|>`."""
    question = example.instruction + (f"\n\n{example.input}" if example.input else "")
    prompt = tokenizer.encode(format_chat(fmt, question))
    answer = (" " if fmt == "plain" else "") + example.output
    return prompt, tokenizer.encode(answer, allowed_special="none") + [tokenizer.eot_token]


@torch.no_grad()
def format_losses(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Instruction],
    formats: Iterable[str] = FORMATS,
) -> dict[str, float]:
    """Each format's mean loss per answer token (nats) of `examples`' reference answers: lower
    means the model expects that format more. Sequences past the model's context keep their
    end (all of the answer, the prompt cut from the left).

    A model trained in one format gives it the lowest loss (tests: starter-chat, "alpaca").
    """
    context = model.config.block_size
    device = next(model.parameters()).device
    out = {}
    for fmt in formats:
        total, count = 0.0, 0
        for example in examples:
            prompt, answer = answer_ids(fmt, example, tokenizer)
            ids = (prompt + answer)[-(context + 1) :]
            answer = answer[-(len(ids) - 1) :]
            x = torch.tensor([ids[:-1]], device=device)  # (1, T)
            logits = model(x)[0, -len(answer) :]  # (A, V): the positions predicting the answer
            target = torch.tensor(answer, device=device)
            total += F.cross_entropy(logits.float(), target, reduction="sum").item()
            count += len(answer)
        out[fmt] = total / count if count else math.nan
    return out


def best_format(losses: dict[str, float]) -> str:
    """The format with the lowest loss.

    >>> best_format({"alpaca": 1.2, "plain": 2.5})
    'alpaca'
    """
    return min(losses, key=lambda fmt: losses[fmt])
