"""What the analysis tabs share: the last few results (`Recent`), how many tokens a view of
`gpt.inside` reads (its cap), the token to follow, the attribution view (Inside and Spam tabs),
and a view's numbers as CSV + JSON files (kept an hour) for a `gr.File` download; views with
many numbers keep how to build them (`KeptNumbers`) and write the files only when asked. Charts
are saved as images from Plotly's own toolbar."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import gradio as gr

from gpt import inside
from pages.common.inputs import cap_text
from pages.common.models import get_model
from pages.common.render import BLUE, RED, WHITE, coloured_text, mix, token_text

MAX_TOKENS = 256
MAX_CHARS = 20_000
# Caps: each view reads at most as many tokens as keep its estimated work under this many
# floating-point operations, about 10 s on a 2-core CPU (bench/bench_inside.py measures the rate).
FLOP_BUDGET = 1.0e12
METHODS = [("Occlusion (drop each token)", "occlusion"), ("Gradient × input", "gradient")]
HOW = {
    "occlusion": "drop each token and see how its log-odds change",
    "gradient": "gradient × input on the token embeddings, of the logit",
}
EXPORT_DIR = Path(tempfile.gettempdir()) / "gpt2lab-export"
KEEP_SECONDS = 3600


class Recent:
    """The last `size` results by key, the least recently used dropped first (thread-safe).

    >>> recent = Recent(1)
    >>> recent.get("a", lambda: 1), recent.get("a", lambda: 2), recent.get("b"), recent.get("a")
    (1, 1, None, 1)
    """

    def __init__(self, size: int = 8) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any] | None = None) -> Any:
        """The result kept for `key`, else `compute()`'s (kept), else None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None if compute is None else self.put(key, compute())

    def put(self, key: Hashable, value: Any) -> Any:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def token_cap(cfg, view: str, n_tokens: int | None = None) -> int:
    """How many tokens `view` reads for a model of config `cfg` (context and FLOP budget): a
    forward costs about 2 × parameters per token, the lens adds a vocabulary projection per layer,
    a gradient triples a forward; occlusion's cap is how many of `n_tokens` it drops.

    >>> from gpt.config import PRESETS
    >>> token_cap(PRESETS["gpt2"], "lens"), token_cap(PRESETS["gpt2-xl"], "lens")
    (256, 90)
    """
    forward = 2 * cfg.n_params()
    lens = forward + 2 * (cfg.n_layer + 1) * cfg.n_embd * cfg.vocab_size
    per_token = {
        "surprisal": forward,
        "ablate": 2 * forward,
        "lens": lens,
        "compare": 2 * lens,
        "gradient": 3 * forward,
    }
    if view == "occlusion":
        return max(1, int(FLOP_BUDGET // (forward * max(1, n_tokens or 1))))
    return max(2, min(MAX_TOKENS, cfg.block_size, int(FLOP_BUDGET // per_token[view])))


def read_text(model, tok, text: str, view: str, name: str) -> tuple[list[int], list[str]]:
    """The text's ids, capped for `view`, and the notes saying so."""
    text, cut = cap_text(text, MAX_CHARS, "Text")
    config = inside.body(model).config
    cap = token_cap(config, view)
    ids = tok.encode(text)
    notes = [f"**{min(len(ids), cap)}** tokens.", *([f"**Cut:** {cut}"] if cut else [])]
    if len(ids) > cap:
        why = (
            f"the context of {name}"
            if cap == config.block_size
            else f"the cap for {name} in this view (so a request stays near 10 s)"
            if cap < MAX_TOKENS
            else "the tab's cap"
        )
        notes.append(f"**Capped:** read the first {cap} of {len(ids)} tokens ({why}).")
        ids = ids[:cap]
    return ids, notes


def pick_target(tok, target: Any) -> tuple[int | str, str | None, str]:
    """(token id, its text, a note) for the token to follow; blank: ("top", None, ""), the
    model's own best guess after the last token."""
    target = target if isinstance(target, str) else ""
    if not target:
        return "top", None, ""
    if len(target) > 100:
        raise gr.Error("The token to follow is longer than 100 characters; type one word.")
    ids = tok.encode(target)
    if not ids:
        raise gr.Error("The token to follow is empty.")
    note = ""
    if len(ids) > 1:
        pieces = " + ".join(repr(tok.decode([i])) for i in ids)
        note = f"{target!r} is {len(ids)} tokens ({pieces}); following the first."
    return ids[0], tok.decode([ids[0]]), note


FULL_LOG_ODDS = 2.0  # occlusion: a change in log-odds drawn in full colour (the odds × 7.4)


def attribution_result(model_name: str, text: str, method: str, target: Any, tasks):
    """(HTML, note, CSV rows, JSON data): which input tokens pushed a class (classifier; target:
    a label, blank = the predicted one) or the next token (blank = the model's top guess)."""
    model, tok = get_model(model_name, tasks)
    if method not in inside.ATTRIBUTION_METHODS:
        raise gr.Error(f"Method must be one of {', '.join(inside.ATTRIBUTION_METHODS)}.")
    ids, notes = read_text(model, tok, text, "gradient", model_name)
    classifier = inside.is_classifier(model)
    tid = None
    target = target if isinstance(target, str) else ""
    if classifier and target:
        lowered = [label.lower() for label in model.labels]
        if target.lower() not in lowered:
            raise gr.Error(f"{target!r} is not a class of {model_name}: {', '.join(model.labels)}.")
        tid = lowered.index(target.lower())
    elif target:
        tid, _, tnote = pick_target(tok, target)
        notes += [tnote] if tnote else []
    positions = None
    if method == "occlusion":
        if len(ids) < 2:
            raise gr.Error("Occlusion needs at least 2 tokens: it drops one at a time.")
        cap = token_cap(inside.body(model).config, "occlusion", len(ids))
        if cap < len(ids):
            positions = range(len(ids) - cap, len(ids))
            notes.append(
                f"**Capped:** occlusion dropped only the last {cap} tokens (one forward pass "
                f"each, so a request stays near 10 s on {model_name}); grey tokens were not "
                "measured."
            )
    try:
        if method == "occlusion":
            # the change in log-odds: at P(spam) 0.999 the changes in P are all tiny
            result = inside.occlusion(model, ids, tid, positions=positions, measure="log_odds")
        else:
            result = inside.gradient_x_input(model, ids, tid)
    except ValueError as e:
        raise gr.Error(f"{e}.") from None
    name = model.labels[result.target] if classifier else tok.decode([result.target])
    what = f"P({name})" if classifier else f"the next token {name!r}"
    texts = [tok.decode([i]) for i in ids]
    scores = result.scores.tolist()
    notes.insert(0, f"Explaining {what}: **{result.prob:.3f}** on the full text ({HOW[method]}).")
    rows = [{"position": i, "token": t, "score": s} for i, (t, s) in enumerate(zip(texts, scores))]
    data = {"model": model_name, "ids": ids, "method": method,
            "target": {"index": result.target, "name": name}, "prob": result.prob, "scores": scores}
    scale = max((abs(s) for s in scores if not math.isnan(s)), default=0.0) or 1.0
    unit = "Δ log-odds" if method == "occlusion" else "grad × input"
    if method == "occlusion":  # tiny effects stay pale: full colour from ±2 (odds × 7.4) up
        scale = max(scale, FULL_LOG_ODDS)
        data["measure"] = "change in log-odds, log(P / (1 - P)), when the token is dropped"
    pieces = [  # token_text: a split character's bytes, not "\ufffd"
        (token_text(tok, i), "#e8e8e8", "not measured (cap)") if math.isnan(s)
        else (token_text(tok, i), mix(WHITE, RED if s > 0 else BLUE, abs(s) / scale), f"{unit} {s:+.3g}")
        for i, s in zip(ids, scores)
    ]
    legend = (f"Red: pushed {what} up; blue: pushed it down (full colour: {unit} {scale:.3g}). "
              "Hover a token for its score.")
    return coloured_text(pieces, legend, "attribution-view"), " ".join(notes), rows, data


def export_files(stem: str, rows: list[dict[str, Any]], data: dict[str, Any]) -> list[str]:
    """Write `<stem>.csv` (one line per row) and `<stem>.json` (`data`); their paths.

    >>> paths = export_files("demo", [{"token": "a", "p": 0.5}], {"p": [0.5]})
    >>> [Path(p).name for p in paths], Path(paths[0]).read_text().splitlines()
    (['demo.csv', 'demo.json'], ['token,p', 'a,0.5'])
    """
    for old in EXPORT_DIR.glob("*"):  # an hour old: gone
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < time.time() - KEEP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
    folder = EXPORT_DIR / uuid.uuid4().hex[:16]
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    plain = json.loads(json.dumps(data), parse_constant=lambda _: None)  # JSON has no NaN
    json_path.write_text(json.dumps(plain, ensure_ascii=False), encoding="utf-8")
    return [str(csv_path), str(json_path)]


class GiveWay:
    """A view the page draws on its own (on page load, on a model change) gives way to the
    visitor's own request for it that came meanwhile: ended later, it would land over the
    visitor's (seen on Inside: 2 s late, the default text over theirs). `asked(view)` is the quick
    event beside the view's own triggers; `auto(view, fn)` wraps the page's own draw.

    >>> way = GiveWay()
    >>> request = type("R", (), {"session_hash": "s"})()
    >>> def draw(text):
    ...     way.asked("lens")(request)  # the visitor's click arrives while it runs
    ...     return ("note", text)
    >>> way.auto("lens", draw)("x", request=request) == (gr.skip(), gr.skip())
    True
    >>> way.auto("lens", lambda text: ("note", text))("x", request=request)
    ('note', 'x')
    """

    def __init__(self) -> None:
        self._asked: dict[tuple[str, str], float] = {}  # (session, view) -> when last asked

    def asked(self, view: str) -> Callable[..., None]:
        def note(request: gr.Request | None = None) -> None:
            if request is not None:
                if len(self._asked) > 10_000:  # sessions come and go: forget them
                    self._asked.clear()
                self._asked[(request.session_hash, view)] = time.monotonic()

        return note

    def auto(self, view: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def draw(*inputs: Any, request: gr.Request | None = None) -> Any:
            started = time.monotonic()
            out = fn(*inputs)
            key = (request.session_hash, view) if request is not None else None
            if key is not None and self._asked.get(key, 0.0) > started:
                return tuple(gr.skip() for _ in out) if isinstance(out, tuple) else gr.skip()
            return out

        return draw

    def on(self, view: str, triggers: list[Any]) -> None:
        """Note, at once and off the queue, whenever `triggers` ask for `view`."""
        gr.on(triggers, self.asked(view), None, None, api_visibility="private", queue=False,
              show_progress="hidden")


def look_for(text: str, elem_id: str | None = None) -> gr.Markdown:
    """A view's one line of what to look for in it, under the view."""
    return gr.Markdown(f"**Look for:** {text}", elem_classes="note look-for", elem_id=elem_id)


def numbers_box(label: str, elem_id: str) -> gr.File:
    """The download box of a view's numbers, out of sight until it holds files (CSS)."""
    return gr.File(label=f"{label} (CSV, JSON)", file_count="multiple", elem_id=elem_id,
                   elem_classes=["numbers-box"])


class KeptNumbers(Recent):
    """The numbers behind the last few views: a view puts (file stem, build) under its inputs;
    `files` writes `build()`'s rows and data, redrawing the view first when no longer kept.

    >>> kept = KeptNumbers(16)
    >>> _ = kept.put(("lens", "gpt2"), ("demo", lambda: ([{"p": 0.5}], {"p": [0.5]})))
    >>> [Path(p).name for p in kept.files(("lens", "gpt2"), redraw=lambda: None)]
    ['demo.csv', 'demo.json']
    """

    def files(self, key: Hashable, redraw: Callable[[], Any]) -> list[str]:
        if self.get(key) is None:
            redraw()  # the view keeps its numbers again (or raises the error it shows)
        hit = self.get(key)
        if hit is None:
            raise gr.Error("Nothing to export: draw the view first.")
        stem, build = hit
        return export_files(stem, *build())


def numbers_button(label: str, elem_id: str) -> tuple[gr.Button, gr.File]:
    """A button that writes a view's numbers on demand, and the download box it fills."""
    with gr.Row(equal_height=False):
        button = gr.Button(f"Export {label[:1].lower() + label[1:]}", elem_id=f"{elem_id}-btn",
                           size="sm", scale=0, min_width=220)
        return button, numbers_box(label, elem_id)
