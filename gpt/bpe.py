"""Byte-level BPE, from scratch: small pure helpers, GPT-2's pre-split regex, and training.

A byte-level BPE vocabulary is a map ``ranks: bytes -> int``. Encoding a piece of text starts
from its UTF-8 bytes, one part per byte, and repeatedly merges the adjacent pair whose
concatenation has the lowest rank, until no adjacent pair is in ``ranks``. The rank of a token
is also its id. This is what tiktoken does, and it is the same as applying an ordered merge
list, because the rank order *is* the merge order.

Text is first split into pieces by a regex (GPT-2's ``GPT2_PATTERN``) so that merges never
cross a word / number / punctuation / whitespace boundary.

Python's ``re`` has no ``\\p{L}`` / ``\\p{N}`` and its ``\\s`` is not Unicode's White_Space
(``str.isspace`` also counts the separators ``\\x1c``-``\\x1f``), so :func:`compile_pattern`
rewrites those escapes as explicit character classes built from :mod:`unicodedata`.
Limitation: ``unicodedata`` follows the Unicode version of the running Python (14.0 for 3.11),
while tiktoken's Rust regex may know newer characters; text holding code points assigned after
that version can split differently.
"""

from __future__ import annotations

import heapq
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import cache

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Unicode's White_Space property (stable since Unicode 6.0). Rust's regex `\s` means exactly this.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)

_NO_RANK = sys.maxsize  # sorts after every real rank, keeps `min` on plain ints


# ----------------------------------------------------------------------------------------------
# small pure helpers


def pair_counts(ids: Sequence[int], counts: dict[tuple[int, int], int] | None = None,
                weight: int = 1) -> dict[tuple[int, int], int]:
    """Count adjacent pairs in ``ids`` (adding ``weight`` each), into ``counts`` if given.

    >>> pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    >>> pair_counts([1, 2], {(1, 2): 5}, weight=3)
    {(1, 2): 8}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` (left to right) by ``new_id``.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 9)
    [9, 3, 9]
    >>> merge([7, 7, 7], (7, 7), 8)
    [8, 7]
    """
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from each byte to a printable character (used in encoder.json).

    Printable Latin-1 bytes map to themselves; the other 68 bytes (controls, space, ...) map to
    U+0100 onwards, in byte order. So a space is written ``Ġ`` and a newline ``Ċ``.

    >>> m = bytes_to_unicode()
    >>> m[ord("A")], m[ord(" ")], m[ord("\\n")], len(m)
    ('A', 'Ġ', 'Ċ', 256)
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@cache
def unicode_to_bytes() -> dict[str, int]:
    """Inverse of :func:`bytes_to_unicode`.

    >>> unicode_to_bytes()["Ġ"]
    32
    """
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_unicode(token: bytes) -> str:
    """Write token bytes the way GPT-2's encoder.json and vocab.bpe do.

    >>> token_to_unicode(b" hello\\n")
    'ĠhelloĊ'
    """
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def unicode_to_token(text: str) -> bytes:
    """Inverse of :func:`token_to_unicode`; raises ``ValueError`` for a foreign character.

    >>> unicode_to_token("ĠhelloĊ")
    b' hello\\n'
    """
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in text)
    except KeyError as e:
        raise ValueError(f"{text!r} holds {e.args[0]!r}, which is not a GPT-2 byte char") from None


def bpe_parts(piece: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Split one pre-split piece into tokens: merge the lowest-rank adjacent pair, repeat.

    Ties go to the leftmost pair, as in tiktoken. Long pieces use a heap (O(n log n)).

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257, b"bc": 258}
    >>> bpe_parts(b"abcab", ranks)
    [b'abc', b'ab']
    """
    if len(piece) > 64:
        return _bpe_parts_heap(piece, ranks)
    parts = [piece[i:i + 1] for i in range(len(piece))]
    get = ranks.get
    pair_ranks = [get(parts[i] + parts[i + 1], _NO_RANK) for i in range(len(parts) - 1)]
    while pair_ranks:
        best = min(pair_ranks)
        if best == _NO_RANK:
            break
        i = pair_ranks.index(best)
        parts[i] += parts[i + 1]
        del parts[i + 1]
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], _NO_RANK)
        if i < len(pair_ranks):
            pair_ranks[i] = get(parts[i] + parts[i + 1], _NO_RANK)
    return parts


def _bpe_parts_heap(piece: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Same result as the list loop in :func:`bpe_parts`, for long pieces.

    Parts form a linked list indexed by their first byte offset; the heap holds candidate pairs
    as ``(rank, left, left_version, right, right_version)``. A merge bumps the left part's
    version and kills the right part, so stale heap entries are recognised and skipped. Popping
    the smallest ``(rank, left)`` is exactly "lowest rank, leftmost first".
    """
    n = len(piece)
    if n < 2:
        return [piece] if piece else []
    parts = [piece[i:i + 1] for i in range(n)]
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    version = [0] * n
    get = ranks.get
    heap = []
    for i in range(n - 1):
        r = get(parts[i] + parts[i + 1])
        if r is not None:
            heap.append((r, i, 0, i + 1, 0))
    heapq.heapify(heap)
    while heap:
        _, i, vi, j, vj = heapq.heappop(heap)
        if version[i] != vi or version[j] != vj:
            continue
        parts[i] += parts[j]
        version[i] += 1
        version[j] = -1
        k = nxt[j]
        nxt[i] = k
        if k != -1:
            prv[k] = i
            r = get(parts[i] + parts[k])
            if r is not None:
                heapq.heappush(heap, (r, i, version[i], k, version[k]))
        p = prv[i]
        if p != -1:
            r = get(parts[p] + parts[i])
            if r is not None:
                heapq.heappush(heap, (r, p, version[p], i, version[i]))
    out = []
    i = 0
    while i != -1:
        out.append(parts[i])
        i = nxt[i]
    return out


def ranks_to_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Recover the ordered merge list (pairs of byte strings) from a ranks table.

    Each multi-byte token is split by running BPE with only the lower ranks; the two parts left
    are the pair that was merged to make it. Single bytes are the base alphabet, not merges.

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257}
    >>> ranks_to_merges(ranks)
    [(b'a', b'b'), (b'ab', b'c')]
    """
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        lower = _RankLimit(ranks, rank)
        parts = bpe_parts(token, lower)  # type: ignore[arg-type]
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not the merge of two lower tokens")
        merges.append((parts[0], parts[1]))
    return merges


class _RankLimit:
    """A read-only view of ``ranks`` hiding every rank >= ``limit`` (for :func:`ranks_to_merges`)."""

    def __init__(self, ranks: dict[bytes, int], limit: int):
        self.ranks, self.limit = ranks, limit

    def get(self, key: bytes, default: int | None = None) -> int | None:
        r = self.ranks.get(key)
        return r if r is not None and r < self.limit else default


# ----------------------------------------------------------------------------------------------
# the pre-split regex


@cache
def _category_ranges() -> dict[str, list[tuple[int, int]]]:
    """General category -> sorted code point ranges, from one pass over all of Unicode."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    category = unicodedata.category
    start, current = 0, category("\0")
    for cp in range(1, sys.maxunicode + 1):
        cat = category(chr(cp))
        if cat != current:
            ranges.setdefault(current, []).append((start, cp - 1))
            start, current = cp, cat
    ranges.setdefault(current, []).append((start, sys.maxunicode))
    return ranges


def _class_body(ranges: Iterable[tuple[int, int]]) -> str:
    """Ranges -> the inside of a ``re`` character class, adjacent ranges joined."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])

    def esc(cp: int) -> str:
        return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"

    return "".join(esc(lo) if lo == hi else f"{esc(lo)}-{esc(hi)}" for lo, hi in merged)


@cache
def unicode_class(name: str) -> str:
    """The inside of a ``re`` character class for ``\\p{name}`` (``L``, ``N``, ``Lu``, ...).

    >>> unicode_class("Nd")[:26]
    '\\\\u0030-\\\\u0039\\\\u0660-\\\\u0669'
    """
    if name == "White_Space":
        return _class_body((ord(c), ord(c)) for c in WHITE_SPACE)
    table = _category_ranges()
    picked = [r for cat, rs in table.items() if cat.startswith(name) for r in rs]
    if not picked or len(name) > 2:
        raise ValueError(f"unsupported Unicode class \\p{{{name}}}")
    return _class_body(picked)


_ESCAPE = re.compile(r"\\[pP]\{(\w+)\}|\\[sS]|\\.|\[\^?|\]|\$", re.DOTALL)


@cache
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a tiktoken-style pattern (``\\p{L}``, ``\\p{N}``, Unicode ``\\s``) with ``re``.

    ``\\p{X}`` / ``\\s`` become explicit classes; ``\\P{X}`` / ``\\S`` become negated classes
    (not allowed inside ``[...]``, where ``re`` cannot express them). ``$`` becomes ``\\Z``:
    in Rust it means end of text, while Python's ``$`` also matches before a final newline.

    >>> compile_pattern(GPT2_PATTERN).findall("Hello world's 123!!  \\u3000x")
    ['Hello', ' world', "'s", ' 123', '!!', '  ', '\\u3000', 'x']
    """
    out: list[str] = []
    in_class = False
    pos = 0
    for m in _ESCAPE.finditer(pattern):
        out.append(pattern[pos:m.start()])
        pos = m.end()
        tok = m.group(0)
        if tok.startswith("["):
            in_class = True
            out.append(tok)
            continue
        if tok == "]":
            in_class = False
            out.append(tok)
            continue
        if tok == "$":
            out.append(tok if in_class else r"\Z")
            continue
        if tok in (r"\s", r"\S") or m.group(1):
            body = unicode_class(m.group(1) or "White_Space")
            negated = tok[1] in "SP"
            if in_class and negated:
                raise ValueError(f"cannot translate {tok} inside a character class")
            out.append(body if in_class else f"[{'^' if negated else ''}{body}]")
            continue
        out.append(tok)
    out.append(pattern[pos:])
    return re.compile("".join(out))


# ----------------------------------------------------------------------------------------------
# training


class TrainingError(ValueError):
    """Training cannot give what was asked (too small a vocab size, too little text)."""


def train_bpe(
    text: str,
    vocab_size: int,
    pattern: str = GPT2_PATTERN,
    special_tokens: Sequence[str] = ("<|endoftext|>",),
    progress: Callable[[int, int], None] | None = None,
    fewer_ok: bool = False,
) -> dict[bytes, int]:
    """Learn byte-level BPE ranks: ids 0..255 are the bytes, then one id per merge, in order.

    ``vocab_size`` counts the special tokens too (they take the ids after the merges; the caller
    assigns them), so ``vocab_size - 256 - len(special_tokens)`` merges are learned. Special
    tokens are cut out of the text first so that no merge crosses or learns them.

    Counting works on unique pre-split pieces weighted by frequency. ``pair -> count`` and
    ``pair -> pieces holding it`` are kept up to date: a merge only revisits the pieces that
    hold its pair, and the most frequent pair comes from a lazy max-heap (ties: smallest ids).

    Unique byte strings: the byte string of a new pair can already be a token, because different
    pairs can spell it (``a + bc`` and ``ab + c``). Such a pair is merged into the *existing* id
    and spends no vocab slot, so every id has a distinct byte string (which tiktoken requires) and
    training goes on until the vocab is full.

    ``progress(done, total)`` is called after every new token. A text too small for the merges
    asked raises TrainingError, or with ``fewer_ok`` returns the merges it allows.

    >>> len(train_bpe("abab", 300, special_tokens=(), fewer_ok=True)) - 256  # ab, abab
    2
    >>> ranks = train_bpe("aaab aaab aaab", 259, special_tokens=())
    >>> sorted((r, t) for t, r in ranks.items() if r >= 256)
    [(256, b'aa'), (257, b'ab'), (258, b'aaab')]
    """
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise TrainingError(
            f"vocab_size={vocab_size} is below 256 byte tokens + {len(special_tokens)} special tokens"
        )
    if not text:
        raise TrainingError("training text is empty")
    regex = compile_pattern(pattern)
    if special_tokens:
        cut = "|".join(re.escape(s) for s in sorted(special_tokens, key=len, reverse=True))
        chunks = re.split(cut, text)
    else:
        chunks = [text]
    piece_counts: Counter[str] = Counter()
    for chunk in chunks:
        piece_counts.update(regex.findall(chunk))

    seqs: list[list[int]] = [list(p.encode("utf-8")) for p in piece_counts]
    weights: list[int] = list(piece_counts.values())
    counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for idx, seq in enumerate(seqs):
        w = weights[idx]
        for pair in zip(seq, seq[1:]):
            counts[pair] = counts.get(pair, 0) + w
            s = where.get(pair)
            if s is None:
                where[pair] = {idx}
            else:
                s.add(idx)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)

    vocab: list[bytes] = [bytes([b]) for b in range(256)]
    ranks: dict[bytes, int] = {tok: i for i, tok in enumerate(vocab)}
    done = 0
    while done < n_merges:
        pair = _pop_best(heap, counts)
        if pair is None and fewer_ok:
            break
        if pair is None:
            raise TrainingError(
                f"training text too small: only {done} of {n_merges} merges were possible; "
                "give more text or a smaller vocab_size"
            )
        joined = vocab[pair[0]] + vocab[pair[1]]
        new_id = ranks.get(joined)
        if new_id is None:
            new_id = len(vocab)
            vocab.append(joined)
            ranks[joined] = new_id
            done += 1
            if progress is not None:
                progress(done, n_merges)
        _apply_merge(pair, new_id, seqs, weights, counts, where, heap)
    return ranks


def _pop_best(heap: list, counts: dict[tuple[int, int], int]) -> tuple[int, int] | None:
    """Pop the most frequent live pair from the lazy heap (entries may be stale)."""
    while heap:
        neg, pair = heapq.heappop(heap)
        c = counts.get(pair, 0)
        if c > 0 and c == -neg:
            return pair
    return None


def _apply_merge(pair, new_id, seqs, weights, counts, where, heap) -> None:
    """Merge ``pair`` in every piece that holds it and update the pair indexes incrementally."""
    a, b = pair
    delta: dict[tuple[int, int], int] = {}
    for idx in where.pop(pair, ()):
        seq = seqs[idx]
        new = merge(seq, pair, new_id)
        if len(new) == len(seq):
            continue  # stale index entry: this piece no longer holds the pair
        w = weights[idx]
        for p in zip(seq, seq[1:]):
            delta[p] = delta.get(p, 0) - w
        for p in zip(new, new[1:]):
            delta[p] = delta.get(p, 0) + w
            if new_id in p:
                s = where.get(p)
                if s is None:
                    where[p] = {idx}
                else:
                    s.add(idx)
        seqs[idx] = new
    for p, d in delta.items():
        if d:
            c = counts.get(p, 0) + d
            counts[p] = c
            if c > 0:
                heapq.heappush(heap, (-c, p))
    counts.pop(pair, None)
