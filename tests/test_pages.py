"""The pages' shared helpers (`pages.common`) and the Fine-tune tab's view, without an app.

Every clamp and cut is said in one sentence, the sliders of Generate and Chat go through one
guard, a tab character's marker differs from a literal arrow, and the jobs list's refresh
returns one update per component it names.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio")
import gradio as gr  # noqa: E402

from gpt.jobs import JobError, JobManager, JobPolicy, NotOwnerError  # noqa: E402
from pages import chat, generation, jobs  # noqa: E402
from pages.common import inputs, render  # noqa: E402
from pages.common.inputs import (  # noqa: E402
    cap_text,
    clamp_note,
    job_errors,
    named_errors,
    sampling_args,
)
from pages.common.render import WHITESPACE, visible  # noqa: E402


@pytest.mark.parametrize(
    "value, lo, hi, used, said",
    [
        (999, 0, 36, 36, "Index must be between 0 and 36; used 36 instead of 999."),
        (-2, -1, 6, -1, "Index must be between -1 and 6; used -1 instead of -2."),
        (1e308, -1, 6, 6, "Index must be between -1 and 6; used 6 instead of 1e+308."),
        (3, 0, 36, 3, ""),
        ("4", 0, 36, 4, ""),
    ],
)
def test_clamp_note_says_what_it_used(value, lo, hi, used, said):
    assert clamp_note(value, lo, hi, "Index", integer=True) == (used, said)


@pytest.mark.parametrize("bad", ["abc", None, math.nan, [1]])
def test_clamp_note_names_the_setting_for_non_numbers(bad):
    with pytest.raises(gr.Error, match="Index"):
        clamp_note(bad, 0, 1, "Index")


def test_cap_text_counts_python_characters_and_says_what_was_cut():
    emoji = "🙂" * 20_000  # 40,000 UTF-16 units, 20,000 characters: all kept
    assert cap_text(emoji, 20_000) == (emoji, "")
    text, note = cap_text("a" * 25_000, 20_000)
    assert text == "a" * 20_000
    assert note == (
        "Text is 25,000 characters; the limit is 20,000, so only the first 20,000 were used."
    )
    text, note = cap_text("🙂" * 20_001, 20_000, "Prompt")
    assert len(text) == 20_000 and note.startswith("Prompt is 20,001 characters")
    with pytest.raises(gr.Error, match="limit is 20,000. Shorten it"):
        cap_text("a" * 1_000_000, 20_000)  # a flood is refused, not cut
    with pytest.raises(gr.Error, match="empty"):
        cap_text("  ", 10)


def test_one_sampling_guard_for_generate_and_chat():
    assert generation.sampling_args is chat.sampling_args is inputs.sampling_args
    args = sampling_args(0.001, 40, 0.9, 1.0, 10, -1)  # below MIN_TEMPERATURE, not greedy
    assert args.temperature == 0.01 and args.seed is None
    assert sampling_args(0, 40, 0.9).temperature == 0  # greedy stays greedy
    assert sampling_args(1, 999, 0.9, max_new_tokens=999, max_new_cap=256).top_k == 200
    assert sampling_args(1, 0, 0.9, max_new_tokens=999, max_new_cap=256).max_new_tokens == 256


def test_whitespace_markers_tell_a_tab_from_an_arrow():
    assert visible("a\tb→c d\n") == "a⇥b→c·d↵"
    assert len(set(WHITESPACE.values())) == len(WHITESPACE) and "→" not in WHITESPACE.values()
    from pages import tokenizer

    assert "⇥" in tokenizer.visible("\t") and "→" not in tokenizer.visible("\t")


def test_named_errors_name_the_input():
    seed = named_errors(gr.Number(label="Seed (-1 = random)", precision=0, minimum=-1))
    with pytest.raises(gr.Error, match=r"Seed must be a number, not 'abc'\."):
        seed.preprocess("abc")
    with pytest.raises(gr.Error, match="Seed: Value -5 is less than minimum value -1"):
        seed.preprocess(-5)
    with pytest.raises(gr.Error, match="Seed is not a number"):
        seed.preprocess(math.nan)
    assert seed.preprocess("7") == 7 and seed.preprocess(3.0) == 3
    kind = named_errors(gr.Dropdown(["lm", "classify"], label="Kind"))
    with pytest.raises(gr.Error, match="Kind: .*not in the list of choices"):
        kind.preprocess("abc")


def test_job_errors_map_both_kinds_of_job_error():
    succeeded = "Job j1 has succeeded; only queued or running"
    with pytest.raises(gr.Error, match=succeeded), job_errors(jobs.job_message):
        raise JobError("job j1 is succeeded; only queued or running jobs cancel")
    theirs = "another visitor.*Start your own job"
    with pytest.raises(gr.Error, match=theirs), job_errors(jobs.job_message):
        raise NotOwnerError("job j1 belongs to another visitor")


@pytest.mark.parametrize(
    "kind, said", [("lm", "a language-model job"), ("instruct", "an instruction job")]
)
def test_job_kinds_take_the_right_article(kind, said, tmp_path):
    assert jobs.a_job(kind) == said
    policy = JobPolicy(local_paths=False)  # the app's: only the models it lists
    manager = JobManager(tmp_path, policy=policy, background=False)
    with manager, pytest.raises(JobError, match=f"does not fit {said}"):
        manager.submit({"kind": kind, "base": "no-such-model"})


def jobs_view() -> jobs.JobsView:
    with gr.Blocks():
        return jobs.JobsView(
            gr.Markdown(),
            gr.Dataframe(),
            gr.Dropdown(),
            gr.Markdown(),
            gr.Plot(),
            gr.State(),
            gr.Timer(),
            gr.Code(),
        )


def test_refresh_returns_one_update_per_component_of_the_view(tmp_path):
    view = jobs_view()
    with JobManager(tmp_path / "jobs", background=False) as manager:
        updates = jobs.refresh(manager, view, None, None)
    assert list(updates) == view.outputs()  # every component, keyed by itself
    assert updates[view.seen] is None and updates[view.info] == ""
    assert updates[view.empty].visible is True and updates[view.table].visible is False


def test_job_buttons_are_enabled_only_for_a_job_the_viewer_may_change(tmp_path):
    from gpt.jobs import JobPolicy, Visitor
    from tests.test_disk_budget import fake_job

    with gr.Blocks():
        buttons = (gr.Button(), gr.Button(), gr.Button())
    view = jobs_view()
    view.commands = buttons
    a, b = Visitor("anon:" + "a" * 16), Visitor("anon:" + "b" * 16)
    policy = JobPolicy(multiuser=True)
    with JobManager(tmp_path / "jobs", policy=policy, background=False) as manager:
        fake_job(manager, "j1", "succeeded", a.owner, 10)
        for who, enabled in ((a, True), (b, False), (Visitor(b.owner, admin=True), True)):
            updates = jobs.refresh(manager, view, "j1", None, who)
            assert list(updates) == view.outputs()
            assert [updates[x].interactive for x in buttons] == [enabled] * 3


def test_open_in_tabs_says_when_a_job_does_not_exist(tmp_path):
    manager = JobManager(tmp_path / "jobs", background=False)
    with manager, pytest.raises(gr.Error, match="No job 'nope'"):
        jobs.open_in_tabs(manager, "nope", [])


@pytest.fixture
def model() -> str:
    """The Generate tab's default language model (a starter model when none is downloaded)."""
    from gpt.lab.registry import default_registry

    name = default_registry().default(generation.TASKS)
    if name is None:
        pytest.skip("no language model installed")
    return name


@pytest.fixture
def every_token(monkeypatch):
    """Generate updates the page on every token (not a few times a second): tests can count."""
    monkeypatch.setattr(generation, "TEXT_RATE", math.inf)


def test_stop_ends_the_run_after_the_current_token_and_says_so(model, every_token):
    request = SimpleNamespace(session_hash="stop-test")
    args = (model, "Once upon a time", 1.0, 0, 1.0, 1.0, 200, 3)
    outs = []
    for out in generation.generate(*args, request=request):
        outs.append(out)
        if len(outs) == 4:
            generation.request_stop(request)
    statuses = [o[2] for o in outs if isinstance(o[2], str)]
    assert len(outs) == 5  # the token after Stop was pressed is the last one
    assert statuses[-1].startswith("5 / 200 tokens") and statuses[-1].endswith(
        "stopped: you pressed Stop"
    )
    assert not any(reason in statuses[-1] for reason in generation.FINISH.values())
    assert generation._stops == {}  # nothing kept once the run ends


def test_inside_says_which_ticked_heads_a_new_model_lacks(monkeypatch):
    """Switching to a smaller model unticks the heads it does not have, and says so."""
    from pages import inside

    said = []
    monkeypatch.setattr(inside, "model_shape", lambda name: (2, 4))
    monkeypatch.setattr(inside, "announce", lambda note: said.append(note) or note)
    heads, _, text, *_ = inside.on_model_change("tiny-lm", ["L0H1", "L5H3", "L1H7"])
    assert heads.value == ["L0H1"] and text == "L0H1"
    assert said == ["tiny-lm has 2 layers of 4 heads: unticked L5H3, L1H7, which it does not have."]
    said.clear()
    inside.on_model_change("tiny-lm", ["L1H3"])
    assert said == []  # nothing dropped, nothing said


def test_stop_while_the_model_loads_ends_before_the_first_token(model, monkeypatch):
    """Stop pressed during the model's download or load: no token is sampled, and it says so."""
    request = SimpleNamespace(session_hash="stop-while-loading")
    real = generation.wait_model

    def loading(name, tasks):
        generation.request_stop(request)  # the person presses Stop while it loads
        return (yield from real(name, tasks))

    monkeypatch.setattr(generation, "wait_model", loading)
    args = (model, "Once upon a time", 1.0, 0, 1.0, 1.0, 50, 3)
    outs = list(generation.generate(*args, request=request))
    assert outs[-1][2] == "0 / 50 tokens · stopped: you pressed Stop"
    assert not any(isinstance(o[0], str) and o[0] for o in outs)  # no text was generated
    assert generation._stops == {}


def test_a_run_that_fails_before_its_first_token_leaves_no_stop_flag():
    request = SimpleNamespace(session_hash="fails-early")
    args = ("no-such-model", "Once upon a time", 1.0, 0, 1.0, 1.0, 50, 3)
    with pytest.raises(gr.Error, match="no-such-model"):
        list(generation.generate(*args, request=request))
    assert generation._stops == {}


def test_attention_says_when_a_new_model_lacks_the_layer_or_head(monkeypatch):
    from pages import attention

    said = []
    monkeypatch.setattr(attention, "model_shape", lambda name: (2, 4))
    monkeypatch.setattr(attention, "announce", lambda note: said.append(note) or note)
    layer, head, _ = attention.on_model_change("tiny-lm", 11, 3, "")
    assert (layer.value, head.value) == (1, 3)
    assert said == [
        "tiny-lm has 2 layers of 4 heads. Layer must be between 0 and 1; used 1 instead of 11."
    ]
    said.clear()
    attention.on_model_change("tiny-lm", 1, 2, "")
    assert said == []


def test_default_texts_follow_the_models_world_but_never_replace_the_visitors(monkeypatch):
    """A starter model gets a sentence from its stories, GPT-2 English; a text the visitor wrote
    stays whatever model they pick."""
    from pages import attention, generation
    from pages.common import texts

    monkeypatch.setattr(attention, "model_shape", lambda name: (2, 4))
    prompt, examples = generation.on_model_change("gpt2", texts.TEXTS["generate"]["starter"])
    assert prompt == texts.TEXTS["generate"]["english"]
    assert examples.raw_samples == texts.GENERATE_EXAMPLES["english"]
    assert prompt == examples.raw_samples[0][0]  # the prompt is the first example's
    assert generation.on_model_change("starter", "Hi")[0] == gr.skip()
    starter, english = texts.TEXTS["attention"]["starter"], texts.TEXTS["attention"]["english"]
    assert attention.on_model_change("starter", 0, 0, english)[2] == starter
    assert attention.on_model_change("gpt2", 0, 0, starter)[2] == english
    assert attention.on_model_change("gpt2", 0, 0, "")[2] == english  # an emptied box refills
    assert attention.on_model_change("starter", 0, 0, "My own words.")[2] == gr.skip()
    # the same world: no update, so none can overwrite what the visitor types meanwhile
    assert attention.on_model_change("starter-chat", 0, 0, starter)[2] == gr.skip()


def test_each_worlds_default_text_reads_as_the_model_expects():
    """The starter's default texts are far less surprising to the starter than GPT-2's English
    (perplexity 2,543 on "The cat sat on the mat ..."): every view then shows sensible guesses."""
    import math

    import torch

    from pages.common import texts
    from pages.common.models import get_model

    model, tok = get_model("starter", ("lm",))

    def perplexity(text: str) -> float:
        ids = torch.tensor([tok.encode(text)])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids)[0, :-1].float(), -1)
        return math.exp(-logp.gather(1, ids[0, 1:, None]).mean().item())

    for page, by_world in texts.TEXTS.items():
        ours, english = perplexity(by_world["starter"]), perplexity(by_world["english"])
        assert ours < 40 and ours * 2 < english, (page, ours, english)


def test_stop_ends_every_run_of_the_session(model, every_token):
    """The page-load run and a clicked run can overlap in one session: Stop ends both."""
    request = SimpleNamespace(session_hash="two-runs")
    args = (model, "Once upon a time", 1.0, 0, 1.0, 1.0, 200, 3)
    runs = [generation.generate(*args, request=request) for _ in range(2)]
    for run in runs:
        next(run)  # each has its first token
    generation.request_stop(request)
    for run in runs:
        statuses = [out[2] for out in run if isinstance(out[2], str)]
        assert statuses[-1].endswith("stopped: you pressed Stop")
    assert generation._stops == {}


def test_named_errors_survive_gradio_rebuilding_the_component():
    """After an event updates a component (a slider's maximum), Gradio keeps a new instance
    for the session, built from the original's arguments: its bad values are still named."""
    with gr.Blocks():
        step = inputs.slider_input(1, 256, value=1, step=1, label="Step", elem_id="t-step")
        plain = gr.Slider(1, 10, label="Plain", elem_id="t-plain")  # not registered
    # as Gradio does (`blocks.py`: `block.__class__(**kwargs)`)
    rebuilt = step.__class__(**{**step.constructor_args, "maximum": 5, "render": False})
    assert rebuilt is not step
    for component in (step, rebuilt):
        with pytest.raises(gr.Error, match="Step must be a number, not 'abc'"):
            component.preprocess("abc")
        assert component.preprocess(3) == 3
    with pytest.raises(Exception) as info:  # unregistered components behave as Gradio's own
        plain.preprocess("abc")
    assert "Plain" not in str(info.value)


def test_characters_split_across_tokens_show_their_bytes_not_a_replacement_mark():
    from gpt.lab.names import load_tokenizer
    from gpt.tokenizer import TokenizerError
    from pages.common.render import token_labels

    try:
        tok = load_tokenizer("gpt2")
    except TokenizerError:
        pytest.skip("GPT-2's vocabulary is not installed")
    ids = tok.encode("日本 café 🙂")
    shown = [render.token_text(tok, i) for i in ids]
    assert "\ufffd" not in "".join(shown)
    assert shown[:2] == ["‹E6\u202f97›", "‹A5›"]  # 日 is split over two tokens
    assert "é" in "".join(shown) and "🙂" in "".join(shown)  # whole characters stay as they are
    assert token_labels(tok, ids)[:2] == ["‹E6\u202f97›", "‹A5›"]


def test_generate_sends_a_few_updates_a_second_whatever_the_token_rate(model, monkeypatch):
    """A 256-token run: the text at most `TEXT_RATE` times a second, the candidates chart at most
    `CHART_RATE` times (plus the first and last of each), and the last update has it all."""
    import time

    from pages.common import pace

    real = generation.stream

    def slowed(*args, **kwargs):  # ~250 tokens/s whatever this machine does
        for event in real(*args, **kwargs):
            time.sleep(0.004)
            yield event

    monkeypatch.setattr(generation, "stream", slowed)
    request = SimpleNamespace(session_hash="pace-test")
    args = (model, "Once upon a time", 1.5, 0, 1.0, 1.0, 256, 3)
    start = time.monotonic()
    outs = list(generation.generate(*args, request=request))
    took = time.monotonic() - start
    charts = [o[1] for o in outs if not isinstance(o[1], dict)]  # gr.skip() is a dict update
    n = len(outs[-1][3]["tokens"])
    assert n > 60, n  # long enough that per-token updates would be many more
    assert 2 <= len(outs) <= pace.TEXT_RATE * took + 2, (len(outs), took, n)
    assert 2 <= len(charts) <= pace.CHART_RATE * took + 2, (len(charts), took)
    assert f"Step {n}:" in charts[-1].layout.title.text  # the last step, drawn at the end
    assert outs[-1][2].startswith(f"{n} / 256 tokens") and "stopped:" in outs[-1][2]


def test_the_step_slider_shows_any_steps_candidates(model, every_token, monkeypatch):
    monkeypatch.setattr(generation, "CHART_RATE", math.inf)  # the chart of every step drawn
    request = SimpleNamespace(session_hash="scrub-test")
    args = (model, "Once upon a time", 0.8, 40, 0.95, 1.1, 12, 0)
    outs = list(generation.generate(*args, request=request))
    run = outs[-1][3]
    for step in range(1, len(run["tokens"]) + 1):
        streamed, shown = outs[step - 1][1], generation.scrub(run, step)
        assert shown.layout.title.text == streamed.layout.title.text
        assert f"Step {step}:" in shown.layout.title.text
        assert [b.x for b in shown.data] == [b.x for b in streamed.data]
    assert "Step 1:" in generation.scrub(run, 0).layout.title.text  # out of range: clamped
    assert generation.scrub(None, 3) == gr.skip()  # before any run: nothing to show


def test_a_sampling_slider_redraws_at_a_step_the_run_has_without_a_warning(model, monkeypatch):
    """The step slider may still span an earlier, longer run when a sampling slider moves:
    the redraw uses the new run's last step and warns about nothing the visitor did not set."""
    request = SimpleNamespace(session_hash="quiet-test")
    run = list(generation.generate(model, "Once upon a time", 0.8, 40, 0.95, 1.1, 5, 0,
                                   request=request))[-1][3]  # fmt: skip
    warned = []
    monkeypatch.setattr(gr, "Warning", warned.append)
    fig, _ = generation.quiet_pipeline(run, 60, 0.5, 40, 0.95, 1.1)
    n = len(run["tokens"])
    assert f"at step {n}:" in fig.layout.title.text and warned == []


def test_the_first_view_uses_the_pages_own_settings(model):
    """Page load runs the default example with the sliders' values: 60 means 60 tokens."""
    example = generation.examples_for(model)[0]
    outs = list(generation.first_render(model, *example, request=None))
    status = outs[-1][2]
    assert status.startswith(f"{len(outs[-1][3]['tokens'])} / {example[5]} tokens"), status
    if "max new tokens" in status:
        assert len(outs[-1][3]["tokens"]) == example[5]


def test_every_generate_example_writes_words(model):
    """Each example prompt gives the default model something to continue (not just ".")."""
    for example in generation.examples_for(model):
        seed = 0 if example[6] == -1 else example[6]
        outs = list(generation.generate(model, *example[:6], seed, request=None))
        words = outs[-1][0].split()
        assert len(words) >= 8, (example[0], outs[-1][0])


def test_chat_streams_a_few_updates_a_second(monkeypatch):
    """A chat reply goes to the page a few times a second (`paced`), ending with the whole reply,
    the same as an unpaced run."""
    import time

    from gpt.sampling import SamplingConfig
    from pages.common import pace
    from pages.common.models import get_model

    try:
        model, tok = get_model("starter-chat", chat.TASKS)
    except gr.Error:
        pytest.skip("starter-chat is not installed")
    real = chat.stream

    def slowed(*args, **kwargs):
        for event in real(*args, **kwargs):
            time.sleep(0.01)
            yield event

    monkeypatch.setattr(chat, "stream", slowed)
    message = "Tell me a long story about Pip the fox."
    start = time.monotonic()
    outs = list(chat.chat(message, [], "starter-chat", 0, 0, 1.0, 120))
    took = time.monotonic() - start
    cfg = SamplingConfig(temperature=0, max_new_tokens=120, stop=chat.STOPS)
    events = list(real(model, tok, chat.chat_prompt(message), cfg=cfg))
    assert outs[-1][0] == "".join(e.text for e in events).strip()
    assert 1 <= len(outs) <= pace.TEXT_RATE * took + 2, (len(outs), took)
    assert len(outs) < len(events) / 2, (len(outs), len(events))  # not one per token


def test_the_tokenizer_takes_an_emptied_box_calmly(monkeypatch):
    """Clearing the text: no red error and no stale row of the old text in the byte view; a
    clamped index is said beside the table, not in a pop-up over the "Ours" column."""
    from pages import tokenizer

    popups = []
    monkeypatch.setattr(gr, "Warning", lambda note: popups.append(note))
    assert "Type some text" in tokenizer.token_bytes("", 3)
    views = tokenizer.tokenize("")
    assert "0** tokens" in views[1] or "**0**" in views[1], views[1]
    table = tokenizer.token_bytes("Hello world", 99)
    assert "| 1 of 2 |" in table and "⚠️ Token index" in table
    assert "⚠️" in tokenizer.tokenize("x " * tokenizer.MAX_CHARS)[1]  # the cut, said inline
    assert popups == []


def test_the_model_note_names_the_picked_model_not_only_the_default():
    """After picking a job's model the note no longer reads just "Default model: starter-spam.",
    which looked stale; picking the default keeps the plain note."""
    from pages.common.models import model_note

    tasks = ("classify",)
    default = model_note(tasks)
    assert default.startswith("Default model: **starter-spam**"), default
    assert model_note(tasks, "starter-spam") == default
    picked = model_note(tasks, "job:abc123")
    assert picked.startswith("Picked: **job:abc123**. The default is **starter-spam**"), picked


@pytest.mark.slow  # exports and loads with transformers: about 10 s
def test_a_finished_jobs_model_downloads_as_a_zip_transformers_loads(tmp_path):
    """The Fine-tune tab's download: a .zip of a Hugging Face folder; transformers gives the same
    spam probabilities as ours. Another visitor's job and an unfinished one are refused."""
    import shutil
    import zipfile

    import torch
    import transformers

    from gpt.jobs import JobPolicy, Visitor
    from gpt.lab.names import load_model, load_tokenizer
    from tests.test_disk_budget import fake_job

    a, b = Visitor("anon:" + "a" * 16), Visitor("anon:" + "b" * 16)
    with JobManager(tmp_path / "jobs", policy=JobPolicy(multiuser=True), background=False) as m:
        fake_job(m, "j1", "succeeded", a.owner, 10)
        model_dir = m.job_dir("j1") / "out" / "model"
        shutil.rmtree(model_dir)
        shutil.copytree("assets/models/starter-spam", model_dir)
        fake_job(m, "j2", "cancelled", a.owner, 10)  # no model: nothing to download
        path = jobs.download_model(m, "j1", a)
        with pytest.raises(gr.Error, match="another visitor's"):
            jobs.download_model(m, "j1", b)
        with pytest.raises(gr.Error, match="once it succeeds"):
            jobs.download_model(m, "j2", a)  # (a cancelled job kept no model)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "hf")
    assert {"config.json", "model.safetensors", "README.md"} <= names
    ours, tok = load_model("starter-spam"), load_tokenizer("starter-spam")
    theirs = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    ids = torch.tensor([tok.encode("WIN a FREE prize! Txt CLAIM to 81010 now")])
    with torch.no_grad():
        p_ours = torch.softmax(ours(ids).float(), -1)
        p_theirs = torch.softmax(theirs(ids).logits.float(), -1)
    torch.testing.assert_close(p_theirs, p_ours, atol=1e-5, rtol=1e-4)


def test_a_draw_the_page_started_gives_way_to_the_visitors_own(monkeypatch):
    """Inside's page-load draw of a view that ends after the visitor asked for the same view
    (their click came while it ran) changes nothing, so it cannot land over theirs; one that no
    click overtook is shown."""
    from pages import inside

    request = SimpleNamespace(session_hash="give-way")
    clicked = {"now": False}

    def slow_lens(*inputs):
        if clicked["now"]:
            inside.give_way.asked("lens")(request)  # the visitor's click arrives meanwhile
        return ("note", "heat", "decide", "key")

    monkeypatch.setitem(inside.VIEWS, "lens", slow_lens)
    draw = inside.first_draw("lens")
    assert draw("starter", "text", "", request=request) == ("note", "heat", "decide", "key")
    clicked["now"] = True
    assert draw("starter", "text", "", request=request) == tuple(gr.skip() for _ in range(4))
    other = SimpleNamespace(session_hash="someone-else")
    clicked["now"] = False
    assert draw("starter", "text", "", request=other)[0] == "note"  # per visitor
