"""Chat tab: talk to an instruction-tuned model through the Alpaca prompt it was trained on.

Multi-turn: the newest message is the `### Instruction:`; earlier turns go in an `### Input:`
section as a transcript ("User: ..." / "Assistant: ..."), trimmed from the oldest turn when the
prompt would not fit the model's context.
"""

from __future__ import annotations

import gradio as gr

from gpt.sampling import SamplingError, stream
from pages.common import (
    check_text,
    clamp,
    friendly_errors,
    get_model,
    model_picker,
    model_status,
)

TASKS = ("instruct",)
MAX_MESSAGE_CHARS = 4_000
MAX_NEW_TOKENS = 256
PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request."
)
STOPS = ("### Instruction:", "### Input:", "### Response:")
# Questions in the starter chat model's world (see data/README.md); GPT-2 sizes answer anything.
EXAMPLES = [
    "Where does Pip the fox live?",
    "Is a robin a mammal, a bird or a fish?",
    "Reverse the letters of the word shout.",
]


def _content(message) -> str:
    if isinstance(message, dict):
        message = message.get("content", "")
    if isinstance(message, list):  # a list of content parts
        message = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in message)
    return str(message or "")


def alpaca_prompt(message: str, history: list[dict] | None = None) -> str:
    """The Alpaca prompt for `message`, previous turns in an `### Input:` transcript.

    >>> print(alpaca_prompt("Say hi."))  # doctest: +NORMALIZE_WHITESPACE
    Below is an instruction that describes a task. Write a response that appropriately completes
    the request.
    <BLANKLINE>
    ### Instruction:
    Say hi.
    <BLANKLINE>
    ### Response:
    <BLANKLINE>
    """
    lines = []
    for turn in history or []:
        who = "User" if turn.get("role") == "user" else "Assistant"
        lines.append(f"{who}: {_content(turn).strip()}")
    prompt = f"{PREAMBLE}\n\n### Instruction:\n{message.strip()}\n\n"
    if lines:
        prompt += "### Input:\n" + "\n".join(lines) + "\n\n"
    return prompt + "### Response:\n"


def fit_prompt(message: str, history: list[dict], tok, budget: int) -> str:
    """The prompt with as many recent turns as fit in `budget` tokens."""
    turns = list(history or [])
    while True:
        prompt = alpaca_prompt(message, turns)
        if len(tok.encode(prompt)) <= budget or not turns:
            return prompt
        turns = turns[1:]


@friendly_errors
def chat(
    message,
    history,
    model_name: str,
    temperature: float,
    top_k: float,
    top_p: float,
    max_new_tokens: float,
):
    """Stream the reply (and the prompt used, for the accordion)."""
    message = check_text(_content(message), MAX_MESSAGE_CHARS, "Message")
    t = clamp(temperature, 0, 2, "Temperature")
    args = dict(
        temperature=max(t, 0.01) if t > 0 else 0.0,
        top_k=clamp(top_k, 0, 200, "Top-k", integer=True),
        top_p=clamp(top_p, 0.05, 1, "Top-p"),
        max_new_tokens=clamp(max_new_tokens, 1, MAX_NEW_TOKENS, "Max new tokens", integer=True),
    )
    model, tok = get_model(model_name, TASKS)
    budget = max(16, model.config.block_size - args["max_new_tokens"])
    prompt = fit_prompt(message, history, tok, budget)
    reply = ""
    try:
        for event in stream(model, tok, prompt, stop=STOPS, stop_at_eot=True, **args):
            reply += event.text
            yield reply.strip() or "…", prompt
    except SamplingError as e:
        raise gr.Error(f"{e}. Adjust the setting and try again.") from None
    if not reply.strip():
        yield "(the model ended its reply without any text; try a higher temperature)", prompt


def build(demo: gr.Blocks) -> None:
    with gr.Tab("Chat", id="chat"):
        gr.Markdown(
            "Chat with an instruction-tuned model. Each message is wrapped in the Alpaca prompt "
            "the model was trained on; earlier turns go in its `### Input:` section."
        )
        with gr.Row():
            model = model_picker(TASKS, "chat-model")
            model_status(model, TASKS, "chat-model-note")
        with gr.Accordion("Prompt sent to the model", open=False):
            prompt_box = gr.Code(
                label="Alpaca prompt",
                language=None,
                elem_id="chat-prompt",
                value=alpaca_prompt("(your message)"),
            )
        with gr.Accordion("Sampling settings", open=False):
            temperature = gr.Slider(
                0,
                2,
                value=0.7,
                step=0.05,
                label="Temperature",
                info="0 = greedy",
                elem_id="chat-temp",
            )
            top_k = gr.Slider(
                0, 200, value=40, step=1, label="Top-k (0 = off)", elem_id="chat-topk"
            )
            top_p = gr.Slider(0.05, 1, value=0.9, step=0.01, label="Top-p", elem_id="chat-topp")
            max_new = gr.Slider(
                1, MAX_NEW_TOKENS, value=120, step=1, label="Max new tokens", elem_id="chat-max"
            )
        gr.ChatInterface(
            chat,
            chatbot=gr.Chatbot(height=380, elem_id="chat-bot", label="Chat"),
            textbox=gr.Textbox(
                placeholder="Ask something…",
                submit_btn=True,
                stop_btn=True,
                elem_id="chat-input",
                max_length=MAX_MESSAGE_CHARS,
            ),
            additional_inputs=[model, temperature, top_k, top_p, max_new],
            additional_outputs=[prompt_box],
            examples=[[e, model.value, 0.7, 40, 0.9, 120] for e in EXAMPLES],
            run_examples_on_click=False,
            api_name="chat",
            concurrency_limit=4,
            fill_height=False,
        )
