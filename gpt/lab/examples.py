"""A few training examples of a model: what "About the data" shows beside its card.

A card says what the data was in words ("data/sms/train.tsv: 2,520 SMS-like messages ...");
seeing three of the messages says more. The examples come from the files on this machine that
the card names: the bundled corpus, SMS and instructions (the starter models and jobs trained on
them), and the real SMS half beside the repository when it is there. Other data (GPT-2's WebText, an upload, a hub model's) is not here, and `examples_of`
returns no examples.

>>> from gpt.lab.cards import ModelCard
>>> card = ModelCard("starter-spam", "classify", "", "starter", data="data/sms/train.tsv: ...")
>>> [e.label for e in examples_of(card)]
['ham', 'ham', 'spam']
>>> examples_of(ModelCard("gpt2", "lm", "", "GPT-2", data="WebText: ..."))
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpt.lab.cards import ModelCard
from gpt.lab.runs import BUNDLED, REAL_SMS, REPO
from gpt.train import data as gdata

SNIPPET_CHARS = 280  # a story is cut to its first sentences


@dataclass(frozen=True)
class Example:
    """One training example: `text` (a story's start, a message, an instruction's prompt),
    with its `label` (classify) or the `answer` it was trained to give (instruct)."""

    text: str
    label: str | None = None
    answer: str | None = None


def data_file(card: ModelCard) -> Path | None:
    """The file the card's data names, when it is on this machine: a bundled file, or the real
    SMS half beside the repository (starter-spam's; CC BY 4.0, never in the repository)."""
    if card.task == "classify" and REAL_SMS.name in (card.data or "") and REAL_SMS.is_file():
        return REAL_SMS
    task = "lm" if card.task not in BUNDLED else card.task
    path = BUNDLED[task]["train"]
    name = path.relative_to(REPO).as_posix()  # as cards write it: data/sms/train.tsv
    if not (card.data or "").startswith(name) or not path.is_file():
        return None
    return path


def examples_of(card: ModelCard, n: int = 3) -> list[Example]:
    """`n` examples of the data the model was trained on (for classifiers, both labels: the
    first `n - 1` of the commoner one and one of the other); [] when that data is not here."""
    path = data_file(card)
    if path is None:
        return []
    if card.task == "classify":
        rows = gdata.read_spam(path)
        labels = sorted({r.label for r in rows}, key=lambda lab: -sum(r.label == lab for r in rows))
        picked = [r for r in rows if r.label == labels[0]][: n - 1]
        picked += [r for r in rows if r.label != labels[0]][: n - len(picked)]
        return [Example(r.text, label=r.label_name) for r in picked]
    if card.task == "instruct":
        items = gdata.read_instructions(path)[:n]
        return [Example(_ask(i), answer=i.output) for i in items]
    stories = [s.strip() for s in gdata.read_text(path).split("<|endoftext|>") if s.strip()]
    return [Example(_snippet(s)) for s in stories[:n]]


def _ask(item: gdata.Instruction) -> str:
    """An instruction and its input, as a person reads them (the model reads them wrapped in
    the Alpaca prompt)."""
    return item.instruction + (f"\n\n{item.input}" if item.input else "")


def _snippet(text: str) -> str:
    """The first sentences of `text`, up to about SNIPPET_CHARS characters.

    >>> _snippet("One. Two. " + "x" * 400).endswith("…")
    True
    """
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(". ", 0, SNIPPET_CHARS)
    return text[: cut + 1] + " …" if cut > 0 else text[:SNIPPET_CHARS] + "…"
