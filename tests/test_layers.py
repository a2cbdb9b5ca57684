"""The package's layers: `import gpt` is the core alone, and no module of `gpt` is part of an import
circle. (`lint-imports` checks which layer may import which; see pyproject.toml.)"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys

import grimp

# `import gpt` in a fresh interpreter (1-2 s, mostly torch), started when this module is collected:
# it runs on the core the one-threaded tests leave idle, and the test below reads its answer.
_IMPORT_GPT = concurrent.futures.ThreadPoolExecutor(1).submit(
    subprocess.run,
    [sys.executable, "-c", "import sys, json, gpt; print(json.dumps(sorted(sys.modules)))"],
    capture_output=True, text=True, check=True,
)


def test_import_gpt_loads_the_core_only():
    loaded = json.loads(_IMPORT_GPT.result(timeout=120).stdout)
    ours = {m for m in loaded if m == "gpt" or m.startswith("gpt.")}
    assert ours == {
        "gpt", "gpt.bpe", "gpt.checkpoint", "gpt.classifier", "gpt.config", "gpt.gpt2_vocab",
        "gpt.inside", "gpt.model", "gpt.sampling", "gpt.tokenizer", "gpt.walk",
    }
    for banned in ("huggingface_hub", "gradio", "plotly", "sqlite3", "gpt.jobs", "gpt.lab"):
        assert not any(m == banned or m.startswith(banned + ".") for m in loaded), banned


def test_gpt_has_no_import_circles():
    graph = grimp.build_graph("gpt", exclude_type_checking_imports=True)
    modules = sorted(graph.modules)
    circles = []
    for a in modules:
        for b in graph.find_modules_directly_imported_by(a):
            if a != b and graph.chain_exists(importer=b, imported=a):
                circles.append((a, b))
    assert circles == []


def test_the_core_root_is_small():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "gpt"
    core = sorted(p.stem for p in root.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(core) <= 12, core
