"""A short curated list of GPT-2-architecture hub repos and what each expects: its task and
its prompt format (a per-model setting). `gpt.lab.names` takes a curated repo's task from here
(the gpt2-alpaca fine-tunes are "instruct", although their config says only GPT2LMHeadModel).

Any other `org/name[@revision]` works too (typed into a picker, or `--base org/name`); its task
comes from its config.json (`GPT2ForSequenceClassification` is a classifier, anything else a
language model). The prompt formats are `gpt.lab.prompts`'s; `format_losses` there measures
which one a model expects (`bench/bench_prompt_formats.py`). DialoGPT is a chat model here
("instruct": the Chat tab lists it), in its own format, remembering earlier turns.

>>> curated("vicgalle/gpt2-alpaca").prompt_format
'alpaca'
>>> [m.repo for m in CURATED if m.task == "instruct"][:1]
['vicgalle/gpt2-alpaca']
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HubModel:
    """A curated hub repo: `repo`, `task` ("lm", "instruct", "classify"), `prompt_format`,
    one `description` line and its approximate download size in MB (for the label before the
    hub's metadata is read)."""

    repo: str
    task: str
    prompt_format: str
    description: str
    approx_mb: int


CURATED: tuple[HubModel, ...] = (
    HubModel("vicgalle/gpt2-alpaca", "instruct", "alpaca",
             "GPT-2 (124M) fine-tuned on the Alpaca instructions; Alpaca prompt", 510),
    HubModel("vicgalle/gpt2-alpaca-gpt4", "instruct", "alpaca",
             "GPT-2 (124M) fine-tuned on GPT-4's answers to the Alpaca instructions", 510),
    HubModel("distilbert/distilgpt2", "lm", "plain",
             "DistilGPT2: GPT-2 distilled to 6 layers (82M)", 353),
    HubModel("microsoft/DialoGPT-small", "instruct", "dialogpt",
             "DialoGPT small: GPT-2 (124M) trained on Reddit conversations", 351),
)
_BY_REPO = {m.repo: m for m in CURATED}


def curated(repo: str) -> HubModel | None:
    """The curated entry of `repo` (no revision), else None."""
    return _BY_REPO.get(repo)


def prompt_format(repo: str, task: str = "lm") -> str:
    """The prompt format a hub repo expects: the curated one, else "alpaca" for an instruct
    model, else "plain".

    >>> prompt_format("microsoft/DialoGPT-small"), prompt_format("org/any", "instruct")
    ('dialogpt', 'alpaca')
    """
    found = curated(repo)
    if found is not None:
        return found.prompt_format
    return "alpaca" if task == "instruct" else "plain"
