"""A public Space that one visitor cannot spoil for the others (issue 20, part 2 and the request
parts of 3 and 4): signed visitor tokens, a per-address job share, fair heavy queueing, the
admin lockout, a session-state budget, the request-size limit, short and named input errors.

The fast tests drive the pieces directly; the slow ones (`-m slow`) the app in multi-user mode
through its HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from types import SimpleNamespace

import pytest

gr = pytest.importorskip("gradio")

from gpt.jobs import JobError, JobManager, JobPolicy, Visitor  # noqa: E402
from pages import visitors  # noqa: E402
from pages.common.heavy import QuietLog, _fair_order  # noqa: E402
from pages.common.inputs import cap_message, check_payloads, quote  # noqa: E402
from pages.common.limits import BodyLimit, StateBudget, light_sessions  # noqa: E402
from pages.visitors import (  # noqa: E402
    AdminGuard,
    AdminLocked,
    TokenKeys,
    ensure_token,
    new_token,
    owner_of,
    visitor_of,
)
from tests.test_jobs import classify_spec, files, one_thread  # noqa: E402, F401 (fixtures)

LONG = dict(max_steps=100_000, eval_every=10_000, checkpoint_every=100_000)


# --- identity: signed tokens --------------------------------------------------------------


def test_tokens_are_signed_and_made_up_or_tampered_ones_refused(monkeypatch):
    token = new_token()
    nonce, sig = token.split(".")
    assert owner_of(token).startswith("anon:")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    other_key = TokenKeys(b"another server's key........").sign(nonce)
    for bad in (nonce, f"{nonce}.{flipped}", other_key, "x" * 43 + "." + "y" * 43, ["a"], 7):
        assert owner_of(bad) is None, bad
    monkeypatch.setenv("GPT2LAB_MULTIUSER", "1")
    with pytest.raises(gr.Error, match="not issued by this server"):
        visitor_of(f"{nonce}.{flipped}")
    assert visitor_of(token).owner == owner_of(token)
    assert visitor_of("").owner is None  # no token: no identity (the policy says so)


def test_a_token_from_before_signing_keeps_its_jobs():
    legacy = "L" * 43  # the random part alone: what the page kept before tokens were signed
    upgraded = ensure_token(legacy)
    assert upgraded != legacy and upgraded.startswith(legacy + ".")
    legacy_owner = "anon:" + __import__("hashlib").sha256(legacy.encode()).hexdigest()[:24]
    assert owner_of(upgraded) == legacy_owner
    assert ensure_token(upgraded) == upgraded and owner_of(ensure_token(None)) is not None


def test_client_address_trusts_forwarded_only_behind_a_proxy(monkeypatch):
    request = SimpleNamespace(
        headers={"x-forwarded-for": "203.0.113.7, 10.0.0.1"}, client=SimpleNamespace(host="10.0.0.1")
    )
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GPT2LAB_TRUST_FORWARDED", raising=False)
    assert visitors.client_address(request) == "10.0.0.1"  # anyone may write the header
    monkeypatch.setenv("SPACE_ID", "someone/lab")
    assert visitors.client_address(request) == "203.0.113.7"  # the Spaces proxy's first hop


# --- the per-address share ------------------------------------------------------------------


@pytest.mark.slow  # real jobs
def test_made_up_visitors_from_one_address_share_its_allowance(files, tmp_path):  # noqa: F811
    policy = JobPolicy(multiuser=True, per_visitor=1, per_address=2)
    here = [Visitor(owner_of(new_token()), address="198.51.100.1") for _ in range(3)]
    elsewhere = Visitor(owner_of(new_token()), address="198.51.100.2")
    signed_in = Visitor("hf:alice")  # signed in: their own share, whatever the address
    with JobManager(tmp_path / "jobs", policy=policy, background=False) as jobs:
        started = [jobs.submit(classify_spec(files, **LONG), v) for v in here[:2]]
        with pytest.raises(JobError, match="sign in with Hugging Face to get your own slot"):
            jobs.submit(classify_spec(files, **LONG), here[2])
        started.append(jobs.submit(classify_spec(files, **LONG), elsewhere))
        started.append(jobs.submit(classify_spec(files, **LONG), signed_in))
        jobs.cancel(started[0], here[0])
        started.append(jobs.submit(classify_spec(files, **LONG), here[2]))  # a slot came free
        for job_id in started[1:]:
            jobs.cancel(job_id, Visitor(admin=True))


# --- the admin token ------------------------------------------------------------------------


def test_admin_lockout_after_wrong_tries():
    guard = AdminGuard(tries=3, window=60, total=100)
    right = "the-admin-token-0123456789"
    assert guard.check(right, right, "1.2.3.4")
    for _ in range(5):  # the same typo sent again (the jobs list refreshing) counts once
        assert not guard.check("typo", right, "1.2.3.4")
    assert not guard.check("guess-1", right, "1.2.3.4")
    assert not guard.check("guess-2", right, "1.2.3.4")  # the third different wrong token
    with pytest.raises(AdminLocked, match="locked"):
        guard.check(right, right, "1.2.3.4")  # locked: even the right token
    assert guard.check(right, right, "5.6.7.8")  # another address is not
    everyone = AdminGuard(tries=100, window=60, total=4)
    for i in range(4):
        everyone.check(f"guess-{i}", right, f"10.0.0.{i}")
    with pytest.raises(AdminLocked):
        everyone.check(right, right, "10.0.0.99")  # a spread-out guessing: everyone waits


# --- fair heavy queueing ----------------------------------------------------------------


def test_heavy_queue_is_round_robin_by_session():
    def ev(session, address="127.0.0.1"):
        return SimpleNamespace(session_hash=session, request=address)

    flood = [ev("bot") for _ in range(5)]
    visitor = ev("me")
    order = _fair_order([*flood, visitor], __import__("collections").Counter(), lambda e: e.request)
    assert order.index(visitor) == 1  # after the flood's first run, not its fifth
    busy = __import__("collections").Counter({"me": 1})  # my one run is running already
    assert _fair_order([flood[0], visitor], busy, lambda e: e.request)[0] is flood[0]


def test_refusals_log_one_line_per_kind_every_few_seconds(caplog):
    clock = [100.0]
    quiet = QuietLog(every=10, clock=lambda: clock[0])
    with caplog.at_level("WARNING", logger="gpt2lab"):
        said = [quiet.warn("busy jobs", "busy") for _ in range(50)]
        assert quiet.warn("per-session generate", "you already have 2 runs")  # another kind
        clock[0] += 10
        assert quiet.warn("busy jobs", "busy")
    assert said.count(True) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused a request: busy",
        "refused a request: you already have 2 runs",
        "refused a request: busy (and 49 more like it since the last line)",
    ]


# --- session state ---------------------------------------------------------------------------


def test_a_new_session_copies_no_block_configs():
    import gradio as gr
    from gradio.state_holder import SessionState

    with gr.Blocks() as demo:
        box = gr.Textbox("hello")
        gr.Number(3)
    light_sessions()
    light_sessions()  # idempotent
    session = SessionState(demo)
    assert session.config_values == {} and box._id in session.blocks_config.blocks
    session._update_value_in_config(box._id, "changed")  # its entry, made when it changes
    assert session.config_values[box._id]["props"]["value"] == "changed"
    assert [c["id"] for c in session.components] == [box._id]


def test_session_state_budget_drops_the_oldest_first():
    budget, dropped = StateBudget(100), []
    runs = [{"n": i} for i in range(4)]
    for run in runs:
        budget.keep(run, 40, dropped.append)
    assert [r["n"] for r in dropped] == [0, 1] and budget.total == 80
    budget.keep(runs[2], 70, dropped.append)  # a run that grew: counted again, not twice
    assert [r["n"] for r in dropped] == [0, 1, 3] and budget.total == 70


# --- errors: short, named ------------------------------------------------------------------


def test_a_long_bad_value_is_quoted_in_80_characters():
    huge = "A" * 5_000_000
    assert len(quote(huge)) < 120
    message = cap_message(f"Value: {huge!r} is not in the list of choices: ['a', 'b']")
    assert len(message) < 200 and message.count("A") == 80 and "5,000,000 characters" in message
    assert len(cap_message("x" * 10_000)) < 200  # unquoted, no spaces
    assert cap_message("a \ud800 b") == "a \\ud800 b"  # a lone surrogate cannot be sent as is


def test_wrong_types_and_surrogates_are_named():
    def fn(model_name, job_id):
        return model_name

    block_fn = SimpleNamespace(
        fn=fn, inputs=[gr.Dropdown(["starter"], label="Model"), gr.Textbox(label="")]
    )
    for bad, match in (
        ([["starter"], "j1"], "Model must be a single value, not a list"),
        ([{"a": 1}, "j1"], "Model must be a single value, not a dict"),
        (["starter", "j\udcff1"], "job_id contains a lone surrogate"),
        (["starter", ["j\ud800"]], "job_id"),
    ):
        with pytest.raises(gr.Error, match=match):
            check_payloads(block_fn, bad)
    check_payloads(block_fn, ["starter", "j1"])  # fine values pass


# --- the request-size limit ----------------------------------------------------------------


def _asgi(limit: BodyLimit, headers: list, chunks: list[bytes]):
    sent, read = [], [0]

    async def receive():
        if read[0] < len(chunks):
            read[0] += 1
            return {"type": "http.request", "body": chunks[read[0] - 1], "more_body": True}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "headers": headers}
    asyncio.run(limit(scope, receive, send))
    return sent, read[0]


def test_a_too_large_body_gets_413_before_it_is_read():
    called = []

    async def app(scope, receive, send):
        called.append(True)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limit = BodyLimit(app, json_bytes=1000)
    sent, read = _asgi(limit, [(b"content-length", b"20000000")], [b"x" * 100] * 5)
    assert sent[0]["status"] == 413 and read == 0 and not called  # not one byte read
    assert b"too large" in sent[1]["body"]
    sent, read = _asgi(limit, [], [b"x" * 400] * 10)  # streamed, no Content-Length
    assert sent[0]["status"] == 413 and len(sent) == 2 and read == 3  # cut off once over
    sent, _ = _asgi(limit, [(b"content-length", b"400")], [b"x" * 400])
    assert sent[0]["status"] == 200


# --- through the app's API ------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(demo, url, jobs folder) of the app in multi-user mode."""
    root = tmp_path_factory.mktemp("fair-app")
    from tests.test_app_api import start_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT2LAB_JOBS_DIR", str(root / "jobs"))
        mp.setenv("GPT2LAB_JOB_THREADS", "1")
        mp.setenv("GPT2LAB_MULTIUSER", "1")
        demo, url = start_app(root / "models")
        yield demo, url, root / "jobs"
        demo.close()


@pytest.mark.slow
def test_visitor_endpoint_issues_a_working_token_and_config_hides_the_key(served):
    from gradio_client import Client

    demo, url, jobs_dir = served
    client = Client(url, verbose=False)
    token = client.predict(api_name="/visitor")
    assert visitors.valid_token(token)
    table = client.predict(token, api_name="/jobs")  # the token is accepted
    assert "data" in table
    config = urllib.request.urlopen(url + "config", timeout=10).read().decode()
    key = (jobs_dir / visitors.KEY_FILE).read_text().strip()
    assert key not in config and bytes.fromhex(key).decode("latin-1") not in config
    assert not (jobs_dir / visitors.OLD_SECRET_FILE).exists()
    with pytest.raises(Exception, match="not issued by this server"):
        client.predict("20260101-000000-abcdef", token.split(".")[0], "", api_name="/cancel_job")


@pytest.mark.slow
def test_the_app_answers_413_without_reading_a_huge_body(served):
    _, url, _ = served
    host, port = url.split("//")[1].rstrip("/").split(":")
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100000000\r\n\r\n" + b"{" * 1000
        )
        answer = s.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413") and time.monotonic() - t0 < 2


def raw_call(url: str, api: str, data: list) -> str:
    """The SSE text of one call of `/api` with `data` sent as escaped JSON (lone surrogates
    too, which gradio_client cannot send)."""
    body = json.dumps({"data": data}).encode()
    post = urllib.request.Request(
        f"{url}gradio_api/call/{api}", body, {"Content-Type": "application/json"}
    )
    event_id = json.loads(urllib.request.urlopen(post, timeout=30).read())["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=60).read().decode()


@pytest.mark.slow
def test_the_app_names_bad_inputs_and_quotes_little(served, caplog):
    from gradio_client import Client

    _, url, _ = served
    client = Client(url, verbose=False)
    with pytest.raises(Exception) as e:
        client.predict("B" * 500_000, "x", api_name="/token_bytes")
    assert str(e.value).count("B") <= 81
    answer = raw_call(url, "tokenize", ["ab\ud800cd", False])  # a client that sends one
    assert "error" in answer and "lone surrogate" in answer and "codec" not in answer
    with pytest.raises(Exception, match="single value") as e:
        client.predict(["starter", "gpt2"], "hi", 0.8, 40, 0.95, 1.0, 5, 1, api_name="/generate")
    assert "Something went wrong" not in str(e.value)


@pytest.mark.slow
def test_one_session_cannot_queue_more_than_two_heavy_runs(served):
    from gradio_client import Client

    _, url, _ = served
    flood = Client(url, verbose=False)
    args = ("starter", "Once upon a time", 0.8, 40, 0.95, 1.0, 48, 1)
    jobs = [flood.submit(*args, api_name="/generate") for _ in range(8)]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=120)
            outcomes.append("ran")
        except Exception as e:  # noqa: BLE001
            outcomes.append(str(e))
    refused = [o for o in outcomes if "already have" in o]
    assert len(refused) >= 5 and outcomes.count("ran") >= 2, outcomes
    assert json.dumps(outcomes)  # every outcome is words


@pytest.mark.slow
def test_sessionless_api_calls_are_answered_without_copying_block_configs(served):
    """A plain `/gradio_api/call/jobs` (no session: each one a new session) is answered, and
    its session holds no copy of the app's block configs (`light_sessions`)."""
    demo, url, _ = served
    events = []
    for _ in range(3):
        post = urllib.request.Request(
            f"{url}gradio_api/call/jobs", json.dumps({"data": [""]}).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        event = json.loads(urllib.request.urlopen(post, timeout=30).read())["event_id"]
        stream = urllib.request.urlopen(f"{url}gradio_api/call/jobs/{event}", timeout=60)
        assert "event: complete" in stream.read().decode()
        events.append(event)
    sessions = [demo.state_holder.session_data[e] for e in events]  # each its own session
    assert all(len(s.config_values) < 5 for s in sessions)  # of the app's hundreds of blocks
