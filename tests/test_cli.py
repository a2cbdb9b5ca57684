"""`python -m gpt tokenize|generate`, run in-process through `gpt.__main__.main`."""

from __future__ import annotations

import json

import pytest
import torch

from gpt.__main__ import main
from gpt.checkpoint import save_checkpoint
from gpt.config import PRESETS
from gpt.model import GPT
from gpt.tokenizer import Tokenizer, gpt2_tokenizer


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny byte-level checkpoint folder with its own tokenizer."""
    torch.manual_seed(0)
    tok = Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256})
    folder = tmp_path_factory.mktemp("ck") / "tiny"
    save_checkpoint(folder, GPT(PRESETS["tiny"].replace(vocab_size=257)), tokenizer=tok)
    return folder


def test_tokenize_json_matches_tokenizer(capsys):
    text = "Hello world! 🙂 日本 <|endoftext|>"
    assert main(["tokenize", "--text", text, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == gpt2_tokenizer().encode(text)


def test_tokenize_lists_tokens_and_counts(capsys):
    assert main(["tokenize", "--text", "Hi 日"]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].split("\t") == [str(gpt2_tokenizer().encode("Hi")[0]), "'Hi'"]
    assert any("<" in line for line in lines)  # a partial character shows as hex bytes
    assert "characters" in out.err


def test_tokenize_explain_is_json(capsys):
    assert main(["tokenize", "--text", "lower", "--explain"]) == 0
    ex = json.loads(capsys.readouterr().out)
    assert ex["pieces"][0]["text"] == "lower" and ex["pieces"][0]["steps"]


def test_generate_is_seeded_and_streams(tiny_ckpt, capsys):
    args = [
        "generate",
        "--model",
        str(tiny_ckpt),
        "--prompt",
        "Hi",
        "--seed",
        "1",
        "--max-new-tokens",
        "12",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and first.startswith("Hi")


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--model", "no-such-model", "--prompt", "x"], "no model named"),
        (["generate", "--model", "{ck}", "--prompt", "x", "--temperature", "-2"], "temperature"),
        (["tokenize", "--tokenizer", "missing.json", "--text", "x"], "no tokenizer named"),
    ],
)
def test_errors_exit_2_with_one_line(tiny_ckpt, capsys, args, message):
    args = [a.replace("{ck}", str(tiny_ckpt)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_generate_defaults_to_the_starter_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GPT2LAB_MODELS_DIR", raising=False)
    argv = ["generate", "--prompt", "Pip", "--max-new-tokens", "3", "--temperature", "0"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "model: starter" in out.err and out.out.startswith("Pip")


def test_chat_sends_the_alpaca_prompt(monkeypatch, capsys):
    from gpt.lab.names import load_model, load_tokenizer
    from gpt.sampling import generate
    from gpt.train.data import Instruction, format_prompt

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ask = "Where does Pip the fox live?"
    argv = ["chat", "--prompt", ask, "--temperature", "0", "--max-new-tokens", "24", "--show-prompt"]
    assert main(argv) == 0
    out = capsys.readouterr()
    prompt = format_prompt(Instruction(ask))
    assert out.err.endswith(prompt) and "model: starter-chat" in out.err
    model, tok = load_model("starter-chat"), load_tokenizer("starter-chat")
    stops = ("### Instruction:", "### Input:", "### Response:")
    want = generate(model, tok, prompt, temperature=0, max_new_tokens=24, stop=stops)
    assert out.out.strip() == want.split("###")[0].strip()


def test_help_names_the_models(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("starter-chat", "starter-spam", "job:<id>", "gpt2-xl"):
        assert name in text
