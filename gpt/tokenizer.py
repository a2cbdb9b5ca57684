"""The tokenizer: encode / decode / explain / stream, training, saving, and finding GPT-2's vocab.

A :class:`Tokenizer` is a ranks table (``token bytes -> id``, see :mod:`gpt.bpe`), a pre-split
regex pattern and a few special tokens. It encodes two ways that give identical ids:

* ``backend="python"`` (:meth:`Tokenizer.encode_ordinary_py`): the from-scratch encoder, regex
  split with ``re``, then lowest-rank-first merging per piece, with a piece -> ids cache;
* ``backend="tiktoken"``: a :class:`tiktoken.Encoding` built from the same ranks (fast, Rust).

``backend="auto"`` (the default) uses tiktoken when it accepts the tokenizer, else Python.

Saved format (``Tokenizer.save`` / ``load_tokenizer``), one JSON object::

    {
      "format": "gpt2lab-bpe",            # fixed marker
      "version": 1,                       # format version
      "name": "bpe-4096",                 # free text
      "pattern": "'s|'t|...",             # pre-split regex, tiktoken syntax (\\p{L}, \\p{N}, \\s)
      "special_tokens": {"<|endoftext|>": 4095},
      "vocab": {"0": "AA==", "1": "AQ==", ..., "256": "IHQ="}
    }

``vocab`` maps each id (a decimal string) to the base64 of that token's bytes. The id is the
token's rank, so merge order is id order: tokens of one byte are the base alphabet and each
longer token is the merge of two lower-ranked ones. Special token ids must not collide with it.

Finding GPT-2's vocabulary (:func:`gpt2_tokenizer`), in order:

1. an explicit path, or the ``GPT2LAB_GPT2_VOCAB`` environment variable: a ``.tiktoken`` file,
   or a folder holding ``encoder.json`` + ``vocab.bpe`` or ``gpt2.tiktoken``;
2. ``tiktoken.get_encoding("gpt2")`` (its cache, or a download when online);
3. the ``gpt2.tiktoken`` file shipped in the ``openai-whisper`` package (found without
   importing it);
4. otherwise :class:`TokenizerNotFoundError`, naming these three options.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tiktoken

from gpt.bpe import GPT2_PATTERN, bpe_parts, compile_pattern, train_bpe
from gpt.gpt2_vocab import GPT2_EOT, load_encoder_json, load_tiktoken_ranks

FORMAT = "gpt2lab-bpe"
FORMAT_VERSION = 1
ENV_VAR = "GPT2LAB_GPT2_VOCAB"

Backend = Literal["auto", "python", "tiktoken"]
AllowedSpecial = Literal["all", "none"] | set[str] | frozenset[str]


class TokenizerError(ValueError):
    """A tokenizer file or argument is unusable; the message names the problem."""


class TokenizerNotFoundError(TokenizerError):
    """No tokenizer at the given name or path (or GPT-2's vocabulary could not be found)."""


# ----------------------------------------------------------------------------------------------
# explanations (returned by Tokenizer.explain, drawn by the UI)


@dataclass(frozen=True)
class MergeStep:
    """One merge inside a piece: ``left`` + ``right`` at ``position`` became ``new_id``."""

    position: int
    left: int
    right: int
    left_bytes: bytes
    right_bytes: bytes
    new_id: int
    tokens_after: tuple[int, ...]

    @property
    def new_bytes(self) -> bytes:
        return self.left_bytes + self.right_bytes


@dataclass(frozen=True)
class PieceExplanation:
    """A pre-split piece: its text and bytes, the per-byte start ids, merges, final ids."""

    text: str
    data: bytes
    start_ids: tuple[int, ...]
    steps: tuple[MergeStep, ...]
    ids: tuple[int, ...]
    special: bool = False


@dataclass(frozen=True)
class Explanation:
    """All pieces of a text, in order; ``ids`` is what :meth:`Tokenizer.encode` returns."""

    text: str
    pieces: tuple[PieceExplanation, ...]

    @property
    def ids(self) -> list[int]:
        return [i for p in self.pieces for i in p.ids]


# ----------------------------------------------------------------------------------------------
# the tokenizer


class Tokenizer:
    """Byte-level BPE tokenizer over a ranks table (see the module docstring).

    >>> tok = Tokenizer.train("low lower lowest " * 20, vocab_size=262)
    >>> tok.decode(tok.encode("lowest<|endoftext|>"))
    'lowest<|endoftext|>'
    >>> tok.n_vocab, tok.eot_token
    (262, 261)
    """

    def __init__(
        self,
        ranks: dict[bytes, int],
        special_tokens: dict[str, int] | None = None,
        pattern: str = GPT2_PATTERN,
        name: str = "bpe",
        *,
        encoding: tiktoken.Encoding | None = None,
        source: str = "",
    ):
        special_tokens = dict(special_tokens or {})
        ids = set(ranks.values())
        if len(ids) != len(ranks):
            raise TokenizerError(f"{name}: two tokens share an id")
        clash = [s for s, i in special_tokens.items() if i in ids]
        if clash:
            raise TokenizerError(f"{name}: special token ids collide with the vocab: {clash}")
        if missing := [b for b in range(256) if bytes([b]) not in ranks]:
            raise TokenizerError(f"{name}: byte-level vocab lacks {len(missing)} single bytes")
        self.name = name
        self.source = source
        self.pattern = pattern
        self.ranks = ranks
        self.special_tokens = special_tokens
        self._regex = compile_pattern(pattern)
        self._decoder: dict[int, bytes] = {i: t for t, i in ranks.items()}
        self._decoder.update({i: s.encode("utf-8") for s, i in special_tokens.items()})
        self._n_vocab = max(self._decoder) + 1
        self._cache: dict[str, list[int]] = {}
        self._cache_limit = 200_000
        self._encoding = encoding
        self._encoding_failed = False

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, n_vocab={self.n_vocab}, eot_token={self.eot_token})"

    # --- vocabulary ---------------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        """One more than the largest id (like tiktoken's ``n_vocab``)."""
        return self._n_vocab

    @property
    def eot_token(self) -> int | None:
        """Id of ``<|endoftext|>``, or None when this tokenizer has none."""
        return self.special_tokens.get(GPT2_EOT)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token gives its UTF-8 text)."""
        try:
            return self._decoder[token_id]
        except KeyError:
            raise TokenizerError(f"{self.name}: unknown token id {token_id!r}") from None

    # --- encoding -----------------------------------------------------------------------------

    def encode(
        self, text: str, allowed_special: AllowedSpecial = "all", backend: Backend = "auto"
    ) -> list[int]:
        """Text -> ids. Allowed special tokens (default: all) are cut out first and get their id;
        any other special token text is encoded as ordinary text (never an error)."""
        allowed = self._allowed(allowed_special)
        if self._use_tiktoken(backend):
            return self._encoding.encode(text, allowed_special=allowed, disallowed_special=())
        if not allowed:
            return self.encode_ordinary_py(text)
        ids: list[int] = []
        for i, chunk in enumerate(_special_regex(frozenset(allowed)).split(text)):
            if i % 2:
                ids.append(self.special_tokens[chunk])
            elif chunk:
                ids.extend(self.encode_ordinary_py(chunk))
        return ids

    def encode_ordinary(self, text: str, backend: Backend = "auto") -> list[int]:
        """Text -> ids, treating special token text as ordinary text."""
        if self._use_tiktoken(backend):
            return self._encoding.encode_ordinary(text)
        return self.encode_ordinary_py(text)

    def encode_ordinary_py(self, text: str) -> list[int]:
        """The from-scratch encoder: regex split, then BPE per piece (cached). No specials.

        Lone surrogates (not encodable as UTF-8) become U+FFFD first, as tiktoken does.
        """
        try:
            return self._encode_py(text)
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return self._encode_py(text)

    def _encode_py(self, text: str) -> list[int]:
        cache = self._cache
        if len(cache) > self._cache_limit:
            cache.clear()
        get = cache.get
        ranks = self.ranks
        ids: list[int] = []
        extend = ids.extend
        for piece in self._regex.findall(text):
            piece_ids = get(piece)
            if piece_ids is None:
                data = piece.encode("utf-8")
                rank = ranks.get(data)
                if rank is not None:  # the whole piece is one token: no merging needed
                    piece_ids = [rank]
                else:
                    piece_ids = [ranks[p] for p in bpe_parts(data, ranks)]
                cache[piece] = piece_ids
            extend(piece_ids)
        return ids

    def _allowed(self, allowed_special: AllowedSpecial) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if allowed_special == "none":
            return set()
        unknown = set(allowed_special) - set(self.special_tokens)
        if unknown:
            raise TokenizerError(f"{self.name}: not special tokens here: {sorted(unknown)}")
        return set(allowed_special)

    def _use_tiktoken(self, backend: Backend) -> bool:
        if backend == "python":
            return False
        if backend not in ("auto", "tiktoken"):
            raise TokenizerError(f"backend must be 'auto', 'python' or 'tiktoken', not {backend!r}")
        if self._encoding is None and not self._encoding_failed:
            try:
                self._encoding = self.to_tiktoken()
            except Exception:  # tiktoken rejects the pattern or vocab: stay in Python
                self._encoding_failed = True
        if self._encoding is None and backend == "tiktoken":
            raise TokenizerError(f"{self.name}: tiktoken cannot build this tokenizer")
        return self._encoding is not None

    def to_tiktoken(self) -> tiktoken.Encoding:
        """A :class:`tiktoken.Encoding` with the same ranks, pattern and special tokens."""
        if self._encoding is not None:
            return self._encoding
        return tiktoken.Encoding(
            name=self.name,
            pat_str=self.pattern,
            mergeable_ranks=self.ranks,
            special_tokens=self.special_tokens,
        )

    # --- decoding -----------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the raw bytes (may be partial UTF-8)."""
        try:
            return b"".join(self._decoder[i] for i in ids)
        except KeyError as e:
            raise TokenizerError(f"{self.name}: unknown token id {e.args[0]!r}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; invalid UTF-8 becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        """A fresh :class:`StreamDecoder` for this tokenizer."""
        return StreamDecoder(self)

    # --- explaining ---------------------------------------------------------------------------

    def explain(self, text: str, allowed_special: AllowedSpecial = "all") -> Explanation:
        """Every pre-split piece with the merges applied to it, in order (for a replay view).

        Meant for short texts (each step stores the whole token sequence of its piece).
        """
        allowed = self._allowed(allowed_special)
        chunks = _special_regex(frozenset(allowed)).split(text) if allowed else [text]
        pieces: list[PieceExplanation] = []
        for i, chunk in enumerate(chunks):
            if i % 2:
                sid = self.special_tokens[chunk]
                data = chunk.encode("utf-8")
                pieces.append(PieceExplanation(chunk, data, (sid,), (), (sid,), special=True))
                continue
            pieces.extend(self._explain_piece(p) for p in self._regex.findall(chunk))
        return Explanation(text, tuple(pieces))

    def _explain_piece(self, piece: str) -> PieceExplanation:
        data = piece.encode("utf-8", errors="replace")
        ranks = self.ranks
        parts = [data[i:i + 1] for i in range(len(data))]
        start = tuple(ranks[p] for p in parts)
        steps = []
        while len(parts) > 1:
            candidates = [(ranks.get(parts[i] + parts[i + 1]), i) for i in range(len(parts) - 1)]
            candidates = [(r, i) for r, i in candidates if r is not None]
            if not candidates:
                break
            new_id, i = min(candidates)
            left, right = parts[i], parts[i + 1]
            parts[i:i + 2] = [left + right]
            steps.append(MergeStep(i, ranks[left], ranks[right], left, right, new_id,
                                   tuple(ranks[p] for p in parts)))
        return PieceExplanation(piece, data, start, tuple(steps), tuple(ranks[p] for p in parts))

    # --- training, saving, loading ------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        special_tokens: Sequence[str] = (GPT2_EOT,),
        pattern: str = GPT2_PATTERN,
        progress: Callable[[int, int], None] | None = None,
        name: str | None = None,
        fewer_ok: bool = False,
    ) -> Tokenizer:
        """Learn a tokenizer of exactly ``vocab_size`` ids (specials included, last); with
        ``fewer_ok``, of fewer when the text allows fewer merges (``n_vocab`` says how many).

        See :func:`gpt.bpe.train_bpe` for the algorithm and its errors.
        """
        ranks = train_bpe(text, vocab_size, pattern, special_tokens, progress, fewer_ok)
        specials = {s: len(ranks) + i for i, s in enumerate(special_tokens)}
        return cls(ranks, specials, pattern, name or f"bpe-{vocab_size}", source="trained")

    def to_dict(self) -> dict:
        """The JSON-ready object described in the module docstring."""
        vocab = {
            str(i): base64.b64encode(t).decode("ascii")
            for t, i in sorted(self.ranks.items(), key=lambda kv: kv[1])
        }
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "pattern": self.pattern,
            "special_tokens": dict(self.special_tokens),
            "vocab": vocab,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON; a folder path gets ``tokenizer.json`` inside it."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, obj: object, where: str = "tokenizer") -> Tokenizer:
        """Build from the saved object, checking every field; errors name the problem."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise TokenizerError(f"{where}: not a {FORMAT} tokenizer (missing 'format': '{FORMAT}')")
        if obj.get("version") != FORMAT_VERSION:
            raise TokenizerError(f"{where}: unsupported version {obj.get('version')!r}")
        for key, kind in (("pattern", str), ("special_tokens", dict), ("vocab", dict)):
            if not isinstance(obj.get(key), kind):
                raise TokenizerError(f"{where}: field {key!r} missing or not a {kind.__name__}")
        ranks: dict[bytes, int] = {}
        for key, value in obj["vocab"].items():
            try:
                token = base64.b64decode(value, validate=True)
                idx = int(key)
            except (ValueError, TypeError, binascii.Error):
                raise TokenizerError(f"{where}: bad vocab entry {key!r}: {value!r}") from None
            if token in ranks:
                raise TokenizerError(f"{where}: token {token!r} appears twice in the vocab")
            ranks[token] = idx
        specials = obj["special_tokens"]
        if not all(isinstance(s, str) and isinstance(i, int) for s, i in specials.items()):
            raise TokenizerError(f"{where}: special_tokens must map strings to integer ids")
        try:
            compile_pattern(obj["pattern"])
        except (re.error, ValueError) as e:
            raise TokenizerError(f"{where}: bad pattern ({e})") from None
        return cls(ranks, specials, obj["pattern"], str(obj.get("name", "bpe")), source=where)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise TokenizerNotFoundError(f"tokenizer file not found: {path}")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(obj, str(path))


@functools.lru_cache(maxsize=64)
def _special_regex(specials: frozenset[str]) -> re.Pattern[str]:
    """A splitting regex that captures the given specials, longest first."""
    alternatives = sorted(specials, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(s) for s in alternatives) + ")")


# ----------------------------------------------------------------------------------------------
# streaming


class StreamDecoder:
    """Decode ids one at a time without ever emitting half a UTF-8 character.

    An incomplete UTF-8 tail is held back until the next token completes it; only truly invalid
    bytes become U+FFFD right away, and :meth:`flush` turns a held tail into U+FFFD. Joining all
    pushes and the flush gives exactly ``tokenizer.decode(ids)``.

    >>> tok = Tokenizer({bytes([b]): b for b in range(256)})
    >>> dec = tok.stream_decoder()
    >>> [dec.push(i) for i in "é!".encode()], dec.flush()
    (['', 'é', '!'], '')
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (possibly '')."""
        return self._utf8.decode(self.tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """End of stream: return what is held back (as U+FFFD) and reset."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text


# ----------------------------------------------------------------------------------------------
# finding and loading tokenizers


def _find_whisper_gpt2_ranks() -> Path | None:
    """The ``gpt2.tiktoken`` shipped in openai-whisper, found without importing whisper."""
    try:
        spec = importlib.util.find_spec("whisper")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "assets" / "gpt2.tiktoken"
    return path if path.is_file() else None


def _gpt2_from_path(path: Path) -> Tokenizer:
    """GPT-2's vocabulary from a ``.tiktoken`` file or a folder of OpenAI's files."""
    if path.is_dir():
        if (path / "encoder.json").is_file() and (path / "vocab.bpe").is_file():
            ranks, specials = load_encoder_json(path / "encoder.json", path / "vocab.bpe")
            return Tokenizer(ranks, specials or {GPT2_EOT: 50256}, name="gpt2", source=str(path))
        if (path / "gpt2.tiktoken").is_file():
            path = path / "gpt2.tiktoken"
        else:
            raise TokenizerNotFoundError(
                f"{path}: folder holds neither encoder.json + vocab.bpe nor gpt2.tiktoken"
            )
    elif not path.is_file():
        raise TokenizerNotFoundError(f"GPT-2 vocabulary not found: {path}")
    ranks = load_tiktoken_ranks(path)
    return Tokenizer(ranks, {GPT2_EOT: max(ranks.values()) + 1}, name="gpt2", source=str(path))


@functools.lru_cache(maxsize=8)
def _gpt2_cached(path: str | None) -> Tokenizer:
    if path:
        return _gpt2_from_path(Path(path))
    try:
        enc = tiktoken.get_encoding("gpt2")
    except Exception:  # offline with an empty cache, or a broken install: try the next option
        enc = None
    if enc is not None:
        return Tokenizer(
            dict(enc._mergeable_ranks), dict(enc._special_tokens), enc._pat_str, "gpt2",
            encoding=enc, source="tiktoken",
        )
    whisper_path = _find_whisper_gpt2_ranks()
    if whisper_path is not None:
        return _gpt2_from_path(whisper_path)
    raise TokenizerNotFoundError(
        "GPT-2's vocabulary was not found. Give one of: (1) a path, or the environment variable "
        f"{ENV_VAR}, pointing to a .tiktoken file or a folder with encoder.json + vocab.bpe "
        "(or gpt2.tiktoken); (2) tiktoken's cache or network access for "
        'tiktoken.get_encoding("gpt2"); (3) the openai-whisper package, which ships '
        "assets/gpt2.tiktoken (pip install --no-deps openai-whisper)."
    )


def gpt2_tokenizer(path: str | os.PathLike | None = None) -> Tokenizer:
    """GPT-2's tokenizer, resolved as the module docstring says (cached per source)."""
    chosen = path if path is not None else os.environ.get(ENV_VAR) or None
    return _gpt2_cached(str(chosen) if chosen is not None else None)


gpt2_tokenizer.cache_clear = _gpt2_cached.cache_clear  # type: ignore[attr-defined]


def load_tokenizer(name_or_path: str | os.PathLike) -> Tokenizer:
    """``"gpt2"``, our saved JSON file, a folder with ``tokenizer.json`` (our format) or with
    GPT-2's files (``encoder.json`` + ``vocab.bpe``, or Hugging Face's ``vocab.json`` +
    ``merges.txt``), a model folder without vocabulary files (GPT-2's tokenizer), or a
    ``.tiktoken`` file (GPT-2 pattern, ``<|endoftext|>`` after the ranks). A model *name*
    (``starter``, ``job:<id>``) is `gpt.lab.names.load_tokenizer`'s to resolve."""
    if str(name_or_path) == "gpt2":
        return gpt2_tokenizer()
    path = Path(name_or_path)
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return Tokenizer.load(path / "tokenizer.json")
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            # A Hugging Face GPT-2 folder: the same two files as OpenAI's, renamed.
            ranks, specials = load_encoder_json(path / "vocab.json", path / "merges.txt")
            return Tokenizer(ranks, specials or {GPT2_EOT: 50256}, name="gpt2", source=str(path))
        if (path / "config.json").is_file() and not (path / "encoder.json").is_file():
            return gpt2_tokenizer()  # a model folder without its own vocabulary uses GPT-2's
        return _gpt2_from_path(path)
    if not path.exists():
        raise TokenizerNotFoundError(
            f"no tokenizer named {str(name_or_path)!r}: expected 'gpt2', a tokenizer JSON file, "
            "a folder holding tokenizer.json, or a .tiktoken file"
        )
    if path.suffix == ".tiktoken":
        ranks = load_tiktoken_ranks(path)
        return Tokenizer(ranks, {GPT2_EOT: max(ranks.values()) + 1}, name=path.stem, source=str(path))
    return Tokenizer.load(path)
