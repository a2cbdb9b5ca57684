"""Readers and writers for GPT-2's vocabulary files, as plain ``ranks: bytes -> int`` tables.

Two on-disk forms hold the same vocabulary:

* OpenAI's original pair: ``encoder.json`` maps each token, written with GPT-2's
  :func:`~gpt.bpe.bytes_to_unicode` characters (a space is ``Ġ``), to its id, plus the special
  ``"<|endoftext|>": 50256``; ``vocab.bpe`` starts with a ``#version`` line and then lists the
  merges in order, one ``left right`` pair per line, in the same characters. GPT-2's ids are
  its ranks: 256 single bytes (in ``bytes_to_unicode`` order, so ``!`` is id 0, not 33), then
  merge ``i`` (0-based) makes token ``256 + i``.
* tiktoken's ``.tiktoken`` file: one ``base64(token bytes) rank`` line per mergeable token.

All readers raise :class:`VocabFileError` (a ``ValueError``) naming the file and the problem.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from gpt.bpe import ranks_to_merges, token_to_unicode, unicode_to_token

GPT2_EOT = "<|endoftext|>"


class VocabFileError(ValueError):
    """A vocabulary file is missing or malformed."""


def _read_text(path: str | os.PathLike) -> str:
    p = Path(path)
    if not p.is_file():
        raise VocabFileError(f"vocabulary file not found: {p}")
    return p.read_text(encoding="utf-8")


def load_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Read a ``.tiktoken`` file (``base64 rank`` per line) into ``bytes -> rank``.

    Blank lines are skipped; anything else that is not two fields, valid base64 and an integer
    raises :class:`VocabFileError` with the line number. Duplicate tokens or ranks are errors too.
    """
    ranks: dict[bytes, int] = {}
    seen_ranks: set[int] = set()
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError("expected 'base64 rank'")
            token = base64.b64decode(fields[0], validate=True)
            rank = int(fields[1])
        except (ValueError, binascii.Error) as e:
            raise VocabFileError(f"{path}: bad .tiktoken line {lineno}: {line[:60]!r} ({e})") from None
        if token in ranks or rank in seen_ranks:
            raise VocabFileError(f"{path}: line {lineno} repeats a token or rank: {line[:60]!r}")
        ranks[token] = rank
        seen_ranks.add(rank)
    if not ranks:
        raise VocabFileError(f"{path}: no tokens in .tiktoken file")
    return ranks


def save_tiktoken_ranks(ranks: dict[bytes, int], path: str | os.PathLike) -> None:
    """Write ``ranks`` as a ``.tiktoken`` file, in rank order."""
    lines = [f"{base64.b64encode(t).decode('ascii')} {r}" for t, r in sorted(ranks.items(), key=lambda kv: kv[1])]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_encoder_json(
    encoder_path: str | os.PathLike, vocab_bpe_path: str | os.PathLike | None = None
) -> tuple[dict[bytes, int], dict[str, int]]:
    """Read OpenAI's ``encoder.json`` (and check it against ``vocab.bpe`` if given).

    Returns ``(ranks, special_tokens)``: ``<|endoftext|>`` is the only special token GPT-2 has;
    every other key is decoded from GPT-2's byte characters. With ``vocab_bpe_path``, merge ``i``
    must make the token whose id is ``256 + i``, else :class:`VocabFileError`.
    """
    try:
        encoder = json.loads(_read_text(encoder_path))
    except json.JSONDecodeError as e:
        raise VocabFileError(f"{encoder_path}: not valid JSON ({e})") from None
    if not isinstance(encoder, dict):
        raise VocabFileError(f"{encoder_path}: expected a JSON object of token -> id")
    ranks: dict[bytes, int] = {}
    specials: dict[str, int] = {}
    for key, idx in encoder.items():
        if not isinstance(idx, int):
            raise VocabFileError(f"{encoder_path}: id of {key!r} is not an integer: {idx!r}")
        if key == GPT2_EOT:
            specials[key] = idx
            continue
        try:
            ranks[unicode_to_token(key)] = idx
        except ValueError as e:
            raise VocabFileError(f"{encoder_path}: {e}") from None
    if len(set(ranks.values()) | set(specials.values())) != len(encoder):
        raise VocabFileError(f"{encoder_path}: two tokens share an id")
    if vocab_bpe_path is not None:
        _check_merges(vocab_bpe_path, ranks)
    return ranks, specials


def _check_merges(path: str | os.PathLike, ranks: dict[bytes, int]) -> None:
    lines = _read_text(path).splitlines()
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    base = sum(1 for t in ranks if len(t) == 1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.split(" ")
        if len(fields) != 2:
            raise VocabFileError(f"{path}: merge {i + 1} is not 'left right': {line!r}")
        try:
            joined = unicode_to_token(fields[0]) + unicode_to_token(fields[1])
        except ValueError as e:
            raise VocabFileError(f"{path}: merge {i + 1}: {e}") from None
        if ranks.get(joined) != base + i:
            raise VocabFileError(
                f"{path}: merge {i + 1} {line!r} makes id {ranks.get(joined)}, "
                f"encoder.json expects {base + i}"
            )


def save_encoder_json(
    ranks: dict[bytes, int], folder: str | os.PathLike, special_tokens: dict[str, int] | None = None
) -> tuple[Path, Path]:
    """Write ``ranks`` as OpenAI-style ``encoder.json`` + ``vocab.bpe`` in ``folder``.

    The merges are recovered from the ranks (:func:`~gpt.bpe.ranks_to_merges`). Returns the two
    paths. This is the converter from a ``.tiktoken`` file to OpenAI's original files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = {token_to_unicode(t): r for t, r in sorted(ranks.items(), key=lambda kv: kv[1])}
    encoder.update(special_tokens or {})
    merges = ranks_to_merges(ranks)
    enc_path, bpe_path = folder / "encoder.json", folder / "vocab.bpe"
    enc_path.write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")
    bpe_lines = ["#version: 0.2"] + [f"{token_to_unicode(a)} {token_to_unicode(b)}" for a, b in merges]
    bpe_path.write_text("\n".join(bpe_lines) + "\n", encoding="utf-8")
    return enc_path, bpe_path
