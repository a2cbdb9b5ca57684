"""Optional LLM judge: a larger model, served through Ollama's chat API, scores responses 0-100.

Any server that speaks Ollama's `/api/chat` works (Ollama itself: `ollama serve`, then
`ollama pull llama3`). Each response is sent as one request:

    POST {url}/api/chat
    {"model": "llama3", "messages": [{"role": "user", "content": PROMPT}], "stream": false,
     "options": {"temperature": 0, "seed": 123}}

and the reply's `message.content` is read. With `stream=True` the server sends NDJSON lines, each
holding a piece of `message.content`, until one says `"done": true`.

The prompt gives the task (instruction, plus input if any), the reference output and the model's
response, and asks for an integer from 0 to 100 only. The first integer in the reply is the score,
clamped to [0, 100]; a reply with no integer is recorded as `None` and counted as failed. Nothing
but the standard library is used to talk to the server.

>>> parse_score("Score: 85/100"), parse_score("150"), parse_score("no idea")
(85, 100, None)
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

DEFAULT_URL = "http://localhost:11434"
_INT = re.compile(r"-?\d+")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)  # reasoning models may prefix their answer


class JudgeError(RuntimeError):
    """The judge server could not be reached or gave an unusable reply; the message says which."""


def _field(example: Any, name: str) -> str:
    """`example[name]` for a dict, `example.name` for a record such as `gpt.train.data.Instruction`."""
    value = example.get(name) if isinstance(example, Mapping) else getattr(example, name, None)
    return "" if value is None else str(value)


def task_text(example: Mapping[str, Any] | Any) -> str:
    """The instruction, followed by its input (if any) on a new paragraph.

    >>> task_text({"instruction": "Add the numbers.", "input": "2, 3"})
    'Add the numbers.\\n\\n2, 3'
    """
    instruction = _field(example, "instruction").strip()
    extra = _field(example, "input").strip()
    return f"{instruction}\n\n{extra}" if extra else instruction


def judge_prompt(example: Mapping[str, Any] | Any, response: str) -> str:
    """The prompt that asks the judge to score one response against the reference output.

    >>> print(judge_prompt({"instruction": "Say hi.", "input": "", "output": "Hi!"}, "Hello"))
    Given the input `Say hi.` and correct output `Hi!`, score the model response `Hello` on a \
scale from 0 to 100, where 100 is the best score. Respond with the integer number only.
    """
    return (
        f"Given the input `{task_text(example)}` and correct output `{_field(example, 'output')}`, "
        f"score the model response `{response}` on a scale from 0 to 100, where 100 is the best "
        "score. Respond with the integer number only."
    )


def parse_score(reply: str) -> int | None:
    """The first integer in a reply, clamped to [0, 100]; `None` if there is none.

    >>> parse_score("<think>maybe 40?</think> 72"), parse_score("-3")
    (72, 0)
    """
    match = _INT.search(_THINK.sub("", reply))
    if match is None:
        return None
    return max(0, min(100, int(match.group())))


def _error_detail(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text[:200] or "(empty body)"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return text[:200]


def _content(data: Any, endpoint: str) -> tuple[str, bool]:
    """`(message.content, done)` of one reply object, or a JudgeError naming what is missing."""
    if isinstance(data, dict) and "error" in data:
        raise JudgeError(f"{endpoint} answered with an error: {data['error']}")
    message = data.get("message") if isinstance(data, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise JudgeError(f"{endpoint} replied without message.content: {json.dumps(data)[:200]}")
    return content, bool(data.get("done", True))


def _json(line: bytes, endpoint: str) -> Any:
    try:
        return json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        shown = line[:200].decode("utf-8", "replace")
        raise JudgeError(f"{endpoint} did not reply with JSON ({e}): {shown!r}") from e


def _opener(endpoint: str) -> urllib.request.OpenerDirector:
    """urllib's default opener, minus any HTTP(S)_PROXY when the server is on this machine.

    A local Ollama is the usual judge, and sending its traffic to a proxy would only break it.
    """
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    if host == "localhost" or host == "::1" or host.startswith("127."):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def chat(
    prompt: str,
    url: str = DEFAULT_URL,
    model: str = "llama3",
    timeout: float = 60,
    stream: bool = False,
    options: Mapping[str, Any] | None = None,
) -> str:
    """Send one user message to `{url}/api/chat` and return the assistant's reply text.

    `options` default to `{"temperature": 0, "seed": 123}` so repeated runs score alike.
    Raises `JudgeError` for a bad URL, an unreachable server, a timeout, an HTTP error (with the
    server's own error message) or a reply that is not the expected JSON.
    """
    if not url.startswith(("http://", "https://")):
        raise JudgeError(f"judge URL must start with http:// or https://, got {url!r}")
    endpoint = url.rstrip("/") + "/api/chat"
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
        "options": dict(options) if options is not None else {"temperature": 0, "seed": 123},
    }
    request = urllib.request.Request(
        endpoint,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with _opener(endpoint).open(request, timeout=timeout) as reply:
            if not stream:
                return _content(_json(reply.read(), endpoint), endpoint)[0]
            pieces = []
            for line in reply:
                if not line.strip():
                    continue
                piece, done = _content(_json(line, endpoint), endpoint)
                pieces.append(piece)
                if done:
                    break
            return "".join(pieces)
    except urllib.error.HTTPError as e:
        detail = _error_detail(e.read())
        hint = f" (is the model pulled? try `ollama pull {model}`)" if e.code == 404 else ""
        raise JudgeError(f"{endpoint} answered HTTP {e.code}: {detail}{hint}") from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise JudgeError(f"{endpoint} did not answer within {timeout} s") from e
        raise JudgeError(
            f"cannot reach the judge server at {url} ({e.reason}); is it running? "
            "Start Ollama with `ollama serve`"
        ) from e
    except TimeoutError as e:  # a timeout while reading the body
        raise JudgeError(f"{endpoint} did not answer within {timeout} s") from e
    except (OSError, http.client.HTTPException) as e:  # reset, closed mid-reply, ...
        raise JudgeError(f"connection to {endpoint} failed: {e!r}") from e


def judge_responses(
    examples: Sequence[Mapping[str, Any] | Any],
    predictions: Sequence[str],
    url: str = DEFAULT_URL,
    model: str = "llama3",
    timeout: float = 60,
    stream: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ask the judge to score every prediction against its Alpaca example; average the scores.

    `examples` are dicts with `instruction`, `input` and `output` (or records with those
    attributes, e.g. `gpt.train.data.Instruction`); `predictions[i]` is the model's response to
    `examples[i]`. `on_progress(done, total)` is called after each item.

    Returns `{"mean_score": float | None, "n_scored", "n_failed", "scores": [int | None, ...],
    "replies": [str, ...], "model"}`; `mean_score` averages the parsed scores only and is `None`
    if none parsed. Connection, HTTP and JSON problems raise `JudgeError` at once.
    """
    if isinstance(predictions, str):
        raise TypeError("predictions must be a sequence of responses, not a string")
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
    scores: list[int | None] = []
    replies: list[str] = []
    for i, (example, prediction) in enumerate(zip(examples, predictions)):
        reply = chat(judge_prompt(example, prediction), url, model, timeout, stream)
        replies.append(reply)
        scores.append(parse_score(reply))
        if on_progress is not None:
            on_progress(i + 1, len(examples))
    parsed = [s for s in scores if s is not None]
    return {
        "mean_score": sum(parsed) / len(parsed) if parsed else None,
        "n_scored": len(parsed),
        "n_failed": len(scores) - len(parsed),
        "scores": scores,
        "replies": replies,
        "model": model,
    }
