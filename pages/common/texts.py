"""Default texts that fit the picked model.

The starter models were trained on the bundled stories (data/corpus: Lottie the heron, Otto the
owl, the river Sable ...) and know little else: on "The cat sat on the mat" the starter's
perplexity is 2,543, and every view looks broken. On a sentence from its own world it is about
10. GPT-2 and the hub models read ordinary English. So each tab keeps one default text per
*world*, and swaps it when the picked model changes world, unless the visitor wrote their own.

>>> world("starter-spam"), world("gpt2")
('starter', 'english')
>>> text_for("attention", "gpt2").startswith("The cat")
True
>>> follow("attention", text_for("attention", "gpt2"), "starter") == text_for("attention", "starter")
True
>>> follow("attention", "my own words", "starter") == gr.skip()  # the visitor's text stays
True
"""

from __future__ import annotations

from typing import Literal

import gradio as gr

World = Literal["starter", "english"]

# "it" is the porridge: a head that links them is worth finding
PORRIDGE = ("Lottie made porridge, but Hollis was too ill to eat it. Then Lottie went to the bank "
            "of the river Sable and found fresh mint.")
TEXTS: dict[str, dict[World, str]] = {
    "attention": {
        "starter": PORRIDGE,
        "english": "The cat sat on the mat because it was tired. Then the cat fell asleep, and the "
        "mat stayed warm all night.",
    },
    "inside": {
        "starter": PORRIDGE,
        "english": "The cat sat on the mat because it was tired. Then the cat fell asleep on the "
        "mat.",
    },
    "walk": {
        "starter": "Everyone in the valley knew Lottie, the sensible heron who lived on the bank "
        "of the river",
        "english": "The cat sat on the mat because it was tired. Then the cat",
    },
    # Inside's activation patching: two prompts of the same token count, one word apart
    "patch-clean": {
        "starter": "Lottie spent most days near Glimmer Lake, where she could see",
        "english": "The Eiffel Tower is in",
    },
    "patch-corrupt": {
        "starter": "Lottie spent most days near Mossy Bridge, where she could see",
        "english": "The Colosseum is in",
    },
    "generate": {
        "starter": "Everyone in the valley knew Otto the owl, who",
        "english": "Once upon a time, in a small village by the sea,",
    },
}

# Generate's examples: (prompt, temperature, top-k, top-p, repetition penalty, max new, seed)
GENERATE_EXAMPLES: dict[World, list[list]] = {
    "starter": [
        ["Everyone in the valley knew Otto the owl, who", 0.8, 40, 0.95, 1.1, 60, 0],
        ["Once upon a time, in a small village by the sea,", 0.0, 0, 1.0, 1.0, 40, -1],  # greedy
        ["Moss the tortoise was kind, but he was also rather", 1.3, 0, 0.9, 1.3, 60, 7],
    ],
    "english": [
        ["Once upon a time, in a small village by the sea,", 0.8, 40, 0.95, 1.1, 60, 0],
        ["The robot looked at the garden and said", 0.0, 0, 1.0, 1.0, 40, -1],  # greedy
        ["Tom and Lily went to the market to buy", 1.3, 0, 0.9, 1.3, 60, 7],
    ],
}


def world(model_name: str | None) -> World:
    """"starter" for the starter models and models fine-tuned from them, else "english"."""
    if not model_name:
        from gpt.lab.registry import default_registry

        model_name = default_registry().default(("lm",)) or ""
    if model_name.startswith("starter"):
        return "starter"
    from pages.common.models import card_of  # a job's card names its base

    card = card_of(model_name)
    base = (card.base or "") if card else ""
    return "starter" if base.startswith("starter") else "english"


def text_for(page: str, model_name: str | None = None) -> str:
    """`page`'s default text for `model_name` (None: the app's default model)."""
    return TEXTS[page][world(model_name)]


def follow(page: str, current: str | None, model_name: str | None):
    """The text box after the model changed: the new model's default text when the box holds a
    default (of either world) or nothing; the visitor's own text is never replaced."""
    if (current or "").strip() and current not in TEXTS[page].values():
        return gr.skip()
    new = text_for(page, model_name)
    # the same text: no update at all, so none can land after the visitor started typing
    return gr.skip() if new == current else new
