"""GPT-2 Lab: see and steer every part of GPT-2. `python app.py` serves it on 127.0.0.1.

`app.py` only composes the tabs in `pages/`; it honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

from __future__ import annotations

import gradio as gr

from pages import tokenizer


def build_app() -> gr.Blocks:
    with gr.Blocks(title="GPT-2 Lab") as demo:
        gr.Markdown("# GPT-2 Lab\nA GPT-2 built from scratch: see and steer every part of it.")
        tokenizer.build()
    return demo


if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=2).launch()
