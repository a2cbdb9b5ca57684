"""Tokenizer tests: parity with tiktoken, training, save/load, explain, streaming, resolution.

The reference is a tiktoken Encoding built with tiktoken's own loader from the GPT-2 ranks
file shipped in openai-whisper (no network). Training text is generated here from a seed.
"""

from __future__ import annotations

import doctest
import json
import random
import unicodedata

import pytest
import tiktoken
import tiktoken.load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpt.bpe
import gpt.gpt2_vocab
import gpt.tokenizer
from gpt.bpe import (
    GPT2_PATTERN,
    TrainingError,
    _bpe_parts_heap,
    bpe_parts,
    compile_pattern,
    ranks_to_merges,
)
from gpt.gpt2_vocab import (
    VocabFileError,
    load_tiktoken_ranks,
    save_encoder_json,
    save_tiktoken_ranks,
)
from gpt.tokenizer import (
    ENV_VAR,
    StreamDecoder,
    Tokenizer,
    TokenizerError,
    TokenizerNotFoundError,
    gpt2_tokenizer,
    load_tokenizer,
)

# ----------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def whisper_ranks_path():
    path = gpt.tokenizer._find_whisper_gpt2_ranks()
    if path is None:
        pytest.skip("openai-whisper (which ships GPT-2's ranks) is not installed")
    return path


@pytest.fixture(scope="session")
def ref_enc(whisper_ranks_path) -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding, built with tiktoken's own file loader."""
    ranks = tiktoken.load.load_tiktoken_bpe(str(whisper_ranks_path))
    return tiktoken.Encoding(name="gpt2-ref", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


@pytest.fixture(scope="session")
def gpt2(whisper_ranks_path) -> Tokenizer:
    return gpt2_tokenizer(whisper_ranks_path)


def generated_words(n_words: int, seed: int) -> str:
    """Seeded random words and punctuation (our own training text)."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwyp"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 7))) for _ in range(400)]
    vocab += ["naïve", "日本", "🙂", "2024", "x_1"]
    out = []
    for _ in range(n_words):
        w = rng.choice(vocab)
        out.append(w.capitalize() if rng.random() < 0.1 else w)
        out.append(rng.choice([" ", " ", " ", ", ", ". ", "\n", "  "]))
    return "".join(out)


@pytest.fixture(scope="session")
def train_text() -> str:
    return generated_words(6000, seed=7)


@pytest.fixture(scope="session")
def trained(train_text) -> Tokenizer:
    return Tokenizer.train(train_text, vocab_size=600)


# ----------------------------------------------------------------------------------------------
# GPT-2 parity with tiktoken

CORPUS = [
    "Hello, world! This is plain prose.",
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { a[i] = b[i] * 3.14; }",
    "Numbers: 0 12 345 6789 1234567890 3.14159 -42 1e10 ١٢٣",
    "   leading and trailing spaces   ",
    "tabs\tand\t\tmore\ttabs\n\n\nnewlines\r\n",
    "a  b   c    d     e",
    "emoji 😀🚀 family 👨‍👩‍👧‍👦 flag 🇫🇷🇯🇵 skin 👍🏽",
    "中文字符和日本語のテキスト、한국어",
    "café naïve über señor façade e\u0301 a\u0300\u0301",
    "text<|endoftext|>more text<|endoftext|>",
    "<|endoftext|>",
    "it's they're we've I'm you'll he'd I'LL WE'RE 'S",
    "trailing space ",
    "\x1c\x1d\x1e\x1f unit separators are not whitespace",
    "\u00a0nbsp\u2003em-space\u3000ideographic\u202fnarrow\x85nel",
    "",
    " ",
    "\n",
    "!!!???...,,,;;;",
    "x" * 300 + " " + "ab" * 200,
]


@pytest.mark.parametrize("text", CORPUS)
def test_gpt2_ids_match_tiktoken(gpt2, ref_enc, text):
    expected = ref_enc.encode(text, allowed_special="all")
    assert gpt2.encode(text) == expected
    assert gpt2.encode(text, backend="python") == expected
    assert gpt2.encode_ordinary_py(text) == ref_enc.encode_ordinary(text)
    assert gpt2.decode(expected) == text


def test_gpt2_vocab_facts(gpt2):
    assert gpt2.n_vocab == 50257
    assert gpt2.eot_token == 50256
    assert gpt2.name == "gpt2"
    assert gpt2.token_bytes(0) == b"!"  # single-byte ids are not byte values
    assert gpt2.token_bytes(50256) == b"<|endoftext|>"
    assert gpt2.encode("Hello world") == [15496, 995]


def test_allowed_special_none_encodes_as_text(gpt2, ref_enc):
    text = "a<|endoftext|>b"
    assert gpt2.encode(text, allowed_special="none", backend="python") == ref_enc.encode_ordinary(text)
    assert gpt2.encode(text, allowed_special="none") == ref_enc.encode_ordinary(text)
    with pytest.raises(TokenizerError, match="not special"):
        gpt2.encode(text, allowed_special={"<|nope|>"})


def test_lone_surrogates_match_tiktoken(gpt2, ref_enc):
    text = "a\ud800b \udfff"
    assert gpt2.encode(text, backend="python") == ref_enc.encode(text)


def test_huge_runs_round_trip(gpt2, ref_enc):
    """Long runs of one letter, digits and spaces (a quadratic encoder would take an hour on this;
    bench/bench_tokenizer.py times it against tiktoken)."""
    text = "a" * 50_000 + " " + "12" * 12_500 + " " * 12_500 + "x"
    ids = gpt2.encode_ordinary_py(text)
    assert gpt2.decode(ids) == text
    assert ids[-1] == ref_enc.encode_ordinary(" x")[0]


@given(st.binary(min_size=0, max_size=300))
@settings(max_examples=200, deadline=None)
def test_heap_merge_equals_list_merge(data):
    ranks = _small_ranks()
    assert _bpe_parts_heap(data, ranks) == _list_merge(data, ranks)
    assert bpe_parts(data, ranks) == _list_merge(data, ranks)


def _list_merge(data: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """The textbook loop, as a reference: merge the leftmost lowest-rank pair, repeat."""
    parts = [data[i:i + 1] for i in range(len(data))]
    while True:
        found = [(ranks[parts[i] + parts[i + 1]], i) for i in range(len(parts) - 1)
                 if parts[i] + parts[i + 1] in ranks]
        if not found:
            return parts
        _, i = min(found)
        parts[i:i + 2] = [parts[i] + parts[i + 1]]


_SMALL_RANKS: dict[bytes, int] = {}


def _small_ranks() -> dict[bytes, int]:
    if not _SMALL_RANKS:
        tok = Tokenizer.train(generated_words(3000, seed=3), vocab_size=400)
        _SMALL_RANKS.update(tok.ranks)
    return _SMALL_RANKS


# Python's unicodedata (Unicode 14 on 3.11) can lag tiktoken's Rust regex tables: characters
# assigned later are 'Cn' here but letters there. So random text only uses characters whose
# category Python knows (no 'Cn' unassigned, no 'Cs' surrogates).
assigned_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cn", "Cs")), max_size=200
)
mixed_text = st.one_of(
    assigned_text,
    st.lists(st.sampled_from(["a", " ", "  ", "\n", "'s", "1", "é", "😀", "<|endoftext|>", "\t",
                              "中", "!", "\u200d", "\x1c", "\u3000", "'", "s"]),
             max_size=60).map("".join),
)


@given(mixed_text)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_text_matches_tiktoken_and_round_trips(gpt2, ref_enc, text):
    expected = ref_enc.encode(text, allowed_special="all")
    assert gpt2.encode(text, backend="python") == expected
    assert gpt2.encode(text) == expected
    assert gpt2.decode(expected) == text


@given(mixed_text)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_trained_round_trip_and_tiktoken(trained, text):
    ids = trained.encode(text, backend="python")
    assert trained.decode(ids) == text
    assert ids == trained.to_tiktoken().encode(text, allowed_special="all")


# ----------------------------------------------------------------------------------------------
# streaming


@given(st.lists(st.integers(0, 50256), max_size=40))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_stream_decoder_any_ids_matches_decode(gpt2, ids):
    dec = StreamDecoder(gpt2)
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == gpt2.decode(ids)


@given(assigned_text)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_stream_decoder_never_breaks_valid_text(gpt2, text):
    dec = gpt2.stream_decoder()
    pieces = [dec.push(i) for i in gpt2.encode(text)]
    assert dec.flush() == ""
    assert "".join(pieces) == text
    if "\ufffd" not in text:
        assert not any("\ufffd" in p for p in pieces)


def test_stream_decoder_holds_back_split_characters(gpt2):
    emoji = "🙂"
    ids = gpt2.encode(emoji)
    assert len(ids) > 1  # GPT-2 splits this emoji's 4 bytes over several tokens
    dec = gpt2.stream_decoder()
    out = [dec.push(i) for i in ids]
    assert out[:-1] == [""] * (len(ids) - 1) and out[-1] == emoji
    # an incomplete tail at the end of the stream becomes one replacement character
    assert dec.push(ids[0]) == ""
    assert dec.flush() == "\ufffd"
    assert dec.flush() == ""


# ----------------------------------------------------------------------------------------------
# explain


@pytest.mark.parametrize("text", ["Hello world's tokenizer!", "emoji 🇫🇷 and 日本語", "a<|endoftext|>b", ""])
def test_explain_replays_to_encode(gpt2, text):
    ex = gpt2.explain(text)
    assert ex.ids == gpt2.encode(text)
    assert "".join(p.text for p in ex.pieces) == text
    for piece in ex.pieces:
        if piece.special:
            assert piece.ids == (gpt2.eot_token,)
            continue
        assert piece.data == piece.text.encode()
        assert len(piece.start_ids) == len(piece.data)
        seq = list(piece.start_ids)
        for step in piece.steps:
            assert seq[step.position:step.position + 2] == [step.left, step.right]
            assert gpt2.token_bytes(step.new_id) == step.new_bytes
            seq[step.position:step.position + 2] = [step.new_id]
            assert tuple(seq) == step.tokens_after
        assert tuple(seq) == piece.ids


def test_explain_trained(trained, train_text):
    text = train_text[:500]
    assert trained.explain(text).ids == trained.encode(text)


# ----------------------------------------------------------------------------------------------
# training


def test_trained_vocab_size_and_unique_bytes(trained):
    assert trained.n_vocab == 600
    assert len(trained.ranks) == 599 and trained.eot_token == 599
    assert sorted(trained.ranks.values()) == list(range(599))
    assert all(trained.token_bytes(b) == bytes([b]) for b in range(256))


def test_trained_matches_tiktoken(trained, train_text):
    enc = trained.to_tiktoken()
    other = generated_words(500, seed=99) + " unseen: Ωmega 1234 🚀 <|endoftext|> end"
    for text in (train_text, other):
        assert trained.encode(text, backend="python") == enc.encode(text, allowed_special="all")
    assert len(trained.encode(train_text)) < 0.6 * len(train_text.encode())  # it learned something


def test_training_progress_and_special_tokens():
    calls = []
    text = generated_words(2000, seed=1) + "<|endoftext|>" + generated_words(500, seed=2)
    tok = Tokenizer.train(text, 300, special_tokens=["<|endoftext|>", "<|pad|>"],
                          progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 42) for i in range(1, 43)]
    assert tok.special_tokens == {"<|endoftext|>": 298, "<|pad|>": 299}
    assert not any(b"<|" in t for t in tok.ranks)  # no merge learned across a special token


def test_training_is_deterministic():
    text = generated_words(1500, seed=5)
    assert Tokenizer.train(text, 320).ranks == Tokenizer.train(text, 320).ranks


@given(st.lists(st.text("abc", min_size=1, max_size=9), min_size=1, max_size=80),
       st.integers(257, 290))
@settings(max_examples=60, deadline=None)
def test_training_small_alphabets_stays_tiktoken_compatible(words, vocab_size):
    text = " ".join(words)
    try:
        tok = Tokenizer.train(text, vocab_size, special_tokens=())
    except TrainingError:
        return  # not enough distinct pairs for that many merges: a clear error is fine
    assert tok.n_vocab == vocab_size
    assert tok.encode(text, backend="python") == tok.to_tiktoken().encode(text)


def test_training_bad_input():
    with pytest.raises(TrainingError, match="vocab_size=200"):
        Tokenizer.train("some text", 200)
    with pytest.raises(TrainingError, match="vocab_size=256"):
        Tokenizer.train("some text", 256)  # 256 bytes + 1 special does not fit
    with pytest.raises(TrainingError, match="empty"):
        Tokenizer.train("", 300)
    with pytest.raises(TrainingError, match="too small"):
        Tokenizer.train("ab ab", 300)
    assert issubclass(TrainingError, ValueError)


# ----------------------------------------------------------------------------------------------
# save / load


def test_save_load_round_trip(trained, train_text, tmp_path):
    path = trained.save(tmp_path / "tok.json")
    loaded = load_tokenizer(path)
    assert loaded.encode(train_text) == trained.encode(train_text)
    assert loaded.special_tokens == trained.special_tokens and loaded.name == trained.name
    obj = json.loads(path.read_text())
    assert obj["format"] == "gpt2lab-bpe" and obj["version"] == 1 and obj["pattern"] == GPT2_PATTERN
    assert obj["vocab"]["65"] == "QQ=="  # id -> base64 bytes ("A")
    # a folder holding tokenizer.json loads too
    trained.save(tmp_path)
    assert load_tokenizer(tmp_path).ranks == trained.ranks


def _saved(trained, tmp_path, **changes):
    obj = trained.to_dict()
    obj.update(changes)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    return path


def test_load_bad_files(trained, tmp_path):
    with pytest.raises(TokenizerNotFoundError, match="no tokenizer named"):
        load_tokenizer(tmp_path / "missing.json")
    with pytest.raises(TokenizerNotFoundError, match="not found"):
        Tokenizer.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        load_tokenizer(broken)
    hf_like = tmp_path / "hf.json"
    hf_like.write_text(json.dumps({"model": {"type": "BPE"}}))
    with pytest.raises(TokenizerError, match="not a gpt2lab-bpe tokenizer"):
        load_tokenizer(hf_like)
    with pytest.raises(TokenizerError, match="unsupported version"):
        load_tokenizer(_saved(trained, tmp_path, version=99))
    with pytest.raises(TokenizerError, match="'vocab' missing"):
        load_tokenizer(_saved(trained, tmp_path, vocab=[1, 2]))
    vocab = trained.to_dict()["vocab"] | {"600": "not base64!"}
    with pytest.raises(TokenizerError, match="bad vocab entry '600'"):
        load_tokenizer(_saved(trained, tmp_path, vocab=vocab))
    vocab = trained.to_dict()["vocab"] | {"700": "QQ=="}
    with pytest.raises(TokenizerError, match="appears twice"):
        load_tokenizer(_saved(trained, tmp_path, vocab=vocab))
    with pytest.raises(TokenizerError, match="collide"):
        load_tokenizer(_saved(trained, tmp_path, special_tokens={"<|endoftext|>": 3}))
    vocab = {k: v for k, v in trained.to_dict()["vocab"].items() if k != "65"}
    with pytest.raises(TokenizerError, match="single bytes"):
        load_tokenizer(_saved(trained, tmp_path, vocab=vocab))


def test_decode_unknown_id(trained):
    with pytest.raises(TokenizerError, match="unknown token id 12345"):
        trained.decode([1, 12345])
    with pytest.raises(TokenizerError, match="unknown token id"):
        trained.token_bytes(-1)


def test_bad_backend(trained):
    with pytest.raises(TokenizerError, match="backend"):
        trained.encode("x", backend="rust")


# ----------------------------------------------------------------------------------------------
# GPT-2 vocabulary files and resolution order


def test_encoder_json_vocab_bpe_round_trip(gpt2, ref_enc, tmp_path):
    """Convert the .tiktoken ranks to OpenAI's encoder.json + vocab.bpe, read them back."""
    enc_path, bpe_path = save_encoder_json(gpt2.ranks, tmp_path, {"<|endoftext|>": 50256})
    encoder = json.loads(enc_path.read_text(encoding="utf-8"))
    assert encoder["!"] == 0 and encoder["Ġthe"] == 262 and encoder["<|endoftext|>"] == 50256
    assert bpe_path.read_text(encoding="utf-8").splitlines()[1] == "Ġ t"  # GPT-2's first merge
    tok = gpt2_tokenizer(tmp_path)
    assert tok.ranks == gpt2.ranks and tok.eot_token == 50256
    for text in CORPUS:
        assert tok.encode(text, backend="python") == ref_enc.encode(text, allowed_special="all")


def test_small_fake_encoder_json(tmp_path):
    """A tiny hand-checkable vocab: the 256 bytes in GPT-2's order plus two merges."""
    table = gpt.bpe.bytes_to_unicode()
    encoder = {ch: i for i, ch in enumerate(table.values())}
    encoder |= {"Ġa": 256, "Ġab": 257, "<|endoftext|>": 258}
    (tmp_path / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nĠ a\nĠa b\n", encoding="utf-8")
    tok = load_tokenizer(tmp_path)
    assert tok.encode(" ab<|endoftext|>") == [257, 258]
    assert tok.encode("!") == [encoder["!"]]
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nĠa b\nĠ a\n", encoding="utf-8")
    with pytest.raises(VocabFileError, match="merge 1"):
        load_tokenizer(tmp_path)
    (tmp_path / "encoder.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(VocabFileError, match="JSON object"):
        load_tokenizer(tmp_path)


def test_tiktoken_file_errors(tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nnot-base64!! 1\n")
    with pytest.raises(VocabFileError, match="bad .tiktoken line 2"):
        load_tiktoken_ranks(bad)
    bad.write_text("IQ== 0\nIg==\n")
    with pytest.raises(VocabFileError, match="line 2"):
        load_tiktoken_ranks(bad)
    bad.write_text("IQ== 0\nIQ== 1\n")
    with pytest.raises(VocabFileError, match="repeats"):
        load_tiktoken_ranks(bad)
    with pytest.raises(VocabFileError, match="not found"):
        load_tiktoken_ranks(tmp_path / "nope.tiktoken")
    assert issubclass(VocabFileError, ValueError)


def test_load_tokenizer_tiktoken_file(trained, tmp_path):
    path = tmp_path / "mine.tiktoken"
    save_tiktoken_ranks(trained.ranks, path)
    tok = load_tokenizer(path)
    assert tok.ranks == trained.ranks and tok.eot_token == 599 and tok.name == "mine"


@pytest.fixture
def clean_resolution(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    gpt2_tokenizer.cache_clear()
    yield monkeypatch
    gpt2_tokenizer.cache_clear()


def _no_tiktoken(name):
    raise ConnectionError("offline")


def test_resolution_env_var_first(clean_resolution, whisper_ranks_path, tmp_path):
    called = []
    clean_resolution.setattr(tiktoken, "get_encoding", lambda name: called.append(name))
    (tmp_path / "gpt2.tiktoken").write_bytes(whisper_ranks_path.read_bytes())
    clean_resolution.setenv(ENV_VAR, str(tmp_path))
    tok = load_tokenizer("gpt2")
    assert tok.source == str(tmp_path / "gpt2.tiktoken") and not called
    assert gpt2_tokenizer() is tok  # cached
    clean_resolution.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(TokenizerNotFoundError, match="missing"):
        gpt2_tokenizer()  # a wrong explicit choice is an error, not a silent fallback


def test_resolution_tiktoken_second(clean_resolution, ref_enc):
    clean_resolution.setattr(tiktoken, "get_encoding", lambda name: ref_enc)
    clean_resolution.setattr(gpt.tokenizer, "_find_whisper_gpt2_ranks", lambda: None)
    tok = gpt2_tokenizer()
    assert tok.source == "tiktoken" and tok.to_tiktoken() is ref_enc
    assert tok.encode("Hello world", backend="python") == [15496, 995]


def test_resolution_whisper_third(clean_resolution, whisper_ranks_path):
    clean_resolution.setattr(tiktoken, "get_encoding", _no_tiktoken)
    tok = gpt2_tokenizer()
    assert tok.source == str(whisper_ranks_path)


def test_resolution_error_names_all_options(clean_resolution):
    clean_resolution.setattr(tiktoken, "get_encoding", _no_tiktoken)
    clean_resolution.setattr(gpt.tokenizer, "_find_whisper_gpt2_ranks", lambda: None)
    with pytest.raises(TokenizerNotFoundError) as info:
        load_tokenizer("gpt2")
    message = str(info.value)
    assert ENV_VAR in message and "encoder.json" in message
    assert 'tiktoken.get_encoding("gpt2")' in message and "openai-whisper" in message
    assert isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------------------------
# helpers


def test_pattern_translation():
    regex = compile_pattern(GPT2_PATTERN)
    # \x1c-\x1f are str.isspace() in Python but not Unicode White_Space
    assert regex.findall("a\x1c b") == ["a", "\x1c", " b"]
    assert compile_pattern(r"\s++$|\s").findall("x \n") == [" \n"]
    assert compile_pattern(r"a$").findall("a\n") == []  # Rust's $ is the very end
    with pytest.raises(ValueError, match="inside a character class"):
        compile_pattern(r"[\S]")
    # every letter and every digit Python knows is matched by the letter / number classes
    letters = [chr(c) for c in range(0x3000) if unicodedata.category(chr(c))[0] == "L"]
    assert regex.findall("".join(letters)) == ["".join(letters)]


def test_ranks_to_merges_on_gpt2(gpt2):
    merges = ranks_to_merges(gpt2.ranks)
    assert len(merges) == 50000
    assert merges[0] == (b" ", b"t")
    assert all(gpt2.ranks[a + b] == 256 + i for i, (a, b) in enumerate(merges[:1000]))
    assert bpe_parts(b" the", gpt2.ranks) == [b" the"]


@pytest.mark.parametrize("module", [gpt.bpe, gpt.gpt2_vocab, gpt.tokenizer])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.failed == 0


def test_training_a_small_text_keeps_the_merges_it_allows_when_asked():
    with pytest.raises(TrainingError, match="too small"):
        Tokenizer.train("abc abc", 1000)
    tok = Tokenizer.train("abc abc", 1000, fewer_ok=True)
    assert tok.n_vocab == 256 + 3 + 1  # ab, abc, " abc"; then <|endoftext|>
    assert [tok.decode([i]) for i in tok.encode("abc abc")] == ["abc", " abc"]
