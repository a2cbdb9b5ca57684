"""Export: the numbers behind a chart or table as CSV and JSON files for a `gr.File` download.

Charts are saved as images from their own toolbar (Plotly's camera button, "Download plot as a
png"). Files written here live in a temporary folder and are deleted after an hour.

Views whose numbers are large (the Inside tab's: thousands of rows) keep how to build them in a
`KeptNumbers` and write the files only when a person (or an API call) asks for them.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import gradio as gr

from pages.common.views import Recent

EXPORT_DIR = Path(tempfile.gettempdir()) / "gpt2lab-export"
KEEP_SECONDS = 3600


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _prune() -> None:
    if not EXPORT_DIR.exists():
        return
    cutoff = time.time() - KEEP_SECONDS
    for folder in EXPORT_DIR.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def export_files(stem: str, rows: list[dict[str, Any]], data: dict[str, Any]) -> list[str]:
    """Write `<stem>.csv` (one line per row) and `<stem>.json` (`data`, everything); their paths.

    >>> paths = export_files("demo", [{"token": "a", "p": 0.5}], {"p": [0.5]})
    >>> [Path(p).name for p in paths], Path(paths[0]).read_text().splitlines()
    (['demo.csv', 'demo.json'], ['token,p', 'a,0.5'])
    """
    _prune()
    folder = EXPORT_DIR / uuid.uuid4().hex[:16]
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    json_path.write_text(json.dumps(_clean(data), ensure_ascii=False), encoding="utf-8")
    return [str(csv_path), str(json_path)]


def numbers_box(label: str, elem_id: str) -> gr.File:
    """The download box for a view's numbers: `label` + " (CSV, JSON)", filled by `export_files`."""
    return gr.File(label=f"{label} (CSV, JSON)", file_count="multiple", elem_id=elem_id)


Build = Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]]


class KeptNumbers:
    """The numbers behind the last few views drawn, written to files only when asked.

    A view calls `keep(key, stem, build)` with the inputs it was drawn from as `key`; the
    "numbers" button calls `files(key, redraw)`, which writes `build()`'s rows and data with
    `export_files`, or first redraws the view when its numbers are no longer kept.

    >>> kept = KeptNumbers()
    >>> kept.keep(("lens", "gpt2"), "demo", lambda: ([{"p": 0.5}], {"p": [0.5]}))
    >>> [Path(p).name for p in kept.files(("lens", "gpt2"), redraw=lambda: None)]
    ['demo.csv', 'demo.json']
    """

    def __init__(self, size: int = 16) -> None:
        self._kept = Recent(size)

    def keep(self, key: Hashable, stem: str, build: Build) -> None:
        self._kept.put(key, (stem, build))

    def files(self, key: Hashable, redraw: Callable[[], Any]) -> list[str]:
        if self._kept.get(key) is None:
            redraw()  # the view keeps its numbers again (or raises the error it shows)
        hit = self._kept.get(key)
        if hit is None:
            raise gr.Error("Nothing to export: draw the view first.")
        stem, build = hit
        return export_files(stem, *build())


def numbers_button(label: str, elem_id: str) -> tuple[gr.Button, gr.File]:
    """A button that writes a view's numbers on demand, and the download box it fills."""
    with gr.Row(equal_height=False):
        what = label[:1].lower() + label[1:]
        button = gr.Button(
            f"Export {what}", elem_id=f"{elem_id}-btn", size="sm", scale=0, min_width=220
        )
        files = numbers_box(label, elem_id)
    return button, files
