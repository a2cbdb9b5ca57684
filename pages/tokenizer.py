"""Tokenizer tab: text in, coloured tokens with their ids and counts out."""

from __future__ import annotations

import gradio as gr

from gpt.tokenizer import gpt2_tokenizer

MAX_CHARS = 100_000


def tokenize(text: str) -> tuple[list[tuple[str, str]], str]:
    """Tokens as (text, id) pairs for `gr.HighlightedText`, and a counts line."""
    if len(text) > MAX_CHARS:
        raise gr.Error(f"Text is {len(text):,} characters; the limit is {MAX_CHARS:,}. Shorten it.")
    tok = gpt2_tokenizer()
    ids = tok.encode(text)
    pieces = [
        (tok.token_bytes(i).decode("utf-8", "replace").replace(" ", "·"), str(i)) for i in ids
    ]
    n_bytes = len(text.encode("utf-8"))
    return pieces, f"**{len(ids)}** tokens · **{len(text)}** characters · **{n_bytes}** bytes"


def build() -> None:
    with gr.Tab("Tokenizer"):
        text = gr.Textbox(
            label="Text",
            value="GPT-2 reads text as tokens, not letters! 🙂",
            lines=4,
            elem_id="tok-text",
        )
        counts = gr.Markdown(elem_id="tok-counts")
        tokens = gr.HighlightedText(
            label="Tokens (label = token id; · is a space)", elem_id="tok-out"
        )
        text.change(tokenize, text, [tokens, counts], api_name="tokenize")
