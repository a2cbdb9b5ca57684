"""Generate and Chat with several visitors at once: their runs share decode steps (gpt.batching)
and each still gets exactly its own run: tokens, seed, Stop, charts."""

from __future__ import annotations

import contextlib
import math
import threading
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio")
import plotly.graph_objects as go  # noqa: E402

from gpt.batching import batcher_for  # noqa: E402
from gpt.lab.registry import default_registry  # noqa: E402
from gpt.sampling import Candidate  # noqa: E402
from pages import chat, generation  # noqa: E402
from pages.common.heavy import (  # noqa: E402
    DECODE_MEMORY_ENV,
    DECODE_SLOTS_ENV,
    batched,
    decode_limits,
    share_heavy_slots,
)

SETTINGS = [  # temperature, top-k, top-p, repetition penalty, max new tokens, seed
    (0, 0, 1.0, 1.0, 40, 0),
    (0.8, 40, 0.95, 1.1, 25, 1),
    (1.2, 0, 0.9, 1.0, 33, 2),
    (0, 0, 1.0, 1.5, 12, 0),
]
PROMPTS = ["Once upon a time", "The fox", "Pip the fox lived in a small house by the river", "A"]


@pytest.fixture
def model() -> str:
    name = default_registry().default(generation.TASKS)
    if name is None:
        pytest.skip("no language model installed")
    return name


def last(outs):
    """(text, status, token ids) of a finished run's last update."""
    text, _, status, run = outs[-1]
    return text, status.split(" · ")[0], run["tokens"]


def test_visitors_at_once_get_what_each_gets_alone(model):
    alone = [
        last(list(generation.generate(model, p, *s, request=SimpleNamespace(session_hash=f"a{i}"))))
        for i, (p, s) in enumerate(zip(PROMPTS, SETTINGS))
    ]
    gpt = default_registry().get(model)[0]
    batcher = batcher_for(gpt)
    before = (batcher.steps_run, batcher.rows_fed)
    outs = [[] for _ in PROMPTS]
    first = threading.Barrier(len(PROMPTS))

    def visitor(i):
        request = SimpleNamespace(session_hash=f"crowd{i}")
        for n, out in enumerate(
            generation.generate(model, PROMPTS[i], *SETTINGS[i], request=request)
        ):
            outs[i].append(out)
            if n == 0 and isinstance(out[2], str) and "tokens" in out[2]:
                first.wait(30)  # everyone has their first token: the rest runs batched

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [last(o) for o in outs] == alone
    steps, rows = batcher.steps_run - before[0], batcher.rows_fed - before[1]
    assert rows > steps  # some steps fed several visitors' rows
    assert generation._stops == {}


def test_one_visitors_stop_ends_only_their_run(model, monkeypatch):
    monkeypatch.setattr(generation, "TEXT_RATE", math.inf)
    a, b = SimpleNamespace(session_hash="stop-a"), SimpleNamespace(session_hash="stop-b")
    args = (model, "Once upon a time", 0, 0, 1.0, 1.0, 60, 0)
    run_a = generation.generate(*args, request=a)
    run_b = generation.generate(*args, request=b)
    next(run_a), next(run_b)
    generation.request_stop(a)
    statuses_a = [o[2] for o in run_a if isinstance(o[2], str)]
    assert statuses_a[-1].endswith(generation.STOPPED)
    outs_b = list(run_b)
    assert outs_b[-1][2].startswith("60 / 60 tokens") and generation.STOPPED not in outs_b[-1][2]


def test_a_slow_page_does_not_hold_up_the_others(model):
    """A visitor whose page stops reading (busy drawing) keeps its row; the others' runs go on
    to their end meanwhile: the page's work happens outside the shared step."""
    slow = generation.generate(
        model, "Once upon a time", 0, 0, 1.0, 1.0, 80, 0, request=SimpleNamespace(session_hash="s")
    )
    next(slow)  # its first update, then it reads nothing more for a while
    fast = list(
        generation.generate(
            model, "The fox", 0, 0, 1.0, 1.0, 30, 0, request=SimpleNamespace(session_hash="f")
        )
    )
    assert fast[-1][2].startswith("30 / 30 tokens")
    assert list(slow)[-1][2].startswith("80 / 80 tokens")


def test_chats_at_once_get_what_each_gets_alone():
    name = default_registry().default(chat.TASKS)
    if name is None:
        pytest.skip("no chat model installed")
    messages = ['Give a synonym for "happy".', "Is a robin a mammal, a bird or a fish?"]
    settings = [(0, 0, 1.0, 40), (0, 40, 0.9, 30)]  # greedy: chat draws no seed

    def reply(i):
        return list(chat.chat(messages[i], [], name, *settings[i]))[-1][0]

    alone = [reply(i) for i in range(2)]
    got = [None, None]
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, reply(i))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == alone


@pytest.mark.parametrize("chosen", [0, 99])  # in the top 10, or sampled from outside it
def test_the_candidates_chart_is_a_valid_plotly_figure(chosen):
    cands = [Candidate(i, 0.3 / (i + 1), 0.2 / (i + 1), f"t{i}") for i in range(10)]
    fig = generation.candidates_figure(4, chosen, 0.01, cands, "x")
    assert go.Figure(fig.to_dict()).to_dict() == fig.to_dict()  # plotly's validation agrees
    assert len(fig.data) == 2 and fig.layout.title.text.startswith("Step 4:")


def test_batched_events_get_their_own_group_and_the_batcher_follows_the_memory_cap(monkeypatch):
    assert batched("generate") == dict(concurrency_id="heavy:decode:generate", concurrency_limit=16)
    fns = {
        i: SimpleNamespace(concurrency_id=cid, concurrency_limit=4)
        for i, cid in enumerate(["heavy:decode:generate", "heavy:attention", "light:tokenize"])
    }
    counts = share_heavy_slots(SimpleNamespace(fns=fns), 2, 4, 12)
    assert counts == {"heavy": 1, "light": 1, "heavy:decode": 1}
    assert [(f.concurrency_id, f.concurrency_limit) for f in fns.values()] == [
        ("heavy:decode", 12), ("heavy", 2), ("light:tokenize", 4),
    ]  # fmt: skip
    monkeypatch.setenv(DECODE_MEMORY_ENV, "100")
    monkeypatch.setenv(DECODE_SLOTS_ENV, "8")
    assert decode_limits().max_rows == 8 and decode_limits().cache_bytes == 100 * 2**20
    monkeypatch.delenv(DECODE_MEMORY_ENV)
    monkeypatch.setenv("GPT2LAB_MODEL_CACHE_MB", "1000")
    assert decode_limits().cache_bytes == 200 * 2**20  # a fifth of the models' cap


def test_past_four_streams_each_gets_a_share_of_the_update_rates():
    from pages.common.pace import Pace, Streams

    now, streams = [0.0], Streams()
    pace = Pace(10, clock=lambda: now[0], streams=streams)

    def due_at(times):
        out = []
        for now[0] in times:
            out.append(pace.due())
        return out

    with streams.running():  # alone: every 0.1 s
        assert due_at([0.0, 0.1, 0.15, 0.2]) == [True, True, False, True]
    with contextlib.ExitStack() as stack:
        for _ in range(8):  # 8 at once: every 0.2 s each
            stack.enter_context(streams.running())
        assert due_at([1.0, 1.1, 1.19, 1.2]) == [True, False, False, True]
    assert streams.n == 0
