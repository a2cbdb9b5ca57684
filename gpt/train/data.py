"""Training data: language-model windows, spam classification and instruction tuning.

Every reader validates its file completely when it reads it, so nothing fails later inside a
training loop. A bad file raises :class:`DataError`, whose message names the file, the line
(1-based) where that makes sense, what is wrong and what was expected::

    data/sms/bad.tsv, line 3: no tab between label and text; expected 'label<TAB>text'

Three kinds of data, each with a reader, a ``torch.utils.data.Dataset`` and (for the two
fine-tuning kinds) a collate function that pads a batch:

* ``"lm"``: plain UTF-8 text. :func:`read_text_files` -> token ids -> :func:`split_ids` ->
  :func:`lm_windows` gives ``(input (T,), target (T,))`` pairs, the target shifted by one.
* ``"classify"``: SMS Spam Collection TSV (``label<TAB>text``, no header) or CSV with a
  ``label,text`` header. :func:`read_spam`, :func:`balance`, :func:`stratified_split`,
  :class:`SpamDataset` whose ``collate`` gives ``(input_ids, last_index, labels)``.
* ``"instruct"``: Alpaca JSON (a list) or JSONL (one object per line).
  :func:`read_instructions`, :func:`format_prompt`, :class:`InstructionDataset` whose
  ``collate`` gives ``(inputs, targets)`` with ``-100`` where no loss is taken.

:func:`validate_file` is the cheap check a job system runs at submit time.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch.utils.data import Dataset

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB per file
IGNORE_INDEX = -100  # the default ignore_index of torch.nn.functional.cross_entropy
EOT_TEXT = "<|endoftext|>"
LABELS = ("ham", "spam")  # index = class id

DataKind = Literal["lm", "classify", "instruct"]
PathLike = str | Path


class DataError(ValueError):
    """A data file (or a token stream) is unusable; the message says where and why."""


class TokenizerLike(Protocol):
    """What the datasets need from a tokenizer (:class:`gpt.tokenizer.Tokenizer` fits)."""

    @property
    def eot_token(self) -> int | None: ...

    def encode(self, text: str, allowed_special: Any = "all") -> list[int]: ...


def _at(path: PathLike, line: int | None = None) -> str:
    """``"file"`` or ``"file, line N"``: the start of every error message."""
    return f"{path}" if line is None else f"{path}, line {line}"


# ----------------------------------------------------------------------------------------------
# reading text files


def read_text(path: PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The UTF-8 text of one file (a leading byte-order mark dropped), fully checked.

    Raises DataError for a missing, oversized, empty or non-UTF-8 file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a readable data file")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"{path}: file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.1f} MiB limit; "
            "expected a smaller file (or raise max_bytes)"
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{_at(path, line)}: not valid UTF-8 (byte {data[e.start]:#04x} at offset {e.start}); "
            "expected a UTF-8 text file"
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DataError(f"{path}: file is empty; expected some text")
    return text


def read_text_files(
    paths: PathLike | Sequence[PathLike],
    max_bytes: int = DEFAULT_MAX_BYTES,
    separator: str = f"\n{EOT_TEXT}\n",
) -> str:
    """The text of one or more files, joined by ``separator`` (an end-of-text line by default,
    so documents from different files do not run into each other). Each file is checked by
    :func:`read_text`; ``max_bytes`` caps each file."""
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise DataError("no text files given; expected at least one path")
    return separator.join(read_text(p, max_bytes) for p in paths)


# ----------------------------------------------------------------------------------------------
# language-model data


def _as_ids(ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(ids, dtype=torch.long)
    if t.dim() != 1:
        raise ValueError(f"token ids must be one-dimensional, got shape {tuple(t.shape)}")
    return t


def split_ids(
    ids: Sequence[int] | torch.Tensor, val_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a token stream into (train, val): the first part and the last ``val_fraction``.

    Splitting the stream (not the windows) keeps every val window apart from every train one.

    >>> train, val = split_ids(list(range(10)), 0.2)
    >>> train.tolist(), val.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    t = _as_ids(ids)
    cut = len(t) - round(len(t) * val_fraction)
    return t[:cut], t[cut:]


class LMWindows(Dataset):
    """Sliding windows over a token stream: item ``i`` is ``(x, y)`` with
    ``x = ids[i*stride : i*stride + context]`` and ``y`` the same window shifted by one.

    A stride equal to the context (the default) gives non-overlapping windows; a smaller
    stride overlaps them, a larger one skips tokens.

    >>> ds = LMWindows(list(range(10)), context=4, stride=3)
    >>> len(ds), [t.tolist() for t in ds[1]]
    (2, [[3, 4, 5, 6], [4, 5, 6, 7]])
    """

    def __init__(self, ids: Sequence[int] | torch.Tensor, context: int, stride: int | None = None):
        stride = context if stride is None else stride
        if context <= 0 or stride <= 0:
            raise ValueError(f"context and stride must be positive, got {context}, {stride}")
        self.ids = _as_ids(ids)
        self.context = context
        self.stride = stride
        if len(self.ids) < context + 1:
            raise DataError(
                f"only {len(self.ids)} tokens; a window of context {context} needs at least "
                f"{context + 1} (use more text, a smaller context or a smaller val fraction)"
            )
        self.n = (len(self.ids) - context - 1) // stride + 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self.n <= i < self.n:
            raise IndexError(f"window {i} out of range for {self.n} windows")
        start = (i % self.n) * self.stride
        chunk = self.ids[start : start + self.context + 1]
        return chunk[:-1], chunk[1:]  # (T,), (T,)


def lm_windows(
    ids: Sequence[int] | torch.Tensor, context: int, stride: int | None = None
) -> LMWindows:
    """:class:`LMWindows` over ``ids`` (stride defaults to ``context``)."""
    return LMWindows(ids, context, stride)


def lm_datasets(
    paths: PathLike | Sequence[PathLike],
    tokenizer: TokenizerLike,
    context: int,
    stride: int | None = None,
    val_fraction: float = 0.1,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[LMWindows, LMWindows | None]:
    """Read, tokenize (``<|endoftext|>`` lines become the eot id), split and window text files.

    Returns (train, val); val is None when ``val_fraction`` is 0.
    """
    ids = tokenizer.encode(read_text_files(paths, max_bytes), allowed_special="all")
    train, val = split_ids(ids, val_fraction)
    if val_fraction == 0:
        return LMWindows(train, context, stride), None
    return LMWindows(train, context, stride), LMWindows(val, context, stride)


# ----------------------------------------------------------------------------------------------
# spam classification data


@dataclass(frozen=True)
class SpamExample:
    """One message and its class: 0 = ham, 1 = spam."""

    text: str
    label: int

    @property
    def label_name(self) -> str:
        return LABELS[self.label]


def parse_label(raw: str) -> int | None:
    """``ham``/``spam`` in any case, or ``0``/``1`` -> 0 or 1; anything else -> None.

    >>> [parse_label(s) for s in ("HAM", " spam", "1", "maybe")]
    [0, 1, 1, None]
    """
    return {"ham": 0, "spam": 1, "0": 0, "1": 1}.get(raw.strip().lower())


def _spam_example(path: Path, line: int, label: str, text: str) -> SpamExample:
    value = parse_label(label)
    if value is None:
        raise DataError(
            f"{_at(path, line)}: unknown label {label.strip()[:40]!r}; "
            "expected ham or spam (any case), or 0 or 1"
        )
    text = text.strip()
    if not text:
        raise DataError(f"{_at(path, line)}: empty text; expected a message after the label")
    return SpamExample(text, value)


def _parse_spam_tsv(path: Path, text: str) -> Iterator[SpamExample]:
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue  # blank lines (a trailing newline, say) carry no record
        label, tab, message = line.partition("\t")
        if not tab:
            raise DataError(
                f"{_at(path, n)}: no tab between label and text; expected 'label<TAB>text'"
            )
        yield _spam_example(path, n, label, message)


def _parse_spam_csv(path: Path, text: str) -> Iterator[SpamExample]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    label_col = text_col = 0
    start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1  # a quoted field may span lines
            if not row or not "".join(row).strip():
                continue
            if header is None:
                header = [h.strip().lower() for h in row]
                missing = [c for c in ("label", "text") if c not in header]
                if missing:
                    raise DataError(
                        f"{_at(path, line)}: header lacks the {' and '.join(missing)} column; "
                        f"expected a header with 'label' and 'text', got {row!r}"[:300]
                    )
                label_col, text_col = header.index("label"), header.index("text")
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{_at(path, line)}: {len(row)} fields, expected {len(header)} "
                    f"as in the header ({','.join(header)})"
                )
            yield _spam_example(path, line, row[label_col], row[text_col])
    except csv.Error as e:
        raise DataError(f"{_at(path, reader.line_num)}: malformed CSV ({e})") from None
    if header is None:
        raise DataError(f"{path}: no header; expected a first line 'label,text'")


def _is_csv(path: Path, text: str) -> bool:
    """``.csv`` files are CSV, ``.tsv`` TSV; otherwise a first line with a tab is TSV."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return path.suffix.lower() == ".csv"
    first = text.lstrip().split("\n", 1)[0]
    return "\t" not in first and "," in first


def read_spam(path: PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> list[SpamExample]:
    """All examples of a spam file: TSV ``label<TAB>text`` (no header, the SMS Spam Collection
    layout) or CSV with a header naming ``label`` and ``text`` (other columns ignored).

    Raises DataError at the first bad line.
    """
    path = Path(path)
    text = read_text(path, max_bytes)
    parse = _parse_spam_csv if _is_csv(path, text) else _parse_spam_tsv
    examples = list(parse(path, text))
    if not examples:
        raise DataError(f"{path}: no examples; expected at least one labelled message")
    return examples


def label_counts(examples: Sequence[SpamExample]) -> dict[str, int]:
    """``{"ham": n0, "spam": n1}``."""
    counts = Counter(e.label for e in examples)
    return {name: counts.get(i, 0) for i, name in enumerate(LABELS)}


def class_weights(counts: Sequence[int]) -> list[float]:
    """A loss weight per class, inversely proportional to its count: n / (K * n_k) (scikit-learn's
    class_weight="balanced"), so each class weighs as much in total. A class with no examples
    gets weight 1 (it never occurs in the loss anyway).

    >>> [round(w, 3) for w in class_weights([1628, 218])]  # real SMS: 12% spam
    [0.567, 4.234]
    >>> class_weights([5, 5])
    [1.0, 1.0]
    """
    n, k = sum(counts), len(counts)
    return [n / (k * c) if c else 1.0 for c in counts]


def balance(examples: Sequence[SpamExample], seed: int = 123) -> list[SpamExample]:
    """Undersample every class to the size of the smallest (a seeded random choice), keeping
    the original order of the examples kept."""
    by_label: dict[int, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    if len(by_label) < len(LABELS):
        raise DataError(f"cannot balance: only {label_counts(examples)}; expected both classes")
    rng = random.Random(seed)
    n = min(len(idx) for idx in by_label.values())
    keep = sorted(i for label in sorted(by_label) for i in rng.sample(by_label[label], n))
    return [examples[i] for i in keep]


def stratified_split(
    examples: Sequence[SpamExample],
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 123,
) -> list[list[SpamExample]]:
    """Split into parts (e.g. train, val, test) that each keep the class proportions.

    Each class is shuffled with ``seed`` and cut by ``round(n * fraction)`` (the last part
    takes the rest); each part is then shuffled, so the same seed gives the same split.
    """
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    rng = random.Random(seed)
    parts: list[list[SpamExample]] = [[] for _ in fractions]
    for label in range(len(LABELS)):
        group = [e for e in examples if e.label == label]
        rng.shuffle(group)
        start = 0
        for k, f in enumerate(fractions):
            end = (
                len(group)
                if k == len(fractions) - 1
                else min(len(group), start + round(len(group) * f))
            )
            parts[k].extend(group[start:end])
            start = end
    for part in parts:
        rng.shuffle(part)
    return parts


def collate_spam(
    batch: Sequence[tuple[torch.Tensor, int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch of ``(ids, label)`` on the right with ``pad_id``.

    Returns ``input_ids (B, T)``, ``last_index (B,)`` (the position of each row's last real
    token, whose output classifies the row) and ``labels (B,)``, all long.

    >>> x, last, y = collate_spam([(torch.tensor([5, 6, 7]), 1), (torch.tensor([8]), 0)], 0)
    >>> x.tolist(), last.tolist(), y.tolist()
    ([[5, 6, 7], [8, 0, 0]], [2, 0], [1, 0])
    """
    lengths = [len(ids) for ids, _ in batch]
    input_ids = torch.full((len(batch), max(lengths)), pad_id, dtype=torch.long)  # (B, T)
    for row, (ids, _) in enumerate(batch):
        input_ids[row, : len(ids)] = ids
    last_index = torch.tensor(lengths, dtype=torch.long) - 1  # (B,)
    labels = torch.tensor([label for _, label in batch], dtype=torch.long)  # (B,)
    return input_ids, last_index, labels


def _pad_id(tokenizer: TokenizerLike, pad_id: int | None) -> int:
    if pad_id is not None:
        return pad_id
    if tokenizer.eot_token is None:
        raise ValueError("the tokenizer has no <|endoftext|> token; pass pad_id")
    return tokenizer.eot_token


class SpamDataset(Dataset):
    """Tokenized messages, each cut to ``max_length`` tokens (at most the model's context).

    Item ``i`` is ``(ids (L,), label)``; pass ``collate_fn=dataset.collate`` to a DataLoader
    to pad batches with ``pad_id`` (default: the tokenizer's end-of-text id).
    """

    def __init__(
        self,
        examples: Sequence[SpamExample],
        tokenizer: TokenizerLike,
        max_length: int,
        pad_id: int | None = None,
    ):
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.examples = list(examples)
        self.max_length = max_length
        self.pad_id = _pad_id(tokenizer, pad_id)
        # Special-token text inside a message is just text: never let it become an eot.
        self.ids = [
            torch.tensor(tokenizer.encode(e.text, allowed_special="none")[:max_length])
            for e in self.examples
        ]
        self.collate = partial(collate_spam, pad_id=self.pad_id)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.ids[i], self.examples[i].label

    @property
    def longest(self) -> int:
        """Length of the longest (truncated) message, in tokens."""
        return max((len(t) for t in self.ids), default=0)


# ----------------------------------------------------------------------------------------------
# instruction data


PROMPT_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)


@dataclass(frozen=True)
class Instruction:
    """One Alpaca record; ``input`` may be empty."""

    instruction: str
    input: str = ""
    output: str = ""


def format_prompt(example: Instruction) -> str:
    """The Alpaca prompt: preamble, instruction, the input when there is one, then the
    response header (the model writes what follows).

    >>> print(format_prompt(Instruction("Add 2 and 3.", "", "5")), end="|")
    Below is an instruction that describes a task. Write a response that appropriately completes the request.
    <BLANKLINE>
    ### Instruction:
    Add 2 and 3.
    <BLANKLINE>
    ### Response:
    |
    """
    text = f"{PROMPT_PREAMBLE}\n\n### Instruction:\n{example.instruction}"
    if example.input:
        text += f"\n\n### Input:\n{example.input}"
    return text + "\n\n### Response:\n"


def _instruction_from(obj: Any, path: Path, line: int) -> Instruction:
    where = _at(path, line)
    if not isinstance(obj, dict):
        raise DataError(
            f"{where}: a JSON {type(obj).__name__}, expected an object with "
            "'instruction', optional 'input' and 'output'"
        )
    for key in ("instruction", "output"):
        if key not in obj:
            raise DataError(f"{where}: no {key!r} field; expected 'instruction' and 'output'")
    fields = {}
    for key in ("instruction", "input", "output"):
        value = obj.get(key)
        if value is None and key == "input":
            value = ""
        if not isinstance(value, str):
            raise DataError(f"{where}: {key!r} is a {type(value).__name__}; expected a string")
        fields[key] = value
    return Instruction(**fields)


def _json_array_items(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """``(line, value)`` for each element of a top-level JSON array, with its start line."""
    decoder = json.JSONDecoder()
    n = len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    i = skip(0)
    if text[i] != "[":
        value = json.loads(text)  # raises with a line number when the JSON is broken
        raise DataError(
            f"{_at(path, 1)}: the top level is a JSON {type(value).__name__}; expected a list "
            "of objects (or a .jsonl file with one object per line)"
        )
    i, line, seen = skip(i + 1), 1, 0
    closed = i < n and text[i] == "]"
    while not closed:
        line += text.count("\n", seen, i)
        seen = i
        value, i = decoder.raw_decode(text, i)  # JSONDecodeError at a bad or missing value
        yield line, value
        i = skip(i)
        if i < n and text[i] == ",":
            i = skip(i + 1)
        elif i < n and text[i] == "]":
            closed = True
        else:
            where = _at(path, text.count("\n", 0, i) + 1)
            problem = "the list is not closed" if i >= n else "unexpected text"
            raise DataError(f"{where}: {problem}; expected ',' or ']' after a list element")
    if skip(i + 1) < n:
        where = _at(path, text.count("\n", 0, skip(i + 1)) + 1)
        raise DataError(f"{where}: extra data after the list; expected one JSON list")


def _parse_json(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    try:
        yield from _json_array_items(path, text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{_at(path, e.lineno)}: invalid JSON ({e.msg}); expected a JSON list of objects "
            "(name the file .jsonl for one object per line)"
        ) from None


def _parse_jsonl(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{_at(path, n)}: invalid JSON ({e.msg}); expected one object per line"
            ) from None


def _instruction_records(path: Path, max_bytes: int) -> Iterator[tuple[int, Instruction]]:
    text = read_text(path, max_bytes)
    parse = _parse_jsonl if path.suffix.lower() == ".jsonl" else _parse_json
    for line, obj in parse(path, text):
        yield line, _instruction_from(obj, path, line)


def _read_instructions(
    path: Path, max_bytes: int, skip_empty: bool
) -> tuple[list[Instruction], int]:
    """(records kept, records skipped for an empty instruction or output)."""
    kept, skipped = [], 0
    for line, ex in _instruction_records(path, max_bytes):
        empty = [k for k in ("instruction", "output") if not getattr(ex, k).strip()]
        if not empty:
            kept.append(ex)
        elif skip_empty:
            skipped += 1
        else:
            raise DataError(
                f"{_at(path, line)}: empty {empty[0]!r}; expected some text "
                "(or read with skip_empty=True to drop such records)"
            )
    if not kept:
        raise DataError(f"{path}: no records; expected a list of instruction objects")
    return kept, skipped


def read_instructions(
    path: PathLike, max_bytes: int = DEFAULT_MAX_BYTES, skip_empty: bool = False
) -> list[Instruction]:
    """All records of an Alpaca JSON list (``.json``) or JSONL file (``.jsonl``).

    An empty ``instruction`` or ``output`` is an error unless ``skip_empty`` drops such
    records (Stanford's original ``alpaca_data.json`` has a few empty outputs).
    """
    return _read_instructions(Path(path), max_bytes, skip_empty)[0]


def collate_instructions(
    batch: Sequence[tuple[torch.Tensor, int]],
    pad_id: int,
    mask_prompt: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of ``(ids, prompt_length)`` and shift it into ``(inputs, targets)``.

    ``ids`` is prompt + response + end-of-text. Targets past each row's end (padding) are
    ``ignore_index``; the row's own end-of-text target stays, so the model learns to stop.
    With ``mask_prompt`` the targets inside the prompt are ignored too. Shapes ``(B, T)``
    with ``T`` one less than the longest ``ids``.

    >>> x, y = collate_instructions([(torch.tensor([1, 2, 3, 9]), 2), (torch.tensor([4, 9]), 1)],
    ...                             pad_id=9, mask_prompt=True)
    >>> x.tolist(), y.tolist()
    ([[1, 2, 3], [4, 9, 9]], [[-100, 3, 9], [9, -100, -100]])
    """
    longest = max(len(ids) for ids, _ in batch)
    seqs = torch.full((len(batch), longest), pad_id, dtype=torch.long)  # (B, T+1)
    for row, (ids, _) in enumerate(batch):
        seqs[row, : len(ids)] = ids
    inputs, targets = seqs[:, :-1], seqs[:, 1:].clone()  # (B, T), (B, T)
    for row, (ids, prompt_length) in enumerate(batch):
        targets[row, len(ids) - 1 :] = ignore_index  # target j is token j+1: padding from here
        if mask_prompt:
            targets[row, : prompt_length - 1] = ignore_index  # tokens 1..prompt_length-1
    return inputs, targets


class InstructionDataset(Dataset):
    """Tokenized Alpaca records: item ``i`` is ``(ids (L,), prompt_length)``, where ``ids`` is
    prompt + output + end-of-text cut to ``context + 1`` tokens (``context`` inputs after the
    shift). Pass ``collate_fn=dataset.collate`` to a DataLoader.

    With ``mask_prompt``, records whose prompt alone fills the context would have no target
    left; they are dropped and counted in ``dropped``.
    """

    def __init__(
        self,
        examples: Sequence[Instruction],
        tokenizer: TokenizerLike,
        context: int,
        mask_prompt: bool = False,
        pad_id: int | None = None,
        ignore_index: int = IGNORE_INDEX,
    ):
        if context <= 0:
            raise ValueError(f"context must be positive, got {context}")
        eot = tokenizer.eot_token
        if eot is None:
            raise ValueError("the tokenizer has no <|endoftext|> token to end each response")
        self.context = context
        self.pad_id = _pad_id(tokenizer, pad_id)
        self.items: list[tuple[torch.Tensor, int]] = []
        self.truncated = self.dropped = 0
        for ex in examples:
            prompt = tokenizer.encode(format_prompt(ex), allowed_special="none")
            ids = prompt + tokenizer.encode(ex.output, allowed_special="none") + [eot]
            if len(ids) > context + 1:
                ids, self.truncated = ids[: context + 1], self.truncated + 1
            if mask_prompt and len(prompt) >= len(ids):
                self.dropped += 1
                continue
            self.items.append((torch.tensor(ids), min(len(prompt), len(ids))))
        if not self.items:
            raise DataError(
                f"every record's prompt is longer than the context ({context} tokens); "
                "expected a larger context or shorter prompts"
            )
        self.collate = partial(
            collate_instructions,
            pad_id=self.pad_id,
            mask_prompt=mask_prompt,
            ignore_index=ignore_index,
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.items[i]


# ----------------------------------------------------------------------------------------------
# cheap checks at submit time


def validate_file(
    kind: DataKind, path: PathLike, max_bytes: int = DEFAULT_MAX_BYTES, skip_empty: bool = False
) -> dict[str, Any]:
    """Read and check a file as ``kind`` (no tokenizing); return a summary or raise DataError.

    ``lm``: bytes, characters, lines, documents (end-of-text separated). ``classify``:
    examples, labels ``{"ham", "spam"}``, spam fraction. ``instruct``: examples, how many have
    an input (``skip_empty`` as in :func:`read_instructions`).
    """
    path = Path(path)
    summary: dict[str, Any] = {"kind": kind, "path": str(path)}
    if kind == "lm":
        text = read_text(path, max_bytes)
        docs = [d for d in text.split(EOT_TEXT) if d.strip()]
        summary.update(
            bytes=path.stat().st_size,
            characters=len(text),
            lines=text.count("\n") + (not text.endswith("\n")),
            documents=len(docs),
        )
    elif kind == "classify":
        examples = read_spam(path, max_bytes)
        counts = label_counts(examples)
        summary.update(
            examples=len(examples), labels=counts, spam_fraction=counts["spam"] / len(examples)
        )
    elif kind == "instruct":
        records, skipped = _read_instructions(path, max_bytes, skip_empty)
        summary.update(
            examples=len(records),
            with_input=sum(bool(r.input.strip()) for r in records),
            skipped_empty=skipped,
        )
    else:
        raise ValueError(f"kind must be 'lm', 'classify' or 'instruct', not {kind!r}")
    return summary
