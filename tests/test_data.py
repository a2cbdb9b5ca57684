"""Data: LM windows, spam and instruction readers, collates, bad files, bundled data, sources.

No network: the source tests replace the low-level download with a local copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch

from gpt.lab import hub, sources
from gpt.lab.paths import SOURCES_CACHE_ENV
from gpt.lab.sources import SOURCES, Source, SourceError, fetch
from gpt.tokenizer import Tokenizer, gpt2_tokenizer
from gpt.train.data import (
    IGNORE_INDEX,
    DataError,
    Instruction,
    InstructionDataset,
    SpamDataset,
    SpamExample,
    balance,
    collate_instructions,
    format_prompt,
    label_counts,
    lm_datasets,
    lm_windows,
    read_instructions,
    read_spam,
    read_text,
    read_text_files,
    split_ids,
    stratified_split,
    validate_file,
)

DATA = Path(__file__).resolve().parent.parent / "data"
EOT = 256


@pytest.fixture(scope="module")
def byte_tok():
    """One id per byte, <|endoftext|> = 256: token counts are byte counts."""
    return Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": EOT})


@pytest.fixture(scope="module")
def gpt2_tok():
    return gpt2_tokenizer()


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# language-model data


@pytest.mark.parametrize("fraction, n_val", [(0.0, 0), (0.1, 10), (0.25, 25), (0.5, 50)])
def test_split_ids_cuts_the_stream(fraction, n_val):
    ids = list(range(100))
    train, val = split_ids(ids, fraction)
    assert len(val) == n_val
    assert torch.cat([train, val]).tolist() == ids  # contiguous: no window can straddle both
    assert train.dtype == val.dtype == torch.long


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_ids_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        split_ids([1, 2, 3], fraction)


def test_windows_targets_are_inputs_shifted_by_one():
    ids = torch.arange(100, 150)
    ds = lm_windows(ids, context=8)
    assert len(ds) == (50 - 9) // 8 + 1
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (8,)
        assert x.dtype == torch.long
        assert torch.equal(x, ids[i * 8 : i * 8 + 8])
        assert torch.equal(y, ids[i * 8 + 1 : i * 8 + 9])
        assert torch.equal(x[1:], y[:-1])


@pytest.mark.parametrize(
    "stride, starts",
    [
        (1, list(range(16))),
        (2, [0, 2, 4, 6, 8, 10, 12, 14]),
        (4, [0, 4, 8, 12]),
        (6, [0, 6, 12]),
        (20, [0]),
    ],
)
def test_window_stride(stride, starts):
    ds = lm_windows(list(range(20)), context=4, stride=stride)
    assert [ds[i][0][0].item() for i in range(len(ds))] == starts
    assert ds[-1][1][-1].item() <= 19  # the last target stays inside the stream
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_windows_use_every_token_when_it_fits():
    ds = lm_windows(list(range(9)), context=4)  # 9 = 2 * 4 + 1
    assert [x.tolist() for x, _ in ds] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert ds[1][1].tolist() == [5, 6, 7, 8]


def test_too_short_text_is_an_error():
    with pytest.raises(DataError, match="needs at least 9"):
        lm_windows(list(range(8)), context=8)
    with pytest.raises(ValueError, match="positive"):
        lm_windows(list(range(20)), context=4, stride=0)


def test_text_files_join_with_end_of_text(tmp_path, byte_tok):
    a, b = write(tmp_path, "a.txt", "\ufeffone"), write(tmp_path, "b.txt", "two")
    text = read_text_files([a, b])
    assert text == "one\n<|endoftext|>\ntwo"  # the byte-order mark is dropped
    assert byte_tok.encode(text, allowed_special="all").count(EOT) == 1
    assert read_text_files(a) == "one"


def test_lm_datasets_on_the_bundled_corpus(gpt2_tok):
    train, val = lm_datasets(DATA / "corpus" / "stories.txt", gpt2_tok, context=128, stride=64)
    assert len(train) > 8 * len(val) > 0
    assert train.ids.tolist().count(gpt2_tok.eot_token) > 1800  # story separators became eot
    # val windows start after the last train token: the two never overlap
    assert len(train.ids) + len(val.ids) == len(
        gpt2_tok.encode(read_text(DATA / "corpus" / "stories.txt"), allowed_special="all")
    )
    x, y = val[0]
    assert x.shape == y.shape == (128,)


# ----------------------------------------------------------------------------------------------
# reading files: errors common to all kinds


def test_bad_utf8_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.txt", b"fine\nalso fine\nbroken \xff here\n")
    with pytest.raises(DataError, match=r"bad\.txt, line 3: not valid UTF-8"):
        read_text(path)


@pytest.mark.parametrize("content", ["", "  \n\n\t"])
def test_empty_file(tmp_path, content):
    with pytest.raises(DataError, match="empty"):
        read_text(write(tmp_path, "e.txt", content))


def test_oversized_and_missing_files(tmp_path):
    path = write(tmp_path, "big.txt", "x" * 2000)
    with pytest.raises(DataError, match="over the .* limit"):
        read_text(path, max_bytes=1000)
    with pytest.raises(DataError, match="no such file"):
        read_text(tmp_path / "missing.txt")


# ----------------------------------------------------------------------------------------------
# spam data


def test_spam_tsv_labels_in_any_case_and_digits(tmp_path):
    path = write(
        tmp_path,
        "sms.tsv",
        "ham\thi there\nSPAM\tWIN a prize\r\n\n Ham \t  see u 2moro \n0\tok\n1\tclaim now\tor else\n",
    )
    examples = read_spam(path)
    assert [e.label for e in examples] == [0, 1, 0, 0, 1]
    assert examples[2].text == "see u 2moro"
    assert examples[4].text == "claim now\tor else"  # only the first tab separates
    assert examples[1].label_name == "spam"


def test_spam_collection_without_suffix_is_tsv(tmp_path):
    path = write(tmp_path, "SMSSpamCollection", "ham\tyes, sure\nspam\tfree, free\n")
    assert [e.label for e in read_spam(path)] == [0, 1]


def test_spam_csv_with_header_and_extra_columns(tmp_path):
    path = write(
        tmp_path,
        "sms.csv",
        'id,Text,LABEL\n1,"hello, friend",Ham\n2,"multi\nline",spam\n\n3,plain,1\n',
    )
    examples = read_spam(path)
    assert examples == [
        SpamExample("hello, friend", 0),
        SpamExample("multi\nline", 1),
        SpamExample("plain", 1),
    ]


BAD_SPAM = [
    ("no-tab.tsv", "ham\tfine\nspam just spaces\n", "line 2: no tab", "label<TAB>text"),
    ("label.tsv", "ham\tok\nham\tok\neggs\thi\n", "line 3: unknown label 'eggs'", "ham or spam"),
    ("empty-text.tsv", "ham\tok\nspam\t   \n", "line 2: empty text", "expected a message"),
    ("cols.csv", "label,text\nham,hi\nspam,a,b\n", "line 3: 3 fields, expected 2", "label,text"),
    ("no-label.csv", "kind,text\nham,hi\n", "line 1: header lacks the label column", "'label'"),
    ("no-text.csv", "label,message\nham,hi\n", "line 1: header lacks the text column", "'text'"),
    ("label.csv", "label,text\nham,hi\n2,hi\n", "line 3: unknown label '2'", "0 or 1"),
    ("quote.csv", 'label,text\nham,"ok"\nspam,"open\n', "malformed CSV", "line"),
    ("empty.tsv", "", "empty", "expected some text"),
    ("utf8.tsv", b"ham\tok\nspam\t\xc3\x28\n", "line 2: not valid UTF-8", "UTF-8 text"),
]


@pytest.mark.parametrize("name, content, where, expected", BAD_SPAM, ids=[b[0] for b in BAD_SPAM])
def test_bad_spam_files_name_file_line_and_expectation(tmp_path, name, content, where, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        read_spam(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert where in message and expected in message
    with pytest.raises(DataError):
        validate_file("classify", path)


def test_oversized_spam_file(tmp_path):
    path = write(tmp_path, "big.tsv", "ham\thello\n" * 200)
    with pytest.raises(DataError, match="big.tsv: file is .* over the"):
        read_spam(path, max_bytes=1000)


def make_spam(n_ham: int, n_spam: int) -> list[SpamExample]:
    return [SpamExample(f"ham {i}", 0) for i in range(n_ham)] + [
        SpamExample(f"spam {i}", 1) for i in range(n_spam)
    ]


def test_balance_undersamples_to_equal_counts():
    examples = make_spam(90, 12)
    balanced = balance(examples, seed=1)
    assert label_counts(balanced) == {"ham": 12, "spam": 12}
    assert balance(examples, seed=1) == balanced
    assert balance(examples, seed=2) != balanced
    spam = [e for e in balanced if e.label == 1]
    assert spam == examples[90:]  # the small class is kept whole, in order
    with pytest.raises(DataError, match="both classes"):
        balance(make_spam(5, 0))


def test_stratified_split_keeps_proportions_and_is_seeded():
    examples = make_spam(3114, 486)  # the bundled set's totals
    train, val, test = stratified_split(examples, (0.7, 0.1, 0.2), seed=7)
    assert label_counts(train) == {"ham": 2180, "spam": 340}
    assert label_counts(val) == {"ham": 311, "spam": 49}
    assert label_counts(test) == {"ham": 623, "spam": 97}
    assert sorted(e.text for e in train + val + test) == sorted(e.text for e in examples)
    assert stratified_split(examples, (0.7, 0.1, 0.2), seed=7) == [train, val, test]
    assert stratified_split(examples, (0.7, 0.1, 0.2), seed=8)[0] != train
    assert {e.label for e in train[:50]} == {0, 1}  # shuffled, not grouped by class
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(examples, (0.7, 0.2, 0.2))


def test_spam_collate_pads_and_points_at_last_token(byte_tok):
    examples = [SpamExample("abc", 1), SpamExample("a", 0), SpamExample("abcdefghij", 0)]
    ds = SpamDataset(examples, byte_tok, max_length=6)
    assert ds.pad_id == EOT and ds.longest == 6
    assert ds[2][0].tolist() == list(b"abcdef")  # truncated to max_length
    input_ids, last_index, labels = ds.collate([ds[0], ds[1], ds[2]])
    assert input_ids.shape == (3, 6) and input_ids.dtype == torch.long
    assert input_ids.tolist() == [
        [97, 98, 99, EOT, EOT, EOT],
        [97, EOT, EOT, EOT, EOT, EOT],
        list(b"abcdef"),
    ]
    assert last_index.tolist() == [2, 0, 5]
    assert input_ids[torch.arange(3), last_index].tolist() == [99, 97, 102]
    assert labels.tolist() == [1, 0, 0] and labels.dtype == last_index.dtype == torch.long
    assert SpamDataset(examples, byte_tok, 6, pad_id=0).collate([ds[1], ds[0]])[0][0, 1] == 0


def test_spam_text_with_special_token_text_stays_text(byte_tok):
    ds = SpamDataset([SpamExample("<|endoftext|>", 1)], byte_tok, max_length=50)
    assert EOT not in ds[0][0].tolist()


def test_spam_dataloader_batches(gpt2_tok):
    examples = read_spam(DATA / "sms" / "val.tsv")
    ds = SpamDataset(examples, gpt2_tok, max_length=64)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, collate_fn=ds.collate)
    x, last, y = next(iter(loader))
    assert x.shape[0] == last.shape[0] == y.shape[0] == 16
    assert x.shape[1] == last.max().item() + 1 <= 64


# ----------------------------------------------------------------------------------------------
# instruction data

RECORDS = [
    {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
    {"instruction": "Make it plural.", "input": "fox", "output": "foxes"},
    {"instruction": "Say hi.", "output": "Hi!", "extra": 1},
    {"instruction": "Name a colour.", "input": None, "output": "Red."},
]


def test_json_and_jsonl_parse_the_same(tmp_path):
    a = write(tmp_path, "a.json", json.dumps(RECORDS, indent=2))
    b = write(tmp_path, "b.jsonl", "\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    assert read_instructions(a) == read_instructions(b)
    assert read_instructions(a)[1] == Instruction("Make it plural.", "fox", "foxes")
    assert read_instructions(a)[3].input == ""


def test_prompt_template_exact():
    preamble = (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
    )
    assert format_prompt(Instruction("Add 2 and 3.", "", "5")) == (
        f"{preamble}\n\n### Instruction:\nAdd 2 and 3.\n\n### Response:\n"
    )
    assert format_prompt(Instruction("Make it plural.", "fox", "foxes")) == (
        f"{preamble}\n\n### Instruction:\nMake it plural.\n\n### Input:\nfox\n\n### Response:\n"
    )


@pytest.mark.parametrize("mask_prompt", [False, True])
def test_instruction_targets_mask_exactly_prompt_and_padding(byte_tok, mask_prompt):
    examples = [
        Instruction(**{k: r[k] or "" for k in ("instruction", "input", "output")})
        for r in RECORDS
        if "input" in r
    ]
    ds = InstructionDataset(examples, byte_tok, context=1024, mask_prompt=mask_prompt)
    inputs, targets = ds.collate([ds[i] for i in range(len(ds))])
    longest = max(len(ds[i][0]) for i in range(len(ds)))
    assert inputs.shape == targets.shape == (len(examples), longest - 1)
    for row, ex in enumerate(examples):
        prompt = list(format_prompt(ex).encode())
        full = prompt + list(ex.output.encode()) + [EOT]
        assert ds[row][1] == len(prompt) and ds[row][0].tolist() == full
        padded = full + [EOT] * (longest - len(full))
        assert inputs[row].tolist() == padded[:-1]
        expected = padded[1:]
        for j in range(len(expected)):
            if j >= len(full) - 1 or (mask_prompt and j < len(prompt) - 1):
                expected[j] = IGNORE_INDEX
        assert targets[row].tolist() == expected
        assert targets[row, len(full) - 2].item() == EOT  # the first end-of-text is kept
        response = targets[row][targets[row] != IGNORE_INDEX]
        if mask_prompt:
            assert bytes(response[:-1].tolist()).decode() == ex.output


def test_collate_keeps_real_eot_targets_before_padding():
    # a response that itself ends in eot before the end token: only padding is ignored
    x, y = collate_instructions([(torch.tensor([1, 2, 9, 9]), 1), (torch.tensor([3, 9]), 1)], 9)
    assert y.tolist() == [[2, 9, 9], [9, -100, -100]]
    assert x.tolist() == [[1, 2, 9], [3, 9, 9]]


def test_instruction_truncation_to_context(byte_tok):
    long = Instruction("Repeat: " + "y" * 100, "", "z" * 500)  # a 248-byte prompt
    short = Instruction("Say hi.", "", "Hi!")
    ds = InstructionDataset([long, short], byte_tok, context=300, mask_prompt=True)
    assert ds.truncated == 1 and ds.dropped == 0
    assert len(ds[0][0]) == 301 and ds[0][0][-1].item() == ord("z")  # the eot was cut off
    inputs, targets = ds.collate([ds[0], ds[1]])
    assert inputs.shape == targets.shape == (2, 300)
    assert (targets[0] != IGNORE_INDEX).sum().item() == 301 - len(format_prompt(long))
    # a prompt longer than the context leaves nothing to learn when the prompt is masked
    ds = InstructionDataset([long, short], byte_tok, context=200, mask_prompt=True)
    assert len(ds) == 1 and ds.dropped == 1 and ds.truncated == 1
    assert len(InstructionDataset([long, short], byte_tok, context=200)) == 2
    with pytest.raises(DataError, match="longer than the context"):
        InstructionDataset([long, short], byte_tok, context=20, mask_prompt=True)


BAD_INSTRUCT = [
    (
        "obj.json",
        '{"instruction": "a", "output": "b"}',
        "line 1: the top level is a JSON dict",
        "expected a list",
    ),
    (
        "line.jsonl",
        '{"instruction": "a", "output": "b"}\n[1, 2]\n',
        "line 2: a JSON list",
        "expected an object",
    ),
    (
        "noinst.json",
        '[\n  {"instruction": "a", "output": "b"},\n  {"output": "c"}\n]',
        "line 3: no 'instruction' field",
        "'output'",
    ),
    (
        "noout.jsonl",
        '{"instruction": "a", "output": "b"}\n\n{"instruction": "a"}\n',
        "line 3: no 'output' field",
        "expected 'instruction'",
    ),
    (
        "syntax.json",
        '[\n  {"instruction": "a",\n   "output": b}\n]',
        "line 3: invalid JSON",
        "JSON list",
    ),
    (
        "syntax.jsonl",
        '{"instruction": "a", "output": "b"}\n{"instruction": \n',
        "line 2: invalid",
        "one object per line",
    ),
    (
        "emptyout.json",
        '[{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": ""}]',
        "line 2: empty 'output'",
        "skip_empty",
    ),
    (
        "type.json",
        '[{"instruction": "a", "output": 3}]',
        "line 1: 'output' is a int",
        "expected a string",
    ),
    ("open.json", '[{"instruction": "a", "output": "b"}', "line 1: the list is not closed", "']'"),
    ("tail.json", '[{"instruction": "a", "output": "b"}]\n[]', "line 2: extra data", "one JSON"),
    ("nolist.json", "[]", "no records", "expected a list"),
    ("empty.jsonl", "\n", "empty", "expected some text"),
    ("utf8.json", b'[{"instruction": "\xff", "output": "b"}]', "line 1: not valid UTF-8", "UTF-8"),
]


@pytest.mark.parametrize(
    "name, content, where, expected", BAD_INSTRUCT, ids=[b[0] for b in BAD_INSTRUCT]
)
def test_bad_instruction_files(tmp_path, name, content, where, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        read_instructions(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert where in message and expected in message
    with pytest.raises(DataError):
        validate_file("instruct", path)


def test_skip_empty_drops_records_and_counts_them(tmp_path):
    records = RECORDS + [{"instruction": "Draw a logo.", "input": "", "output": ""}]
    path = write(tmp_path, "a.json", json.dumps(records))
    assert len(read_instructions(path, skip_empty=True)) == len(RECORDS)
    summary = validate_file("instruct", path, skip_empty=True)
    assert summary["examples"] == 4 and summary["skipped_empty"] == 1
    assert summary["with_input"] == 1


# ----------------------------------------------------------------------------------------------
# the bundled data


@pytest.mark.parametrize(
    "split, ham, spam", [("train", 2180, 340), ("val", 311, 49), ("test", 623, 97)]
)
def test_bundled_sms(split, ham, spam):
    path = DATA / "sms" / f"{split}.tsv"
    summary = validate_file("classify", path)
    assert summary["examples"] == ham + spam
    assert summary["labels"] == {"ham": ham, "spam": spam}
    assert summary["spam_fraction"] == pytest.approx(spam / (ham + spam))
    assert len(read_spam(path)) == ham + spam


@pytest.mark.parametrize("split, n", [("train", 1265), ("val", 69), ("test", 161)])
def test_bundled_instructions(split, n):
    path = DATA / "instructions" / f"{split}.json"
    assert validate_file("instruct", path)["examples"] == n
    assert all(r.instruction and r.output for r in read_instructions(path))


def test_bundled_corpus():
    summary = validate_file("lm", DATA / "corpus" / "stories.txt")
    assert summary["documents"] == 2113 + 14  # data/README.md: generated + hand-written
    assert summary["bytes"] > 2_000_000


def test_validate_file_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be"):
        validate_file("images", DATA / "sms" / "val.tsv")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# online sources (the download is replaced by a local copy)


@pytest.fixture
def fake_web(monkeypatch):
    """Map URLs to local files; record every download."""
    files: dict[str, Path] = {}
    calls: list[str] = []

    def download(url, dest, max_bytes, progress=None, timeout=60):
        calls.append(url)
        if url not in files:
            raise urllib.error.URLError("unreachable in tests")
        shutil.copyfile(files[url], dest)

    monkeypatch.setattr(sources, "download_url", download)
    monkeypatch.delenv(SOURCES_CACHE_ENV, raising=False)
    for name in ("HF_HUB_OFFLINE", "GPT2LAB_ALLOW_DOWNLOAD"):  # no network check says offline
        monkeypatch.delenv(name, raising=False)
    hub.reset()
    return files, calls


@pytest.mark.parametrize("env", ["HF_HUB_OFFLINE", "GPT2LAB_ALLOW_DOWNLOAD"])
def test_offline_sources_say_they_need_the_network(tmp_path, fake_web, monkeypatch, env):
    files, calls = fake_web
    monkeypatch.setenv(env, "1" if env == "HF_HUB_OFFLINE" else "0")
    cache = tmp_path / "cache"
    reason = sources.availability("sms-spam", cache_dir=cache)
    assert reason is not None and reason.startswith("needs the network: ") and env in reason
    with pytest.raises(SourceError, match=rf"'sms-spam' needs the network: {env}=.*Connect"):
        fetch("sms-spam", cache_dir=cache)
    assert calls == []  # refused before any download
    cache.mkdir()
    (cache / SOURCES["sms-spam"].filename).write_text("ham\thello\n")
    assert sources.availability("sms-spam", cache_dir=cache) is None  # cached: usable offline
    assert fetch("sms-spam", cache_dir=cache) == cache / SOURCES["sms-spam"].filename


def test_offline_hub_check_gates_sources(tmp_path, fake_web, monkeypatch):
    files, calls = fake_web
    monkeypatch.setattr(hub, "_status", hub.HubStatus("offline", "x.test: connection refused"))
    assert (
        sources.availability("alpaca", tmp_path) == "needs the network: x.test: connection refused"
    )
    with pytest.raises(SourceError, match="needs the network: x.test: connection refused"):
        fetch("alpaca", cache_dir=tmp_path)
    assert calls == []


def test_unreachable_addresses_say_needs_the_network(tmp_path, fake_web):
    files, calls = fake_web  # no file registered: every address raises URLError
    with pytest.raises(SourceError) as info:
        fetch("sms-spam", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert message.startswith("'sms-spam' needs the network: archive.ics.uci.edu: unreachable")
    assert "urlopen error" not in message and calls == list(SOURCES["sms-spam"].urls)


def test_fetch_caches_the_file(tmp_path, fake_web, monkeypatch):
    files, calls = fake_web
    fake = _many_instructions(tmp_path, 1100)
    files[SOURCES["instruction-data"].url] = fake
    # the real file's sha256 is pinned; this stand-in has its own
    assert SOURCES["instruction-data"].sha256 == (
        "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"
    )
    own = dataclasses.replace(SOURCES["instruction-data"], sha256=sources.sha256_file(fake))
    monkeypatch.setitem(SOURCES, "instruction-data", own)
    cache = tmp_path / "cache"
    path = fetch("instruction-data", cache_dir=cache)
    assert path == cache / "instruction-data.json"
    assert len(read_instructions(path)) == 1100
    assert fetch("instruction-data", cache_dir=cache) == path
    assert len(calls) == 1  # the second call downloaded nothing
    fetch("instruction-data", cache_dir=cache, force=True)
    assert len(calls) == 2
    assert sorted(p.name for p in cache.iterdir()) == ["instruction-data.json"]


def _many_instructions(tmp_path: Path, n: int) -> Path:
    records = [{"instruction": f"Count to {i}.", "input": "", "output": str(i)} for i in range(n)]
    return write(tmp_path, f"instructions-{n}.json", json.dumps(records))


def test_cache_folder_from_environment(tmp_path, fake_web, monkeypatch):
    files, _ = fake_web
    url = "https://example.org/texts/tale.txt"
    files[url] = write(tmp_path, "tale.txt", "Once upon a time.\n")
    monkeypatch.setenv(SOURCES_CACHE_ENV, str(tmp_path / "env-cache"))
    path = fetch(url)
    assert path.parent == tmp_path / "env-cache" and path.name.endswith("-tale.txt")
    assert read_text(path) == "Once upon a time.\n"


def test_checksum_mismatch_leaves_nothing_in_cache(tmp_path, fake_web, monkeypatch):
    files, calls = fake_web
    local = write(tmp_path, "t.txt", "some text\n")
    good = hashlib.sha256(local.read_bytes()).hexdigest()
    bad = Source(
        "https://a.example/t.txt",
        "t.txt",
        "lm",
        mirrors=("https://b.example/t.txt",),
        sha256="0" * 64,
    )
    monkeypatch.setitem(SOURCES, "test-text", bad)
    files[bad.url] = files[bad.mirrors[0]] = local
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as info:
        fetch("test-text", cache_dir=cache)
    message = str(info.value)
    assert "sha256 mismatch" in message and good in message
    assert bad.url in message and bad.mirrors[0] in message  # every address tried, each named
    assert list(cache.iterdir()) == []
    monkeypatch.setitem(SOURCES, "test-text", Source(bad.url, "t.txt", "lm", sha256=good))
    assert fetch("test-text", cache_dir=cache).read_text() == "some text\n"


def test_mirror_is_tried_when_the_primary_fails(tmp_path, fake_web, monkeypatch):
    files, calls = fake_web
    src = Source(
        "https://down.example/x.zip",
        "spam.tsv",
        "classify",
        mirrors=("https://up.example/x.zip",),
        member="SMSSpamCollection",
    )
    monkeypatch.setitem(SOURCES, "test-spam", src)
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(DATA / "sms" / "val.tsv", "SMSSpamCollection")
        zf.writestr("readme", "not this one")
    files[src.mirrors[0]] = archive
    path = fetch("test-spam", cache_dir=tmp_path / "cache")
    assert calls == list(src.urls)
    assert path.read_bytes() == (DATA / "sms" / "val.tsv").read_bytes()
    assert validate_file("classify", path)["examples"] == 360


def test_wrong_content_is_rejected(tmp_path, fake_web):
    files, _ = fake_web
    # a zip of the right layout but far too few messages for the real collection
    archive = tmp_path / "small.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(DATA / "sms" / "val.tsv", "SMSSpamCollection")
    files[SOURCES["sms-spam"].url] = archive
    files[SOURCES["sms-spam"].mirrors[0]] = write(tmp_path, "page.html", "<html>gone</html>")
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as info:
        fetch("sms-spam", cache_dir=cache)
    assert "expected at least 5000" in str(info.value)
    assert "not a zip archive" in str(info.value)
    assert list(cache.iterdir()) == []


def test_plain_text_url_must_be_utf8(tmp_path, fake_web):
    files, _ = fake_web
    files["https://example.org/bin"] = write(tmp_path, "bin", b"\x00\xff\xfe")
    with pytest.raises(SourceError, match="not valid UTF-8"):
        fetch("https://example.org/bin", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_source_name():
    with pytest.raises(ValueError, match="unknown data source 'nope'.*alpaca"):
        fetch("nope")


def test_job_submit_refuses_an_online_source_offline(tmp_path, monkeypatch):
    from gpt.jobs import JobError, JobManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(SOURCES_CACHE_ENV, str(tmp_path / "cache"))
    manager = JobManager(tmp_path / "jobs", background=False)
    with pytest.raises(JobError, match="'sms-spam' needs the network: HF_HUB_OFFLINE=1"):
        manager.submit({"kind": "classify", "base": "starter", "data": "sms-spam"})
    assert manager.list() == []
