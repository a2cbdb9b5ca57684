"""Tokenizer tab: how text becomes tokens.

Coloured tokens with ids and counts (whitespace made visible, characters split across tokens
grouped), a byte view of one token, a merge-by-merge BPE replay, GPT-2's BPE beside our own, and
training a small BPE on your own text.
"""

from __future__ import annotations

import codecs
import functools
import os
import re
import threading
import time
from pathlib import Path

import gradio as gr

from gpt.bpe import TrainingError
from gpt.checkpoint import CheckpointError
from gpt.lab.names import resolve
from gpt.tokenizer import Tokenizer, TokenizerNotFoundError, gpt2_tokenizer
from pages.common.heavy import heavy, light
from pages.common.inputs import (
    announce,
    cap_text,
    check_text,
    clamp_note,
    friendly_errors,
    named_errors,
    number_input,
    said_by_twin,
    slider_input,
)
from pages.common.models import Page
from pages.common.render import WHITESPACE, WHITESPACE_LEGEND, esc
from pages.common.views import look_for

MAX_CHARS = 20_000
MAX_WORD_CHARS = 64
MAX_TRAIN_BYTES = 2_000_000
MIN_VOCAB, MAX_VOCAB = 257, 8192  # 256 byte tokens + <|endoftext|> .. 8192
STORIES = Path(__file__).resolve().parents[1] / "data" / "corpus" / "stories.txt"
OURS_TRAIN_BYTES = 200_000
OURS_VOCAB = 2048

EXAMPLE = (
    "GPT-2 reads text as tokens, not letters!\n"
    "Tokenization isn't always intuitive: 1234567 → numbers split oddly, "
    "and emoji 🙂 or accents like café take several bytes.\tTabs too."
)


# --- tokenizers ---------------------------------------------------------------------------------

_ours_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _trained_ours() -> Tokenizer:
    text = STORIES.read_text(encoding="utf-8")[:OURS_TRAIN_BYTES]
    return Tokenizer.train(text, OURS_VOCAB, name=f"stories-bpe-{OURS_VOCAB}")


def ours() -> Tokenizer:
    """The starter model's BPE when present, else one trained once on the bundled stories."""
    try:  # the starter's folder, as gpt.lab.names knows it
        starter = Path(resolve("starter", weights=False).tokenizer) / "tokenizer.json"
    except CheckpointError:  # not trained on this machine
        starter = None
    if starter is not None and starter.is_file():
        return _load_starter(str(starter), starter.stat().st_mtime)
    with _ours_lock:
        return _trained_ours()


GPT2_VOCAB_HELP = (
    "GPT-2's vocabulary is not on this machine, so its column is empty and the other views use "
    "our BPE. Install it with `pip install --no-deps -r requirements-nodeps.txt` (the "
    "`openai-whisper` package ships it; no network needed after that), or run once with internet "
    "access, then reload the page."
)


def gpt2_or_none() -> Tokenizer | None:
    """GPT-2's tokenizer, or None when its vocabulary is not installed (the tab says how to get it).

    The lookup fails fast offline, and succeeds on the next call once the vocabulary is there.
    """
    try:
        return gpt2_tokenizer()
    except TokenizerNotFoundError:
        return None


def missing_gpt2_html() -> str:
    help_html = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(GPT2_VOCAB_HELP))
    return f'<div class="note">⚠️ {help_html}</div>'


@functools.lru_cache(maxsize=2)
def _load_starter(path: str, mtime: float) -> Tokenizer:
    return Tokenizer.load(path)


def ours_label() -> str:
    tok = ours()
    if tok.source == "trained":
        return f"Ours: BPE with {tok.n_vocab:,} tokens trained on 200 KB of the bundled stories"
    return f"Ours: the starter model's BPE ({tok.n_vocab:,} tokens)"


# --- rendering ----------------------------------------------------------------------------------


def visible(text: str) -> str:
    """HTML of a token's text with whitespace made visible (`pages.common.WHITESPACE`).

    >>> visible("a b")
    'a<span class="tok-ws">·</span>b'
    """
    return "".join(
        f'<span class="tok-ws">{WHITESPACE[ch]}</span>' if ch in WHITESPACE else esc(ch)
        for ch in text
    )


def hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def _token_span(i: int, token_id: int, data: bytes, shown: str, show_ids: bool, special: bool):
    cls = "tok special" if special else f"tok c{i % 5}"
    title = f"#{i} · id {token_id} · bytes {hex_bytes(data)}"
    sub = f"<sub>{token_id}</sub>" if show_ids else ""
    return f'<span class="{cls}" title="{esc(title)}">{shown}{sub}</span>'


def tokens_html(tok: Tokenizer, ids: list[int], show_ids: bool = False) -> str:
    """Coloured tokens; runs of tokens that only together spell whole characters are boxed with a
    dashed border, showing the character once and each token's bytes in hex."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    specials = set(tok.special_tokens.values())
    parts: list[str] = []
    group: list[tuple[int, int, bytes]] = []
    group_text: list[str] = []

    def close_group() -> None:
        chips = "".join(_token_span(i, t, b, hex_bytes(b), show_ids, False) for i, t, b in group)
        text = "".join(group_text)
        title = f"{len(group)} tokens spell {text!r} together"
        parts.append(
            f'<span class="tok-group" title="{esc(title)}">'
            f'<span class="grp-char">{visible(text)}</span>{chips}</span>'
        )
        group.clear()
        group_text.clear()

    for i, token_id in enumerate(ids):
        data = tok.token_bytes(token_id)
        if token_id in specials:
            if group:
                group_text.append(decoder.decode(b"", final=True))
                close_group()
            parts.append(_token_span(i, token_id, data, esc(data.decode()), show_ids, True))
            continue
        text = decoder.decode(data)
        pending = decoder.getstate()[0]
        if group or pending:
            group.append((i, token_id, data))
            group_text.append(text)
            if not pending:
                close_group()
        else:
            parts.append(_token_span(i, token_id, data, visible(text), show_ids, False))
        if "\n" in text:
            parts.append("<br>" * text.count("\n"))
    if group:
        group_text.append(decoder.decode(b"", final=True))
        close_group()
    return f'<div class="tok-view">{"".join(parts)}</div>'


def counts_md(name: str, ids: list[int], text: str) -> str:
    n_bytes = len(text.encode("utf-8", "surrogatepass"))
    ratio = f" · **{len(text) / len(ids):.2f}** characters per token" if ids else ""
    return (
        f"**{name}**: **{len(ids):,}** tokens · **{len(text):,}** characters · "
        f"**{n_bytes:,}** bytes{ratio}"
    )


# --- events -------------------------------------------------------------------------------------


@friendly_errors
def tokenize(text: str, show_ids: bool = False) -> tuple[str, str, str, str, str]:
    """GPT-2's tokens (HTML), its counts, its ids, and the same two for our BPE (the counts say
    when the text was cut to MAX_CHARS)."""
    text, cut = cap_text(text, MAX_CHARS, "Text", allow_empty=True)
    cut = f"\n\n⚠️ {cut}" if cut else ""  # said beside the counts, not in a pop-up over them
    gpt2, mine = gpt2_or_none(), ours()
    our_ids = mine.encode(text)
    if gpt2 is None:
        gpt2_view = (missing_gpt2_html(), "**GPT-2**: vocabulary not installed" + cut, "")
    else:
        ids = gpt2.encode(text)
        gpt2_view = (
            tokens_html(gpt2, ids, bool(show_ids)),
            counts_md("GPT-2", ids, text) + cut,
            ", ".join(map(str, ids)),
        )
    return (
        *gpt2_view,
        tokens_html(mine, our_ids, bool(show_ids)),
        counts_md(ours_label(), our_ids, text),
    )


@friendly_errors
def token_bytes(text: str, index: float) -> str:
    """A table of one GPT-2 token of `text` (ours when GPT-2's vocabulary is missing): its index,
    id, text and bytes in hex."""
    text, _ = cap_text(text, MAX_CHARS, "Text", allow_empty=True)  # the cut: said by `tokenize`
    if not text:  # an emptied box: no stale row of the old text, no error
        return "*Type some text above: this view shows one of its tokens, byte by byte.*"
    gpt2 = gpt2_or_none()
    tok = gpt2 or ours()
    ids = tok.encode(text)
    i, note = clamp_note(index, 0, len(ids) - 1, "Token index", integer=True)
    data = tok.token_bytes(ids[i])
    try:
        decoded = f"`{data.decode('utf-8')!r}`"
    except UnicodeDecodeError:
        decoded = "not valid UTF-8 alone: part of a character split across tokens"
    return (
        (
            f"| token # | id | bytes (hex) | byte count | as text |\n|---|---|---|---|---|\n"
            f"| {i} of {len(ids)} | {ids[i]} | `{hex_bytes(data)}` | {len(data)} | {decoded} |"
        )
        + (f"\n\n⚠️ {note}" if note else "")
        + ("" if gpt2 is not None else f"\n\nTokens of {ours_label()}: {GPT2_VOCAB_HELP}")
    )


def _chips(tok: Tokenizer, ids: tuple[int, ...]) -> str:
    return "".join(
        _token_span(i, t, tok.token_bytes(t), visible(tok.decode([t])), False, False)
        for i, t in enumerate(ids)
    )


@friendly_errors
def bpe_merges(word: str, which: str = "GPT-2") -> str:
    """HTML table replaying BPE on `word`: the bytes, then one row per merge."""
    word = check_text(word, MAX_WORD_CHARS, "Word")
    tok = ours() if which == "Ours" else gpt2_or_none()
    if tok is None:
        return missing_gpt2_html()
    rows = []
    for piece in tok.explain(word).pieces:
        label = f"piece {visible(piece.text)}"
        if piece.special:
            rows.append(
                f"<tr><td>{label}</td><td>special token</td><td>{piece.ids[0]}</td>"
                f"<td>{_chips(tok, piece.ids)}</td></tr>"
            )
            continue
        rows.append(
            f"<tr><td>{label}</td><td>start: one token per byte</td><td></td>"
            f"<td>{_chips(tok, piece.start_ids)}</td></tr>"
        )
        for n, step in enumerate(piece.steps, 1):
            left = visible(step.left_bytes.decode("utf-8", "replace"))
            right = visible(step.right_bytes.decode("utf-8", "replace"))
            rows.append(
                f"<tr><td>step {n}</td><td>{left} + {right}</td><td>{step.new_id}</td>"
                f"<td>{_chips(tok, step.tokens_after)}</td></tr>"
            )
    head = "<tr><th>step</th><th>pair merged</th><th>new id</th><th>tokens after</th></tr>"
    return f'<table class="tok-table">{head}{"".join(rows)}</table>'


def _read_upload(path: str) -> str:
    size = os.path.getsize(path)
    if size > MAX_TRAIN_BYTES:
        raise gr.Error(
            f"The file is {size / 1e6:.1f} MB; the limit is {MAX_TRAIN_BYTES / 1e6:.0f} MB. "
            "Upload a smaller text file."
        )
    data = Path(path).read_bytes()
    if b"\x00" in data:
        raise gr.Error("That file looks binary, not text. Upload a UTF-8 .txt file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise gr.Error(
            "That file is not UTF-8 text. Save it as UTF-8 and upload it again."
        ) from None


@friendly_errors
def train_bpe(
    train_text: str,
    upload: str | None,
    vocab_size: float,
    sample: str,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to get a progress bar)
) -> tuple[str, str]:
    """Train a BPE on the upload (or the pasted text) and tokenize `sample` with it."""
    notes = []
    if upload:
        text = _read_upload(upload)
    else:
        text = check_text(train_text, MAX_TRAIN_BYTES, "Training text")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TRAIN_BYTES:
        raise gr.Error(f"Training text is over {MAX_TRAIN_BYTES / 1e6:.0f} MB; use less text.")
    if not text.strip():
        raise gr.Error("The training text is empty: paste some text or upload a .txt file.")
    vocab, note = clamp_note(vocab_size, MIN_VOCAB, MAX_VOCAB, "Vocab size", integer=True)
    notes.append(note)
    sample, note = cap_text(sample, MAX_CHARS, "Text", allow_empty=True)
    notes.append(note)
    sample = sample or text[:2000]
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 0.1 or done == total:
            last[0] = now
            progress(done / max(total, 1), desc=f"merge {done} of {total}")

    start = time.perf_counter()
    try:
        tok = Tokenizer.train(text, vocab, progress=report, name="yours", fewer_ok=True)
    except TrainingError as e:
        raise gr.Error(f"Could not train: {e}.") from None
    seconds = time.perf_counter() - start
    if tok.n_vocab < vocab:  # the text ran out of pairs to merge
        notes.append(
            f"Vocab size {vocab:,} asks for {vocab - 257:,} merges, but this text allows only "
            f"{tok.n_vocab - 257:,}: trained {tok.n_vocab:,} tokens. Give more text for more."
        )
    ids = tok.encode(sample)
    gpt2 = gpt2_or_none()
    gpt2_n = f"**{len(gpt2.encode(sample)):,}**" if gpt2 is not None else "(not installed)"
    learned = sorted((i, t) for t, i in tok.ranks.items() if i >= 256)[:12]
    first = " ".join(f"`{t.decode('utf-8', 'replace')!r}`" for _, t in learned) or "none"
    summary = (
        f"Trained **{tok.n_vocab:,}** tokens ({tok.n_vocab - 257:,} merges) on "
        f"**{len(text):,}** characters in **{seconds:.2f} s**. The text below takes "
        f"**{len(ids):,}** tokens with yours and {gpt2_n} with GPT-2's.\n\n"
        f"First merges learned: {first}"
    )
    summary += "".join(f"\n\n⚠️ {announce(n)}" for n in notes if n)
    return summary, tokens_html(tok, ids)


# --- layout -------------------------------------------------------------------------------------


def build(demo: gr.Blocks | None = None) -> Page:
    # First render at build time, so the tab is never empty on first load.
    init = tokenize(EXAMPLE, False)
    with gr.Tab("Tokenizer", id="tokenizer"):
        gr.Markdown(
            "Language models read **tokens**, not letters. Type below: each coloured box is one "
            f"token (hover for its id and bytes). {WHITESPACE_LEGEND}; a dashed box groups the "
            "tokens that only together spell a character."
        )
        with gr.Row():
            text = gr.Textbox(
                label="Text",
                value=EXAMPLE,
                lines=5,
                scale=4,
                elem_id="tok-text",
            )
            with gr.Column(scale=1, min_width=180):
                show_ids = gr.Checkbox(
                    label="Show ids under tokens", value=False, elem_id="tok-show-ids"
                )
                gr.Markdown(f"Limit: {MAX_CHARS:,} characters.", elem_classes="note")
        with gr.Row(equal_height=False):
            with gr.Column():
                gpt2_counts = gr.Markdown(init[1], elem_id="tok-counts")
                gpt2_html = gr.HTML(init[0], elem_id="tok-out")
            with gr.Column():
                our_counts = gr.Markdown(init[4], elem_id="tok-ours-counts")
                our_html = gr.HTML(init[3], elem_id="tok-ours-out")
                look_for(
                    "common words are one token with their leading space (·the); numbers and rare words split into pieces; ours, trained on the stories alone, needs more tokens for the same text."
                )
        ids_box = gr.Textbox(
            init[2],
            label="GPT-2 token ids",
            lines=2,
            elem_id="tok-ids",
            buttons=["copy"],
            interactive=False,
        )

        with gr.Accordion("Byte view of one token", open=True):
            with gr.Row():
                index = number_input(
                    label="Token index (0 = first)",
                    value=0,
                    precision=0,
                    minimum=0,
                    elem_id="tok-index",
                    scale=1,
                )
                # wide, so ids and counts stay on one line (CSS) and long tokens fit
                byte_view = gr.Markdown(token_bytes(EXAMPLE, 0), elem_id="tok-bytes", scale=4)
            look_for(
                "an accented letter or an emoji is 2 to 4 bytes; GPT-2 may give each byte its own token."
            )

        with gr.Accordion("Replay BPE merge by merge", open=True):
            with gr.Row():
                word = gr.Textbox(
                    label="Word",
                    value=" tokenization",
                    scale=3,
                    elem_id="tok-word",
                )
                which = named_errors(
                    gr.Radio(
                        ["GPT-2", "Ours"],
                        value="GPT-2",
                        label="Tokenizer",
                        scale=1,
                        elem_id="tok-which",
                    )
                )
            merges = gr.HTML(bpe_merges(" tokenization"), elem_id="tok-merges")
            look_for(
                "the first merges join frequent pairs (·t, on, at); the word ends as the few big pieces the vocabulary knows."
            )

        with gr.Accordion("Train your own BPE", open=False):
            gr.Markdown(
                "Paste text or upload a UTF-8 `.txt` file (up to 2 MB), pick a vocab size "
                "(256 byte tokens + `<|endoftext|>` + merges), and see how the text above "
                "tokenizes with what you trained."
            )
            with gr.Row():
                train_text = gr.Textbox(
                    label="Training text", lines=4, scale=3, elem_id="tok-train-text"
                )
                with gr.Column(scale=2):
                    upload = gr.File(
                        label="…or upload a .txt file",
                        file_types=[".txt"],
                        type="filepath",
                        elem_id="tok-upload",
                    )
                    vocab = slider_input(
                        MIN_VOCAB,
                        MAX_VOCAB,
                        value=1024,
                        step=1,
                        label="Vocab size",
                        elem_id="tok-vocab",
                    )
            train_btn = gr.Button("Train BPE", variant="primary", elem_id="tok-train-btn")
            train_summary = gr.Markdown(elem_id="tok-train-summary")
            train_html = gr.HTML(elem_id="tok-train-out")

        outs = [gpt2_html, gpt2_counts, ids_box, our_html, our_counts]
        text.change(
            tokenize,
            [text, show_ids],
            outs,
            api_name="tokenize",
            show_progress="hidden",
            trigger_mode="always_last",
            **light("tokenize"),
        )
        show_ids.change(
            tokenize, [text, show_ids], outs, api_visibility="private", show_progress="hidden"
        )
        # One listener for both triggers: its runs are queued one after the other, so the view
        # always ends on the latest text and index (two listeners could finish out of order).
        gr.on(
            [text.change, index.change],
            said_by_twin(token_bytes),  # `tokenize`, on the same text, says a refusal
            [text, index],
            byte_view,
            api_name="token_bytes",
            show_progress="hidden",
            trigger_mode="always_last",
            **light("token_bytes"),
        )
        gr.on(
            [word.change, which.change],
            bpe_merges,
            [word, which],
            merges,
            api_name="bpe_merges",
            show_progress="hidden",
            **light("bpe_merges"),
        )
        train_btn.click(
            train_bpe,
            [train_text, upload, vocab, text],
            [train_summary, train_html],
            api_name="train_bpe",
            **heavy("train_bpe", 1),
        )
    return Page()
