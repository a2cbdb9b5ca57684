"""The app's API through gradio_client: every endpoint with good and bad inputs.

One app per test session, launched in-process on a free port, its registry pointed at tiny
random-weight checkpoints made here (GPT2LAB_EXTRA_MODELS); GPT-2's weights are never needed.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

import gradio_client  # noqa: E402
import torch  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import gpt  # noqa: E402
from gpt.train.data import Instruction, format_prompt  # noqa: E402

pytestmark = pytest.mark.slow  # the app, launched in-process and driven through its API

TINY = gpt.GPTConfig(vocab_size=50257, block_size=256, n_layer=2, n_head=2, n_embd=32)
LM, SPAM, CHAT = "tiny-lm", "tiny-spam", "tiny-chat"
STORIES = Path(__file__).resolve().parents[1] / "data" / "corpus" / "stories.txt"


def make_checkpoints(root: Path) -> list[Path]:
    """Three tiny checkpoints (lm, classify, instruct) with GPT-2's tokenizer; their folders."""
    torch.manual_seed(0)
    lm = gpt.save_checkpoint(root / LM, gpt.GPT(TINY), tokenizer="gpt2")
    clf = gpt.GPTClassifier(gpt.GPT(TINY), 2, ("ham", "spam"))
    spam = gpt.save_checkpoint(
        root / SPAM,
        clf.gpt,
        task="classify",
        head={"num_classes": 2, "labels": ["ham", "spam"]},
        head_state=clf.head.state_dict(),
        tokenizer="gpt2",
    )
    chat = gpt.save_checkpoint(root / CHAT, gpt.GPT(TINY), task="instruct", tokenizer="gpt2")
    return [lm, spam, chat]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(tmp_root: Path):
    """Launch the app in-process on a free port; (demo, url)."""
    folders = make_checkpoints(tmp_root)
    os.environ["GPT2LAB_EXTRA_MODELS"] = os.pathsep.join(str(f) for f in folders)
    os.environ.setdefault("GPT2LAB_JOBS_DIR", str(tmp_root / "jobs"))  # never ./jobs in the repo
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import app

    demo = app.build_app()
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **app.LAUNCH_KWARGS,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    return demo, url


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    demo, url = start_app(tmp_path_factory.mktemp("app-models"))
    yield url
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    return gradio_client.Client(app_url, verbose=False)


def assert_alive(client) -> None:
    """After a bad input the app must keep answering."""
    out = client.predict("still alive", False, api_name="/tokenize")
    assert "tok-view" in out[0]


# --- tokenizer ------------------------------------------------------------------------------------


def test_tokenize_counts_and_ids(client):
    html, counts, ids, ours_html, ours_counts = client.predict(
        "Hello world", False, api_name="/tokenize"
    )
    assert ids == "15496, 995"
    assert "**2** tokens" in counts and "**11** characters" in counts
    assert "·" in html and "tok c0" in html
    assert "tok-view" in ours_html and "Ours" in ours_counts


def test_tokenize_groups_characters_split_across_tokens(client):
    html, counts, ids, _, _ = client.predict("🦜🦜", True, api_name="/tokenize")
    assert "tok-group" in html and "F0 9F" in html
    assert "<sub>" in html  # ids shown under tokens
    assert "**2** characters" in counts and "**8** bytes" in counts


@pytest.mark.parametrize("text", ["", "   \n\t", "🙂" * 500])
def test_tokenize_odd_text(client, text):
    html, counts, *_ = client.predict(text, False, api_name="/tokenize")
    assert "tok-view" in html and "tokens" in counts


def test_tokenize_rejects_1mb_text(client):
    with pytest.raises(AppError, match="limit is 20,000"):
        client.predict("a" * 1_000_000, False, api_name="/tokenize")
    assert_alive(client)


def test_token_bytes(client):
    out = client.predict("Hello world", 1, api_name="/token_bytes")
    assert "995" in out and "20 77 6F 72 6C 64" in out


def test_clamp_rejects_nan_and_clamps_huge():
    import gradio as gr

    from pages.common.inputs import clamp

    with pytest.raises(gr.Error, match="not a number"):
        clamp(math.nan, 0, 1, "Top-p")
    with pytest.raises(gr.Error, match="must be a number"):
        clamp("lots", 0, 1, "Top-p")
    assert clamp(1e300, 0, 256, "Max new tokens", integer=True) == 256


@pytest.mark.parametrize("index", [-5, 10_000, 1e300])
def test_token_bytes_bad_index(client, index):
    if index < 0:
        with pytest.raises(AppError, match="less than minimum value 0"):
            client.predict("Hello world", index, api_name="/token_bytes")
    else:
        out = client.predict("Hello world", index, api_name="/token_bytes")
        assert "of 2" in out  # clamped with a warning
    assert_alive(client)


def test_bpe_merges(client):
    html = client.predict(" lower", "GPT-2", api_name="/bpe_merges")
    assert "step 1" in html and "pair merged" in html
    assert "tok-table" in client.predict(" lower", "Ours", api_name="/bpe_merges")
    with pytest.raises(AppError, match="empty"):
        client.predict("", "GPT-2", api_name="/bpe_merges")


def test_train_bpe_on_text(client):
    text = STORIES.read_text(encoding="utf-8")[:20_000]
    summary, html = client.predict(text, None, 300, "the cat and the hat", api_name="/train_bpe")
    assert "Trained **300** tokens" in summary and "tok-view" in html


def test_train_bpe_keeps_the_merges_a_small_text_allows(client):
    from gpt.tokenizer import Tokenizer

    allowed = Tokenizer.train("abc abc", 8192, fewer_ok=True).n_vocab
    assert allowed < 8192
    summary, html = client.predict("abc abc", None, 8192, "x", api_name="/train_bpe")
    assert f"Trained **{allowed:,}** tokens ({allowed - 257:,} merges)" in summary
    assert f"this text allows only {allowed - 257:,}" in summary and "tok-view" in html


def test_train_bpe_bad_inputs(client, tmp_path):
    with pytest.raises(AppError, match="empty"):
        client.predict("", None, 1024, "x", api_name="/train_bpe")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(AppError, match="binary"):
        client.predict("", gradio_client.handle_file(str(binary)), 1024, "x", api_name="/train_bpe")
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * 600_000)  # 3 MB
    with pytest.raises(AppError, match="limit"):
        client.predict("", gradio_client.handle_file(str(big)), 1024, "x", api_name="/train_bpe")
    with pytest.raises(AppError, match="less than minimum"):
        client.predict("abab cdcd " * 300, None, -5, "abab", api_name="/train_bpe")
    assert_alive(client)


# --- attention ------------------------------------------------------------------------------------


def test_attention_figures(client):
    note, main, avg, grid, bars = client.predict(
        LM, "The cat sat on the mat.", 1, 1, "Show", -1, api_name="/attention"
    )
    assert "tokens (cap 256)" in note
    main_fig = main["plot"] if isinstance(main, dict) else main
    text = str(main_fig)
    assert "Key (attended-to token)" in text and "Query (attending token)" in text
    assert "Layer 1, head 1" in text
    assert "All heads: 2 layers × 2 heads" in str(grid)
    assert "Where token #6" in str(bars)


def test_attention_truncates_and_renormalises(client):
    note, main, *_ = client.predict(
        LM, "word " * 400, 0, 0, "Renormalise", 3, api_name="/attention"
    )
    assert "truncated" in note and "to its first 256 tokens" in note
    assert "renormalised" in str(main)


@pytest.mark.parametrize(
    "args, match",
    [
        (("no-such-model", "hi", 0, 0, "Show", -1), "not available"),
        ((SPAM, "hi", 0, 0, "Show", -1), "not available"),  # a classifier is not for this tab
        ((LM, "", 0, 0, "Show", -1), "empty"),
        ((LM, "a" * 1_000_000, 0, 0, "Show", -1), "limit is 20,000"),
    ],
)
def test_attention_bad_inputs(client, args, match):
    with pytest.raises(AppError, match=match):
        client.predict(*args, api_name="/attention")
    assert_alive(client)


def test_attention_clamps_layer_and_emoji(client):
    note, main, avg, grid, bars = client.predict(
        LM, "🙂🙃😀", 1, 1, "Hide", 1e9, api_name="/attention"
    )
    assert "Layer 1, head 1" in str(main) and "Where token #" in str(bars)  # index clamped
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(LM, "hi", 99, 0, "Show", -1, api_name="/attention")


# --- generation -----------------------------------------------------------------------------------


GEN = dict(temperature=0.8, top_k=40, top_p=0.95, rep=1.1, max_new=12, seed=0)


def gen_args(prompt="Once upon a time", model=LM, **over):
    a = {**GEN, **over}
    return (
        model,
        prompt,
        a["temperature"],
        a["top_k"],
        a["top_p"],
        a["rep"],
        a["max_new"],
        a["seed"],
    )


def test_generate_streams_and_updates_chart(client):
    job = client.submit(*gen_args(max_new=20), api_name="/generate")
    texts, charts = [], []
    for text, chart, _status in job:
        texts.append(text)
        if chart:
            charts.append(str(chart))
    assert job.status().success if hasattr(job.status(), "success") else True
    assert len(texts) >= 2
    assert all(len(a) <= len(b) for a, b in zip(texts, texts[1:]))  # grows
    assert any("Step 1:" in c for c in charts) and any("chosen" in c for c in charts)
    final = job.outputs()[-1]
    assert "stopped" in final[2]


def test_generate_greedy_is_deterministic(client):
    a = client.predict(*gen_args(temperature=0, seed=-1), api_name="/generate")
    b = client.predict(*gen_args(temperature=0, seed=5), api_name="/generate")
    assert a[0] == b[0]


def test_generate_enforces_max_new_tokens_server_side(client):
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(*gen_args(max_new=100_000), api_name="/generate")
    out = client.predict(*gen_args(max_new=3, top_p=1.0, top_k=0), api_name="/generate")
    assert out[2].startswith("3 / 3 tokens")


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(temperature=-1), "less than minimum"),
        (dict(top_p=0), "less than minimum"),
        (dict(rep=50), "greater than maximum"),
    ],
)
def test_generate_rejects_absurd_sliders(client, over, match):
    with pytest.raises(AppError, match=match):
        client.predict(*gen_args(**over), api_name="/generate")
    assert_alive(client)


def test_generate_odd_prompts(client):
    with pytest.raises(AppError, match="empty"):
        client.predict(*gen_args(prompt=""), api_name="/generate")
    with pytest.raises(AppError, match="limit is 10,000"):
        client.predict(*gen_args(prompt="x" * 1_000_000), api_name="/generate")
    out = client.predict(*gen_args(prompt="🙂🙂🙂", max_new=4), api_name="/generate")
    assert "tokens" in out[2]
    huge_seed = client.predict(*gen_args(seed=1e18, max_new=2), api_name="/generate")
    assert "2 / 2" in huge_seed[2]


def test_load_eight_concurrent_users(app_url):
    """8 users generating at once: all served, no errors (bench/bench_app.py times them)."""
    from concurrent.futures import ThreadPoolExecutor

    def one_user(i: int) -> str:
        c = gradio_client.Client(app_url, verbose=False)
        return c.predict(*gen_args(f"User {i} says", max_new=16, seed=i), api_name="/generate")[2]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one_user, range(8)))
    assert len(statuses) == 8
    assert all("16 / 16" in s or "stopped" in s for s in statuses), statuses


# --- spam classifier ------------------------------------------------------------------------------


def test_classify_label_and_trace(client):
    label, summary, chart = client.predict(SPAM, "WIN a FREE prize now!!!", api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"ham", "spam"}
    assert "P(spam)" in summary
    assert "P(spam) after each token" in str(chart)


@pytest.mark.parametrize(
    "model, text, match",
    [
        (SPAM, "", "empty"),
        (SPAM, "x" * 1_000_000, "limit is 5,000"),
        (LM, "hello", "not available"),  # a language model is not a classifier
    ],
)
def test_classify_bad_inputs(client, model, text, match):
    with pytest.raises(AppError, match=match):
        client.predict(model, text, api_name="/classify")
    assert_alive(client)


def test_classify_emoji_and_long_message(client):
    label, summary, _ = client.predict(SPAM, "🎉🎉🎉", api_name="/classify")
    assert label["label"] in ("ham", "spam")
    _, summary, _ = client.predict(SPAM, "free money " * 400, api_name="/classify")
    assert "Only the first 256" in summary


# --- chat -----------------------------------------------------------------------------------------


def test_chat_streams_reply_and_prompt(client):
    job = client.submit("Say hello.", CHAT, 0.8, 40, 0.9, 12, api_name="/chat")
    outs = list(job)
    assert outs, "no streamed output"
    reply, prompt = job.outputs()[-1]
    assert isinstance(reply, str) and reply
    assert "### Instruction:\nSay hello." in prompt and prompt.endswith("### Response:\n")


def test_chat_bad_inputs(client):
    with pytest.raises(AppError, match="empty"):
        client.predict("", CHAT, 0.8, 40, 0.9, 12, api_name="/chat")
    with pytest.raises(AppError, match="not available"):
        client.predict("hi", LM, 0.8, 40, 0.9, 12, api_name="/chat")
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict("hi", CHAT, 0.8, 40, 0.9, 10**6, api_name="/chat")
    assert_alive(client)


def test_chat_prompt_puts_history_in_input_only_when_remembering():
    from pages.chat import chat_prompt

    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    prompt = chat_prompt("And now?", history, remember=True)
    assert "### Instruction:\nAnd now?\n\n### Input:\nUser: Hi\nAssistant: Hello!\n\n" in prompt
    assert prompt.startswith("Below is an instruction") and prompt.endswith("### Response:\n")
    assert chat_prompt("And now?", history) == format_prompt(Instruction("And now?"))


def chat_turn(client, message: str, remember: bool | None) -> str:
    """One /chat call (greedy, 3 new tokens); the prompt it sent. None: the API's default."""
    args = [message, CHAT, 0, 40, 0.9, 3] + ([] if remember is None else [remember])
    reply, prompt = client.predict(*args, api_name="/chat")
    assert isinstance(reply, str)
    return prompt


@pytest.mark.parametrize("remember", [False, None])
def test_chat_api_sends_single_turn_prompts_unless_asked(app_url, remember):
    fresh = gradio_client.Client(app_url, verbose=False)  # its own conversation
    chat_turn(fresh, "Name a fox.", remember)
    second = chat_turn(fresh, "Where does Pip live?", remember)
    assert second == format_prompt(Instruction("Where does Pip live?"))


def test_chat_api_remember_then_new_chat(app_url):
    fresh = gradio_client.Client(app_url, verbose=False)
    chat_turn(fresh, "Name a fox.", True)
    second = chat_turn(fresh, "Where does Pip live?", True)
    assert "### Instruction:\nWhere does Pip live?\n\n### Input:\nUser: Name a fox.\n" in second
    assert "\nAssistant: " in second
    third = chat_turn(fresh, "And Otto?", True)
    assert "User: Name a fox." in third and "User: Where does Pip live?" in third
    fresh.predict(api_name="/new_chat")
    assert chat_turn(fresh, "And Otto?", True) == format_prompt(Instruction("And Otto?"))


def test_every_tab_with_a_model_picker_has_a_model_card(app_url):
    import json

    config = json.loads(urllib.request.urlopen(app_url + "config", timeout=10).read())
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    for card in ("att-card", "gen-card", "clf-card", "chat-card", "job-base-card"):
        assert card in ids, card
    assert "chat-remember" in ids and "chat-new" in ids


@pytest.mark.parametrize("model", [SPAM, "starter-spam"])
def test_classify_verdict_carries_the_cards_main_limit(client, model):
    from gpt.lab.cards import model_card

    if model not in gpt.lab.registry.default_registry().names():
        pytest.skip(f"{model} is not installed")
    _, summary, _ = client.predict(model, "WIN a prize now", api_name="/classify")
    limit = model_card(model).limits[0]  # starter-spam: from its card.json, whatever it says
    assert f"Limit: {limit}" in summary


@pytest.mark.parametrize("api_name", ["/gpt2_spam", "/gpt2_chat"])
def test_one_click_gpt2_buttons_offline_start_nothing(client, api_name):
    # the app under test runs with HF_HUB_OFFLINE=1: the buttons say so and submit no job
    line = client.predict(api_name=api_name)
    line = line[0] if isinstance(line, list | tuple) else line
    assert "needs the network" in line and "nothing was started" in line
    jobs = client.predict(api_name="/jobs")
    assert jobs["data"] == [] or jobs["data"] == [[""] * len(jobs["headers"])]


# --- every endpoint: real parameter names, a named error for a wrong type, caps said ------------


@pytest.mark.slow
def test_every_endpoint_parameter_has_a_real_name(client):
    import re

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/start_job" in api and "/attention" in api
    for name, endpoint in api.items():
        for p in endpoint["parameters"]:
            assert not re.fullmatch(r"param(eter)?_\d+", p["parameter_name"]), (name, p)
            if p["component"] not in ("State", "Browserstate"):  # no label: nothing shows them
                assert not re.fullmatch(r"parameter_\d+", p["label"]), (name, p)
    start = [p["parameter_name"] for p in api["/start_job"]["parameters"]]
    assert start[:10] == ["kind", "base", "data", "upload", "method", "epochs", "lr"] + [
        "batch_size",
        "max_steps",
        "eval_every",
    ]


@pytest.mark.slow
def test_the_public_api_is_the_one_recorded(client):
    """Every named endpoint and its parameters, as `tests/api_endpoints.json` records them: a
    restructuring keeps the API that scripts call; a change to it is made on purpose, there."""
    recorded = json.loads((Path(__file__).parent / "api_endpoints.json").read_text())
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    served = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in api.items()}
    assert sorted(served) == sorted(recorded), "endpoints added or removed"
    for name, params in recorded.items():
        assert served[name] == params, name


@pytest.mark.slow
@pytest.mark.parametrize(
    "api_name, args, match",
    [
        ("/token_bytes", ("Hello world", "abc"), "Token index must be a number, not 'abc'"),
        ("/train_bpe", ("abab " * 50, None, "abc", "x"), "Vocab size must be a number"),
        ("/attention", (LM, "hi", "abc", 0, "Show", -1), "Layer must be a number, not 'abc'"),
        (
            "/attention",
            (LM, "hi", 0, 0, "Sideways", -1),
            "First token: Value: .Sideways. .*not in the list of choices",
        ),
        ("/generate", gen_args(seed="abc"), "Seed must be a number, not 'abc'"),
        ("/generate", gen_args(temperature="hot"), "Temperature must be a number, not 'hot'"),
        ("/pipeline", ("abc", 0.8, 40, 0.95, 1.1), "Step must be a number, not 'abc'"),
        ("/chat", ("hi", CHAT, "abc", 40, 0.9, 8), "Temperature must be a number, not 'abc'"),
        (
            "/start_job",
            ("classify", SPAM, "bundled", None, "full", "abc", "5e-5", 8, 0, 50),
            "Epochs must be a number, not 'abc'",
        ),
        (
            "/start_job",
            ("sms", SPAM, "bundled", None, "full", 1, "5e-5", 8, 0, 50),
            "Kind: Value: sms is not in the list of choices",
        ),
    ],
)
def test_a_wrong_type_gets_a_message_naming_the_input(client, api_name, args, match):
    with pytest.raises(AppError, match=match):
        client.predict(*args, api_name=api_name)
    assert_alive(client)


@pytest.mark.slow
@pytest.mark.parametrize("index, said", [(500, "500"), (-2, "-2"), (1e308, "1e+308")])
def test_attention_says_when_the_token_to_inspect_is_clamped(client, index, said):
    note, *_, bars = client.predict(LM, "The cat sat.", 0, 0, "Show", index, api_name="/attention")
    last = int(note.split("**")[1]) - 1  # "**4** tokens (cap 256)."
    used = -1 if index < 0 else last
    assert (
        f"Token to inspect must be between -1 and {last}; used {used} instead of {said}: "
        "the last token." in note
    )
    assert f"Where token #{last}" in str(bars)
    note, *_ = client.predict(LM, "The cat sat.", 0, 0, "Show", -1, api_name="/attention")
    assert "Token to inspect" not in note  # -1 is the last token, no clamp


@pytest.mark.slow
def test_long_text_is_cut_with_a_word_counting_characters_not_utf16(client):
    _, counts, *_ = client.predict("a" * 25_000, False, api_name="/tokenize")
    assert "**20,000** characters" in counts
    assert "Text is 25,000 characters; the limit is 20,000, so only the first 20,000" in counts
    _, counts, *_ = client.predict("🙂" * 20_000, False, api_name="/tokenize")
    assert "**20,000** characters" in counts and "limit" not in counts  # 40,000 UTF-16 units
    note, *_ = client.predict(LM, "word " * 4_100, 0, 0, "Show", -1, api_name="/attention")
    assert "Text is 20,500 characters; the limit is 20,000" in note and "truncated" in note
    note, *_ = client.predict(LM, "word " * 4_100, "", api_name="/lens")
    assert "**Cut:** Text is 20,500 characters" in note and "**Capped:**" in note


@pytest.mark.slow
def test_generate_shows_the_seed_it_drew_and_that_seed_repeats_the_run(client):
    text, _, status = client.predict(*gen_args(seed=-1, max_new=8), api_name="/generate")
    drawn = int(status.split("seed ")[1].split(" ")[0])
    assert "(drawn for -1)" in status
    again, _, status = client.predict(*gen_args(seed=drawn, max_new=8), api_name="/generate")
    assert again == text and "seed" not in status


@pytest.mark.slow
def test_open_in_other_tabs_reaches_every_tabs_model_picker(app_url):
    """app.py hands the Fine-tune tab the pickers the other tabs' build() returned."""
    import json

    config = json.loads(urllib.request.urlopen(app_url + "config", timeout=10).read())
    elem = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "open_job_model")
    outputs = {elem[i] for i in dep["outputs"]}
    assert outputs == {
        "job-msg", "att-model", "gen-model", "clf-model", "chat-model", "ins-model", "walk-model"
    }
