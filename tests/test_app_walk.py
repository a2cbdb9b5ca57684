"""The Walk tab's API (/walk, /walk_numbers, /knockout, /knockout_numbers) and the Inside tab's
/patch, through gradio_client, checked against gpt.walk and gpt.inside run here on the very
models the app serves. One in-process app for the module (tests/test_app_api.py's start_app)."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio_client")

import gradio_client  # noqa: E402
import torch  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from gpt import inside, walk  # noqa: E402
from gpt.lab.registry import default_registry  # noqa: E402
from tests.test_app_api import LM, SPAM, start_app  # noqa: E402
from tests.test_app_inside import files  # noqa: E402

pytestmark = pytest.mark.slow  # the app, launched in-process

TEXT = "The cat sat on the mat because it was tired. Then the cat"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    demo, url = start_app(tmp_path_factory.mktemp("walk-models"))
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    return gradio_client.Client(app, verbose=False)


def loaded(name: str):
    return default_registry().get(name)  # the very model object the app serves


def test_walk_step_numbers_match_the_core(client):
    model, tok = loaded(LM)
    ids = tok.encode(TEXT)
    tr = walk.trace(model, TEXT, tokenizer=tok)
    i = tr.find("softmax", block=1).index
    out = client.predict(
        model_name=LM, text=TEXT, step=i, token=3, head=1, api_name="/walk"
    )
    note, header, code, numbers, chart, why, path = out
    assert f"**{len(ids)}** tokens" in note and f"**{len(tr)}** steps" in note
    assert f"Step {i} of 0–{len(tr) - 1}" in header and "softmax" in header
    assert "gpt/model.py" in code and "<mark" in code  # the expression highlighted
    st = tr.steps[i].stats(3)
    assert f"{st.norm:.3g}" in numbers and "head 1 only" in numbers
    assert tr.steps[i].why.split(":")[0] in why and tr.steps[i].equation in why
    plot = chart["plot"]
    assert "head 1" in plot and "query token" in plot and "key token" in plot
    assert "residual norm" in path["plot"]
    _, data = files(
        client.predict(LM, TEXT, i, 3, 1, api_name="/walk_numbers")  # when asked
    )
    assert data["step"] == i and data["kind"] == "attn.softmax" and data["block"] == 1
    assert data["stats"]["norm"] == pytest.approx(st.norm, rel=1e-5)
    torch.testing.assert_close(torch.tensor(data["followed"]), tr.steps[i].row(3))
    assert data["source"]["text"] == tr.steps[i].source.text
    torch.testing.assert_close(torch.tensor(data["residual_norms"]), tr.residual_norms(3))


def test_moving_between_steps_does_not_run_the_model(client, monkeypatch):
    from pages import walk as page

    client.predict(LM, TEXT, 0, -1, 0, api_name="/walk")
    calls = []
    real = page.core.trace
    monkeypatch.setattr(page.core, "trace", lambda *a, **k: calls.append(1) or real(*a, **k))
    for i in (1, 8, 20, 30, 40):
        out = client.predict(LM, TEXT, i, -1, 0, api_name="/walk")
        assert f"Step {i} of" in out[1]
    assert calls == []  # every step drawn from the kept trace
    # the page's Next button: the same kept trace, by its key held per visitor
    *_, state = page.walk_page(LM, TEXT, 5, -1, 0)
    drawn = page.move(state, 5, -1, 0, by=1)
    assert "Step 6 of" in drawn[0] and drawn[-2] == 6 and calls == []
    jumped = page.move(state, 6, -1, 0, jump="1")
    model, _ = loaded(LM)
    assert jumped[-2] == walk.trace(model, TEXT, tokenizer=loaded(LM)[1]).block_start(1)


def test_walk_bad_inputs_get_named_messages(client):
    _, tok = loaded(LM)
    n = len(walk.trace(loaded(LM)[0], TEXT, tokenizer=tok))
    with pytest.raises(AppError, match=f"Step 999 is out of range: this trace has {n} steps"):
        client.predict(LM, TEXT, 999, -1, 0, api_name="/walk")
    with pytest.raises(AppError, match="Text is 12,000 characters; the limit is 2,000"):
        client.predict(LM, "a" * 12_000, 0, -1, 0, api_name="/walk")
    with pytest.raises(AppError, match="Text is empty"):
        client.predict(LM, "  ", 0, -1, 0, api_name="/walk")
    with pytest.raises(AppError, match="Step must be a number"):
        client.predict(LM, TEXT, "abc", -1, 0, api_name="/walk")
    note, *_ = client.predict(LM, "word " * 100, 0, 500, 7, api_name="/walk")
    assert "**Capped:** walked the first 64 of 101 tokens (the tab's cap)" in note
    assert "Token to follow must be between -64 and 63; used 63 instead of 500" in note
    assert "Head must be between 0 and 1; used 1 instead of 7" in note
    with pytest.raises(AppError, match="not available for this tab"):
        client.predict("no-such-model", TEXT, 0, -1, 0, api_name="/walk")


def test_walk_traces_a_classifier_to_its_head(client):
    note, header, *_ = client.predict(SPAM, "WIN a FREE prize now", 0, -1, 0, api_name="/walk")
    clf, tok = loaded(SPAM)
    tr = walk.trace(clf, "WIN a FREE prize now", tokenizer=tok)
    out = client.predict(SPAM, "WIN a FREE prize now", len(tr) - 1, -1, 0, api_name="/walk")
    assert "class probabilities" in out[1] and "spam" in out[4]["plot"]


def test_knockout_before_and_after_match_the_core(client):
    model, tok = loaded(LM)
    ids = tok.encode(TEXT)
    note, table, chart = client.predict(
        model_name=LM, text=TEXT, knockouts=["causal_mask", "gelu"], block=1,
        api_name="/knockout",
    )  # fmt: skip
    expected = walk.compare_knockouts(
        model, ids, [("causal_mask", {"block": 1}), ("gelu", {"block": 1})]
    )
    assert f"{expected.before.loss:.3f}" in table and f"{expected.after.loss:.3f}" in table
    assert "Without the mask each token also sees" in note and "(in block 1)" in note
    assert "Knocked out" in chart["plot"] and "probability" in chart["plot"]
    _, data = files(client.predict(LM, TEXT, ["causal_mask", "gelu"], 1, api_name="/knockout_numbers"))
    assert data["knocked_out"]["loss"] == pytest.approx(expected.after.loss, abs=1e-5)
    assert data["intact"]["top_ids"] == expected.before.top_ids.tolist()
    assert data["knocked_out"]["continuation_ids"] == expected.after.continuation
    note, table, _ = client.predict(LM, TEXT, ["shuffle", "positions"], -1, api_name="/knockout")
    assert "shuffled" in note and "Intact" in table


def test_knockout_bad_inputs(client):
    with pytest.raises(AppError, match="Tick at least one knockout"):
        client.predict(LM, TEXT, [], -1, api_name="/knockout")
    with pytest.raises(AppError, match="Block 9 is out of range"):
        client.predict(LM, TEXT, ["gelu"], 9, api_name="/knockout")
    with pytest.raises(AppError, match="Knockouts"):
        client.predict(LM, TEXT, ["lasers"], -1, api_name="/knockout")
    with pytest.raises(AppError, match="is a classifier"):
        client.predict(SPAM, TEXT, ["gelu"], -1, api_name="/knockout")
    with pytest.raises(AppError, match="at least 2 tokens"):
        client.predict(LM, "The", ["gelu"], -1, api_name="/knockout")


def test_patch_matches_the_core_and_exports(client):
    clean, corrupt = "The Eiffel Tower is in", "The Colosseum is in"
    note, fig = client.predict(
        model_name=LM, clean=clean, corrupt=corrupt, target="", api_name="/patch"
    )
    model, tok = loaded(LM)
    a, b = tok.encode(clean), tok.encode(corrupt)
    with torch.inference_mode():
        top = int(model(torch.tensor([a]))[0, -1].argmax())
    grid = inside.patch(model, a, b, top)
    rows, data = files(client.predict(LM, clean, corrupt, "", api_name="/patch_numbers"))
    assert data["target"]["id"] == top  # blank: the clean run's top token
    torch.testing.assert_close(torch.tensor(data["prob"]), grid, atol=1e-6, rtol=1e-5)
    assert len(rows) == grid.numel()
    assert data["p_clean"] == pytest.approx(float(grid[-1, -1]), abs=1e-6)
    span = data["p_clean"] - data["p_corrupt"]
    assert float(rows[-1]["restored"]) == pytest.approx(1.0 if abs(span) > 1e-6 else 0, abs=1e-4)
    plot = fig["plot"]
    assert "Activation patching" in plot and "restored" in plot and "P = " in plot
    assert f"**{len(a)}** tokens each" in note


def test_patch_bad_inputs(client):
    with pytest.raises(AppError, match="clean prompt is 7 tokens and the corrupted one 4"):
        client.predict(LM, "The Eiffel Tower is in", "Rome is in", "", api_name="/patch")
    with pytest.raises(AppError, match="Corrupted prompt is empty"):
        client.predict(LM, "The Eiffel Tower is in", "", "", api_name="/patch")
    long = " ".join(["word"] * 40)
    with pytest.raises(AppError, match="patching on tiny-lm reads at most 32"):
        client.predict(LM, long, long, "", api_name="/patch")
