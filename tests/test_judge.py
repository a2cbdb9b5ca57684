"""LLM judge against a fake Ollama server on 127.0.0.1 (a thread in this process, no network)."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest

from gpt.train.judge import JudgeError, chat, judge_prompt, judge_responses, parse_score, task_text
from tests.conftest import reply

EXAMPLES = [
    {"instruction": "Name the capital of France.", "input": "", "output": "Paris"},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Rewrite politely.", "input": "Give me that.", "output": "Could I have that?"},
]
PREDICTIONS = ["Paris.", "6", "Please give me that."]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scores_parsed_and_averaged_and_requests_well_formed(server):
    server.answers = ["85", "Score: 90 out of 100", "I cannot judge this."]
    progress = []
    got = judge_responses(
        EXAMPLES,
        PREDICTIONS,
        server.url + "/",
        model="judge-model:8b",
        timeout=5,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert got["scores"] == [85, 90, None]
    assert got["mean_score"] == 87.5
    assert (got["n_scored"], got["n_failed"]) == (2, 1)
    assert got["replies"][2] == "I cannot judge this."
    assert got["model"] == "judge-model:8b"
    assert progress == [(1, 3), (2, 3), (3, 3)]

    assert len(server.requests) == 3
    for req, ex, pred in zip(server.requests, EXAMPLES, PREDICTIONS):
        assert req["path"] == "/api/chat"
        assert req["headers"]["Content-Type"] == "application/json"
        body = req["body"]
        assert set(body) == {"model", "messages", "stream", "options"}
        assert body["model"] == "judge-model:8b"
        assert body["stream"] is False
        assert body["options"] == {"temperature": 0, "seed": 123}
        assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
        prompt = body["messages"][0]["content"]
        assert prompt == judge_prompt(ex, pred)
        for part in (ex["instruction"], ex["input"], ex["output"], pred, "0 to 100"):
            assert part in prompt


def test_clamping_and_all_failed(server):
    server.answers = ["150", "-20"]
    got = judge_responses(EXAMPLES[:2], PREDICTIONS[:2], server.url, timeout=5)
    assert got["scores"] == [100, 0] and got["mean_score"] == 50.0
    server.answers = ["no", "none"]
    got = judge_responses(EXAMPLES[:2], PREDICTIONS[:2], server.url, timeout=5)
    assert got["mean_score"] is None and (got["n_scored"], got["n_failed"]) == (0, 2)


def test_empty_input_makes_no_requests(server):
    got = judge_responses([], [], server.url, timeout=5)
    assert got["mean_score"] is None and got["scores"] == [] and server.requests == []


def test_streaming_ndjson(server):
    pieces = ["Sc", "ore: 7", "3", ""]
    lines = [
        {"message": {"role": "assistant", "content": p}, "done": i == len(pieces) - 1}
        for i, p in enumerate(pieces)
    ]
    ndjson = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"
    server.respond = lambda body: (200, ndjson if body["stream"] else reply("0"))
    assert chat("hi", server.url, "m", timeout=5, stream=True) == "Score: 73"
    got = judge_responses(EXAMPLES[:1], PREDICTIONS[:1], server.url, timeout=5, stream=True)
    assert got["scores"] == [73]
    assert server.requests[-1]["body"]["stream"] is True


@pytest.mark.parametrize(
    "reply_, match",
    [
        ((500, b"internal failure"), "HTTP 500: internal failure"),
        (
            (404, {"error": "model 'nope' not found"}),
            "HTTP 404: model 'nope' not found.*ollama pull",
        ),
        ((200, b"<html>not json</html>"), "did not reply with JSON.*<html>"),
        ((200, {"response": "85"}), "without message.content"),
        ((200, {"error": "out of memory"}), "answered with an error: out of memory"),
        (
            (200, b'{"message": {"content": "8"}, "done": false}\nnot json\n'),
            "did not reply with JSON",
        ),
    ],
)
def test_server_errors_raise_judge_error(server, reply_, match):
    server.respond = lambda body: reply_
    with pytest.raises(JudgeError, match=match):
        judge_responses(EXAMPLES[:1], PREDICTIONS[:1], server.url, model="nope", timeout=5)


def test_garbage_stream_line_raises(server):
    server.respond = lambda body: (200, b'{"message": {"content": "8"}, "done": false}\n{oops\n')
    with pytest.raises(JudgeError, match="did not reply with JSON"):
        chat("hi", server.url, timeout=5, stream=True)


def test_unreachable_server_names_url_and_ollama_serve():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(JudgeError, match="ollama serve") as info:
        judge_responses(EXAMPLES[:1], PREDICTIONS[:1], url, timeout=2)
    assert url in str(info.value)


def test_loopback_ignores_proxy_settings(server, monkeypatch):
    dead = f"http://127.0.0.1:{closed_port()}"
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, dead)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server.answers = ["61"]
    assert chat("hi", server.url, timeout=5) == "61"


def test_timeout(server):
    server.respond = lambda body: (200, 0.6)  # no answer for 0.6 s
    with pytest.raises(JudgeError, match="did not answer within 0.2 s"):
        chat("hi", server.url, timeout=0.2)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "127.0.0.1:11434", "ftp://127.0.0.1/"])
def test_only_http_urls(url):
    with pytest.raises(JudgeError, match="http:// or https://"):
        chat("hi", url)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="3 examples but 2 predictions"):
        judge_responses(EXAMPLES, PREDICTIONS[:2], "http://127.0.0.1:1")
    with pytest.raises(TypeError, match="not a string"):
        judge_responses(EXAMPLES[:1], "Paris", "http://127.0.0.1:1")


@pytest.mark.parametrize(
    "text, want",
    [
        ("85", 85),
        ("  42\n", 42),
        ("Score: 85/100", 85),
        ("I'd give it 100.", 100),
        ("3.7", 3),
        ("1000", 100),
        ("-5", 0),
        ("<think>first 10, then 20</think>\n64", 64),
        ("", None),
        ("excellent", None),
    ],
)
def test_parse_score(text, want):
    assert parse_score(text) == want


def test_prompt_text():
    record = SimpleNamespace(instruction="Add the numbers.", input="2 and 3", output="5")
    assert judge_prompt(record, "6") == judge_prompt(EXAMPLES[1], "6")
    assert task_text({"instruction": " Do it. ", "input": None}) == "Do it."
    assert task_text(EXAMPLES[1]) == "Add the numbers.\n\n2 and 3"
    prompt = judge_prompt(EXAMPLES[1], "6")
    assert prompt.startswith("Given the input `Add the numbers.\n\n2 and 3` and correct output `5`")
    assert "score the model response `6` on a scale from 0 to 100" in prompt
    assert prompt.endswith("Respond with the integer number only.")
