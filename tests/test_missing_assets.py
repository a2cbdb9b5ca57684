"""The app starts and stays useful when an optional asset is missing: GPT-2's vocabulary here.

`gpt2_tokenizer` is made to fail as it does on a machine with neither the whisper ranks file nor
tiktoken's cache nor network; the Tokenizer tab then shows our BPE and says how to get GPT-2's.
"""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

from gpt.tokenizer import TokenizerNotFoundError  # noqa: E402
from pages import tokenizer as tab  # noqa: E402


@pytest.fixture
def no_gpt2_vocab(monkeypatch):
    def missing(path=None):
        raise TokenizerNotFoundError("GPT-2's vocabulary was not found (test)")

    monkeypatch.setattr(tab, "gpt2_tokenizer", missing)


def test_tokenize_without_gpt2_vocab_shows_ours_and_how_to_get_gpt2(no_gpt2_vocab):
    gpt2_html, gpt2_counts, ids, our_html, our_counts = tab.tokenize("Hello world", False)
    assert "not on this machine" in gpt2_html and "requirements-nodeps.txt" in gpt2_html
    assert "<code>" in gpt2_html  # the command is shown as code, not raw backticks
    assert "not installed" in gpt2_counts and ids == ""
    assert 'class="tok' in our_html and "tokens" in our_counts


def test_other_views_fall_back_to_our_bpe(no_gpt2_vocab):
    table = tab.token_bytes("Hello world", 0)
    assert "| 0 of " in table and "not on this machine" in table
    assert "not on this machine" in tab.bpe_merges(" hello", "GPT-2")
    assert "step 1" in tab.bpe_merges(" hello", "Ours")


def test_tokenizer_tab_builds_without_gpt2_vocab(no_gpt2_vocab):
    with gr.Blocks() as demo:
        tab.build(demo)
    assert any(getattr(b, "elem_id", None) == "tok-out" for b in demo.blocks.values())


def test_with_gpt2_vocab_the_views_use_gpt2():
    gpt2_html, gpt2_counts, ids, *_ = tab.tokenize("Hello world", False)
    assert ids == "15496, 995"  # GPT-2's ids for "Hello" and " world"
    assert "not on this machine" not in tab.token_bytes("Hello world", 0)


def test_unusable_jobs_folder_falls_back_to_a_temporary_one(tmp_path, monkeypatch):
    import app

    monkeypatch.setattr(app.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    manager, notice = app.open_jobs(blocker / "jobs")
    assert "cannot be used" in notice and "GPT2LAB_JOBS_DIR" in notice
    assert (tmp_path / "tmp" / "gpt2lab-jobs").is_dir()
    assert manager.list() == []
    ok, none = app.open_jobs(tmp_path / "jobs")
    assert none == "" and (tmp_path / "jobs").is_dir()
