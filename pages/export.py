"""Export: the numbers behind a chart or table as CSV and JSON files for a `gr.File` download.

Charts are saved as images from their own toolbar (Plotly's camera button, "Download plot as a
png"). Files written here live in a temporary folder and are deleted after an hour.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

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
