"""Generators for the project's own bundled data: stories, SMS messages and instructions.

Everything is written or generated here, from seeded ``random.Random`` objects, so running the
generators twice gives byte-identical files. ``python -m datagen`` writes them all under
``data/``; :func:`render_all` returns the same files as a ``{relative path: text}`` dict.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SEED = 2024


def render_all(seed: int = DEFAULT_SEED) -> dict[str, str]:
    """Every data file, as ``{path relative to data/: text}``."""
    from datagen import instructions, readme, sms, stories

    files: dict[str, str] = {}
    corpus = stories.generate_corpus(seed=seed)
    files["corpus/stories.txt"] = corpus.text
    sms_splits = sms.generate_splits(seed=seed + 1)
    for name, rows in sms_splits.items():
        files[f"sms/{name}.tsv"] = sms.to_tsv(rows)
    sms_texts = frozenset(text.lower() for rows in sms_splits.values() for _, text in rows)
    inst_splits = instructions.generate_splits(seed=seed + 2, exclude_inputs=sms_texts)
    for name, items in inst_splits.items():
        files[f"instructions/{name}.json"] = instructions.to_json(items)
    files["README.md"] = readme.render(seed, corpus, sms_splits, inst_splits)
    return files


def write_all(out: Path, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Write every data file under ``out``; return ``{relative path: size in bytes}``."""
    sizes = {}
    for rel, text in render_all(seed).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        path.write_bytes(data)
        sizes[rel] = len(data)
    return sizes
