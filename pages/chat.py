"""Chat tab: talk to a chat model in the prompt format it was trained in (`gpt.lab.prompts`).

Our chat models (and the gpt2-alpaca fine-tunes) were tuned on single instructions in the Alpaca
prompt (`gpt.train.data.format_prompt`), so by default each message is sent alone, in exactly the
prompt training used. With "Remember earlier turns" on, earlier turns go in the prompt's
`### Input:` section as a transcript ("User: ..." / "Assistant: ..."), trimmed from the oldest
turn when the prompt would not fit the model's context. DialoGPT gets its own format (turns
ended by `<|endoftext|>`) and remembers by default: the default follows the model's card
(`ModelCard.multi_turn`, `ModelCard.prompt_format`).
"""

from __future__ import annotations

import contextlib
import functools

import gradio as gr

from gpt.jobs import JobManager
from gpt.lab.oneclick import ONE_CLICK
from gpt.lab.prompts import FORMATS, Turn, format_chat, stops
from gpt.sampling import SamplingError, stream
from pages import oneclick
from pages.common.heavy import batched, decode_slots, mark_heavy, sampler_for
from pages.common.inputs import (
    announce,
    cap_message,
    check_text,
    friendly_errors,
    sampling_args,
    slider_input,
)
from pages.common.models import Page, Picker, card_of, get_model, model_header
from pages.common.pace import STREAMS, paced
from pages.common.views import look_for

TASKS = ("instruct",)
MAX_MESSAGE_CHARS = 4_000
MAX_NEW_TOKENS = 256
STOPS = stops("alpaca")  # where an Alpaca reply ends (each format has its own: `stops`)
# Plain tasks that fit the starter-chat's instructions (data/README.md) and a hub GPT-2's alike
EXAMPLES = [
    'Give a synonym for "happy".',
    "Is a robin a mammal, a bird or a fish?",
    "Reverse the letters of the word shout.",
]
REMEMBER_INFO = (
    "Off: each message is sent alone, as single-turn models were trained. On: the conversation "
    "so far goes in the prompt too (Alpaca: in its Input section)."
)


def _content(message) -> str:
    if isinstance(message, dict):
        message = message.get("content", "")
    if isinstance(message, list):  # a list of content parts
        message = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in message)
    return str(message or "")


def turns_of(history: list[dict] | None) -> list[Turn]:
    """The chat's earlier turns as (role, text) pairs, without a message that was not sent
    (`NOT_SENT`) and its reason.

    >>> turns_of([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    [('user', 'Hi'), ('assistant', 'Hello!')]
    >>> turns_of([{"role": "user", "content": "x" * 9}, {"role": "assistant",
    ...           "content": NOT_SENT + "Message is too long."}])
    []
    """
    turns: list[Turn] = []
    for turn in history or []:
        text = _content(turn).strip()
        if turn.get("role") != "user" and text.startswith(NOT_SENT.strip()):
            turns = turns[:-1] if turns and turns[-1][0] == "user" else turns
            continue
        turns.append(("user" if turn.get("role") == "user" else "assistant", text))
    return turns


def chat_prompt(
    message: str, history: list[dict] | None = None, remember: bool = False, fmt: str = "alpaca"
) -> str:
    """The prompt for `message` in the model's prompt format `fmt` (`gpt.lab.prompts`); with
    `remember`, the earlier turns too. In "alpaca" (ours): training's prompt
    (`gpt.train.data.format_prompt`) with the message as the instruction and the earlier turns
    as the `### Input:`.

    >>> from gpt.train.data import Instruction, format_prompt
    >>> chat_prompt("Say hi.", [{"role": "user", "content": "Hi"}]) == format_prompt(
    ...     Instruction("Say hi."))
    True
    >>> "### Input:\\nUser: Hi" in chat_prompt("Say hi.", [{"role": "user", "content": "Hi"}], True)
    True
    """
    return format_chat(fmt, message, turns_of(history) if remember else [])


def format_of(model_name) -> str:
    """The prompt format the picked model was trained in: its card's (a hub chat model's, from
    `gpt.lab.hubmodels`), else "alpaca" (ours)."""
    card = card_of(model_name)
    fmt = card.prompt_format if card else None
    return fmt if fmt in FORMATS else "alpaca"


def fit_prompt_note(
    message: str,
    history: list[dict] | None,
    tok,
    budget: int,
    remember: bool = False,
    fmt: str = "alpaca",
) -> tuple[str, str]:
    """The prompt with as many recent turns as fit in `budget` tokens (none unless `remember`),
    and the sentences saying how many earlier turns were left out to fit and,
    when even the message alone does not fit, that the reply gets less room ("" when all fit)."""
    turns = list(history or []) if remember else []
    dropped = 0
    while True:
        prompt = chat_prompt(message, turns, remember, fmt)
        n = len(tok.encode(prompt))
        if n <= budget or not turns:
            break
        turns, dropped = turns[1:], dropped + 1
    note = ""
    if dropped and n <= budget:
        which = "the oldest turn" if dropped == 1 else f"the {dropped} oldest turns"
        note = (
            f"Left out {which} of the conversation so the prompt fits the model's context "
            f"({budget} tokens before the reply)."
        )
    elif dropped:
        note = "Left out the earlier turn." if dropped == 1 else f"Left out all {dropped} turns."
    if n > budget:
        note += (
            f"{' ' if note else ''}The prompt is {n} tokens, more than the {budget} that leave "
            "room for the reply in the model's context: the reply gets less room (past the "
            "context, the model reads only the prompt's end). Shorten the message."
        )
    return prompt, note


def remember_default(model_name) -> bool:
    """Whether a model's chat remembers earlier turns by default: only models trained on
    conversations (none of ours; their cards say `multi_turn`)."""
    card = card_of(model_name)
    return bool(card and card.multi_turn)


@friendly_errors
def chat(
    message,
    history,
    model_name: str,
    temperature: float,
    top_k: float,
    top_p: float,
    max_new_tokens: float,
    remember: bool = False,
):
    """Stream the reply (and the exact prompt sent, for the accordion), a few updates a second
    (`pages.common.pace.paced`) whatever the token rate.

    With `remember` off (the default), the prompt holds only this message, as in training.
    """
    message = check_text(_content(message), MAX_MESSAGE_CHARS, "Message")
    fmt = format_of(model_name)
    cfg = sampling_args(
        temperature,
        top_k,
        top_p,
        max_new_tokens=max_new_tokens,
        max_new_cap=MAX_NEW_TOKENS,
        stop=stops(fmt),
    )
    model, tok = get_model(model_name, TASKS)
    budget = max(16, model.config.block_size - cfg.max_new_tokens)
    prompt, note = fit_prompt_note(message, history, tok, budget, bool(remember), fmt)
    announce(note)
    reply = ""
    with STREAMS.running():  # past 4 streams at once, each gets a share of the update rate
        for reply in paced(_replies(model, tok, prompt, cfg), streams=STREAMS):
            yield reply.strip() or "…", prompt
    if not reply.strip():
        yield "(the model ended its reply without any text; try a higher temperature)", prompt


def _replies(model, tok, prompt: str, cfg):
    """The reply so far after each token."""
    reply = ""
    try:
        events = stream(model, tok, prompt, cfg=cfg, sampler=sampler_for(model))
        with contextlib.closing(events):  # Stop: the run's row leaves the shared batch
            for event in events:
                reply += event.text
                yield reply
    except SamplingError as e:
        raise gr.Error(f"{e}. Adjust the setting and try again.") from None


NOT_SENT = "⚠️ Not sent: "  # a refused turn's reply in the chat (`answer_refusals`)
SHOWN_CHARS = 500  # ... under the refused message, shown at most this long


def answer_refusals(demo: gr.Blocks, chat_ui: gr.ChatInterface) -> None:
    """The page's turns (not the /chat API, which answers with the error): a refused one
    (too long, no model) is answered in the chat with the reason. Gradio's ChatInterface (6.31)
    leaves its message box disabled, Stop showing, after an error until the page is reloaded."""
    for block_fn in demo.fns.values():
        inputs = block_fn.inputs or [None]
        if getattr(block_fn.fn, "__name__", "") != "_submit_fn" or inputs[0] is not chat_ui.saved_input:
            continue

        @functools.wraps(block_fn.fn)
        async def turn(message, history, *args, inner=block_fn.fn):
            try:
                async for out in inner(message, history, *args):
                    yield out
            except gr.Error as e:
                text = _content(message)  # a flood shown cut (a short one stays, to copy)
                if len(text) > SHOWN_CHARS:
                    text = f"{text[:SHOWN_CHARS]}… ({len(text):,} characters)"
                said = [{"role": "user", "content": text},
                        {"role": "assistant", "content": NOT_SENT + cap_message(e.message)}]  # fmt: skip
                others = [gr.skip()] * len(chat_ui.additional_outputs)  # the prompt box
                yield None, [*(history or []), *said], *others

        block_fn.fn = turn


class _ChatInterface(gr.ChatInterface):
    """Gradio's ChatInterface, its message box keeping its placeholder after a message is sent
    (Gradio's own blanks it for good on the first message)."""

    def _clear_and_save_textbox(self, message):
        return type(self.textbox)("", interactive=False), message


def prompt_label(model_name, fmt: str | None = None) -> str:
    """The prompt box's label: the picked model's format (`fmt` when already known).

    >>> prompt_label(None)
    'Prompt in the alpaca format (exactly what the model reads)'
    """
    return f"Prompt in the {fmt or format_of(model_name)} format (exactly what the model reads)"


def preview(model_name):
    """The prompt box before a message: the picked model's format, labelled."""
    fmt = format_of(model_name)  # reads the model's card once
    return gr.Code(chat_prompt("(your message)", fmt=fmt), label=prompt_label(model_name, fmt))


def new_chat():
    """An empty conversation (the chat shown and the history the next turn reads) and prompt
    (the page then shows the picked model's format: `preview`)."""
    return [], [], [], chat_prompt("(your message)")


def build(
    demo: gr.Blocks, manager: JobManager | None = None, token: gr.BrowserState | None = None
) -> Page:
    """The tab; with a jobs `manager`, also the one-click GPT-2 fine-tune button."""
    with gr.Tab("Chat", id="chat"):
        gr.Markdown(
            "Chat with an instruction-tuned model. Each message is wrapped in the prompt format "
            "the model was trained in (ours: the Alpaca prompt, one instruction per prompt); "
            "tick *Remember earlier turns* to send the conversation so far too."
        )
        model = model_header(TASKS, "chat", token)
        if manager is not None:
            oneclick.build(manager, ONE_CLICK["gpt2-chat"], model, TASKS, demo, token)
        with gr.Row(equal_height=False):
            remember = gr.Checkbox(
                value=remember_default(model.value),
                label="Remember earlier turns",
                info=REMEMBER_INFO,
                elem_id="chat-remember",
                scale=4,
            )
            new = gr.Button("New chat", elem_id="chat-new", scale=1, min_width=120, size="md")
        with gr.Accordion("Prompt sent to the model", open=False):
            prompt_box = gr.Code(
                label=prompt_label(model.value),
                language=None,
                elem_id="chat-prompt",
                value=chat_prompt("(your message)", fmt=format_of(model.value)),
            )
            look_for(
                "your message where the format puts it (Alpaca: under ### Instruction; the model "
                "writes after ### Response); the model stops where it learned a reply ends."
            )
        with gr.Accordion("Sampling settings", open=False):
            temperature = slider_input(
                0,
                2,
                value=0.3,  # small instruction models answer right far more often when cool
                step=0.05,
                label="Temperature",
                info="0 = greedy; low values keep a small model's answers on topic",
                elem_id="chat-temp",
            )
            top_k = slider_input(
                0, 200, value=40, step=1, label="Top-k (0 = off)", elem_id="chat-topk"
            )
            top_p = slider_input(0.05, 1, value=0.9, step=0.01, label="Top-p", elem_id="chat-topp")
            max_new = slider_input(
                1, MAX_NEW_TOKENS, value=120, step=1, label="Max new tokens", elem_id="chat-max"
            )
        chat_ui = _ChatInterface(
            chat,
            chatbot=gr.Chatbot(height=380, elem_id="chat-bot", label="Chat"),
            textbox=gr.Textbox(
                label="Message",
                show_label=False,
                placeholder="Ask something…",
                submit_btn=True,
                stop_btn=True,
                elem_id="chat-input",
            ),
            additional_inputs=[model, temperature, top_k, top_p, max_new, remember],
            additional_outputs=[prompt_box],
            # messages only: clicking one sends it with the model and settings picked
            examples=[[e, None, None, None, None, None, None] for e in EXAMPLES],
            run_examples_on_click=True,
            api_name="chat",
            concurrency_limit=decode_slots(),
            fill_height=False,
        )
        # the /chat endpoint and the page's turns: their runs share decode steps
        mark_heavy(demo, chat, "chat", None, kind=batched)
        answer_refusals(demo, chat_ui)
        # the default follows how the picked model was trained (its card)
        model.change(remember_default, model, remember, api_visibility="private", queue=False)
        model.change(preview, model, prompt_box, api_visibility="private", queue=False)
        new.click(
            new_chat,
            None,
            [chat_ui.chatbot, chat_ui.chatbot_state, chat_ui.chatbot_value, prompt_box],
            api_name="new_chat",
            queue=False,
        ).then(preview, model, prompt_box, api_visibility="private", queue=False)
    return Page([Picker("Chat", TASKS, model)])
