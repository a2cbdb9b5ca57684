"""GPT-2 Lab: see and steer every part of GPT-2. `python app.py` serves it on 127.0.0.1.

`app.py` only composes the tabs in `pages/`; it honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

from __future__ import annotations

import gradio as gr

from pages import attention, chat, classify, generation, tokenizer
from pages.common import CSS

# What `launch()` needs besides the Blocks: the page CSS and the server-side upload cap.
LAUNCH_KWARGS = {"css": CSS, "max_file_size": "5mb", "footer_links": ["api"]}


def build_app() -> gr.Blocks:
    with gr.Blocks(title="GPT-2 Lab") as demo:
        gr.Markdown("# GPT-2 Lab\nA GPT-2 built from scratch: see and steer every part of it.")
        with gr.Tabs():
            tokenizer.build(demo)
            attention.build(demo)
            generation.build(demo)
            classify.build(demo)
            chat.build(demo)
    demo.queue(default_concurrency_limit=4)
    return demo


if __name__ == "__main__":
    build_app().launch(**LAUNCH_KWARGS)
