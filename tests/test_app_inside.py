"""The Inside tab's API (/lens, /surprisal, /ablate, /attribution, /compare) and the Generate
tab's /pipeline through gradio_client, checked against gpt.inside and gpt.sampling run here on the
same checkpoints. One in-process app for the module (tests/test_app_api.py's start_app)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")

import gradio_client  # noqa: E402
import torch  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from gpt import inside  # noqa: E402
from gpt.lab.registry import default_registry  # noqa: E402
from tests.test_app_api import CHAT, LM, SPAM, start_app  # noqa: E402

pytestmark = pytest.mark.slow  # the app, launched in-process

TEXT = "The cat sat on the mat because it was tired. Then the cat"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    demo, url = start_app(tmp_path_factory.mktemp("inside-models"))
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    return gradio_client.Client(app, verbose=False)


def files(paths) -> tuple[list[dict], dict]:
    """(CSV rows, JSON) of an export."""
    by_ext = {Path(p).suffix: Path(p) for p in paths}
    with by_ext[".csv"].open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads(by_ext[".json"].read_text(encoding="utf-8"))


def loaded(name: str):
    return default_registry().get(name)  # the very model object the app serves


def test_lens_numbers_match_the_core_and_the_figure_has_tokens_and_hover(client):
    note, heat, decide = client.predict(LM, TEXT, "", api_name="/lens")
    paths = client.predict(LM, TEXT, "", api_name="/lens_numbers")  # written when asked
    model, tok = loaded(LM)
    ids = tok.encode(TEXT)
    expected = inside.logit_lens(model, ids, k=5, fast=True)  # what the tab computes
    rows, data = files(paths)
    assert f"**{len(ids)}** tokens" in note
    assert len(rows) == (model.config.n_layer + 1) * len(ids)
    got = torch.tensor(data["top_probs"])
    torch.testing.assert_close(got, expected.top_probs, atol=1e-6, rtol=1e-5)
    assert data["top_ids"] == expected.top_ids.tolist()
    guess = int(expected.top_ids[-1, -1, 0])
    assert data["target"]["id"] == guess  # blank: follow the model's own guess
    assert float(rows[-1]["target_logprob"]) == pytest.approx(
        math.log(float(expected.top_probs[-1, -1, 0])), abs=1e-4
    )
    plot = heat["plot"]
    assert "Logit lens" in plot and "top 5 next tokens" in plot and '"texttemplate"' in plot
    assert "When does the model decide?" in decide["plot"]


def test_lens_follows_a_typed_token_and_caps_long_text(client):
    note, _, decide = client.predict(LM, TEXT, " elephant", api_name="/lens")
    _, data = files(client.predict(LM, TEXT, " elephant", api_name="/lens_numbers"))
    _, tok = loaded(LM)
    assert data["target"]["id"] == tok.encode(" elephant")[0]
    assert "elephant" in decide["plot"]
    if len(tok.encode(" elephant")) > 1:
        assert "following the first" in note
    note, *_ = client.predict(LM, "word " * 400, "", api_name="/lens")
    assert "**Capped:** read the first 256 of 401 tokens (the context of tiny-lm)" in note


def test_surprisal_perplexity_and_hover(client):
    view, summary = client.predict(LM, TEXT, api_name="/surprisal")
    paths = client.predict(LM, TEXT, api_name="/surprisal_numbers")
    model, tok = loaded(LM)
    ids = tok.encode(TEXT)
    s = inside.surprisal(model, ids)
    assert f"Perplexity **{math.exp(float(s.mean())):.2f}**" in summary
    rows, data = files(paths)
    assert len(rows) == len(ids) - 1
    torch.testing.assert_close(torch.tensor(data["surprisal"]), s, atol=1e-5, rtol=1e-5)
    assert [int(r["rank"]) for r in rows] == inside.predictions(model, ids).rank.tolist()
    assert "surprisal-view" in view and "rank " in view and "top 5:" in view


def test_ablate_changes_loss_as_the_core_does(client):
    note, nxt, loss = client.predict(LM, TEXT, "L0H1, l1h0", "mean", api_name="/ablate")
    paths = client.predict(LM, TEXT, "L0H1, l1h0", "mean", api_name="/ablate_numbers")
    model, tok = loaded(LM)
    ids = tok.encode(TEXT)
    expected = inside.ablate(model, ids, [(0, 1), (1, 0)], "mean")
    rows, data = files(paths)
    got = torch.tensor([float(r["loss_after"]) for r in rows])
    torch.testing.assert_close(got, expected.after.surprisal, atol=1e-5, rtol=1e-5)
    assert data["heads"] == {"0": [1], "1": [0]} and data["mode"] == "mean"
    assert "Heads L0H1, L1H0 replaced by their mean" in note
    assert "intact vs ablated" in nxt["plot"] and "Per-token loss change" in loss["plot"]


@pytest.mark.parametrize(
    "heads, match",
    [("", "Pick at least one head"), ("L9H0", "layer 9 is out of range"), ("X1", "not a head")],
)
def test_ablate_bad_heads(client, heads, match):
    with pytest.raises(AppError, match=match):
        client.predict(LM, TEXT, heads, "zero", api_name="/ablate")


def test_attribution_of_a_next_token_and_of_a_class(client):
    view, note = client.predict(LM, TEXT, "occlusion", "", api_name="/attribution")
    paths = client.predict(LM, TEXT, "occlusion", "", api_name="/attribution_numbers")
    model, tok = loaded(LM)
    ids = tok.encode(TEXT)
    expected = inside.occlusion(model, ids, measure="log_odds")
    _, data = files(paths)
    torch.testing.assert_close(torch.tensor(data["scores"]), expected.scores, atol=1e-6, rtol=1e-4)
    assert "Explaining the next token" in note and "attribution-view" in view
    args = (SPAM, "WIN a FREE prize now", "gradient", "spam")
    view, note = client.predict(*args, api_name="/attribution")
    paths = client.predict(*args, api_name="/attribution_numbers")
    clf, tok = loaded(SPAM)
    expected = inside.gradient_x_input(clf, tok.encode("WIN a FREE prize now"), target=1)
    _, data = files(paths)
    assert data["target"] == {"index": 1, "name": "spam"} and "P(spam)" in note
    torch.testing.assert_close(torch.tensor(data["scores"]), expected.scores, atol=1e-5, rtol=1e-3)
    with pytest.raises(AppError, match="'eggs' is not a class"):
        client.predict(SPAM, "hi there", "gradient", "eggs", api_name="/attribution")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(SPAM, "hi there", "lime", "", api_name="/attribution")


def test_compare_two_models(client):
    note, view, fig = client.predict(LM, CHAT, TEXT, api_name="/compare")
    paths = client.predict(LM, CHAT, TEXT, api_name="/compare_numbers")
    a, tok = loaded(LM)
    b, _ = loaded(CHAT)
    ids = tok.encode(TEXT)
    expected = inside.compare(a, b, ids, fast=True)
    rows, data = files(paths)
    got = torch.tensor([float(r["b_minus_a"]) for r in rows])
    torch.testing.assert_close(got, expected.diff, atol=1e-5, rtol=1e-4)
    assert f"Loss A ({LM})" in note and "compare-view" in view
    assert "B − A" in fig["plot"]
    if "starter" in default_registry().names():  # another tokenizer: refused with the reason
        with pytest.raises(AppError, match="do not share a tokenizer"):
            client.predict(LM, "starter", TEXT, api_name="/compare")


def test_numbers_are_written_when_asked_even_after_the_view_was_forgotten(client):
    """The numbers button after the kept numbers were evicted (or before any drawing): the view
    is computed again, and a bad input gets the view's own error."""
    from pages import inside as page

    page.kept.clear()
    rows, data = files(client.predict(LM, TEXT, api_name="/surprisal_numbers"))
    model, tok = loaded(LM)
    assert len(rows) == len(tok.encode(TEXT)) - 1 and data["model"] == LM
    with pytest.raises(AppError, match="Pick at least one head"):
        client.predict(LM, TEXT, "", "zero", api_name="/ablate_numbers")


def test_the_export_button_writes_the_numbers_of_the_view_shown(client):
    """The page's button exports the view on the page (its inputs when drawn), even after the
    text box changed and another text was drawn, or the numbers were forgotten."""
    import gradio as gr

    from pages import inside as page

    *_, key = page.lens(LM, TEXT, "")  # the chart on the page
    page.lens(LM, "Another text entirely, drawn since.", "")
    _, tok = loaded(LM)
    assert files(page.shown_numbers(key))[1]["ids"] == tok.encode(TEXT)
    page.kept.clear()
    assert files(page.shown_numbers(key))[1]["ids"] == tok.encode(TEXT)  # drawn again
    with pytest.raises(gr.Error, match="run the view first"):
        page.shown_numbers(None)


def test_pipeline_redraws_a_step_of_the_last_run_without_the_model(app):
    fresh = gradio_client.Client(app, verbose=False)  # its own session: no run yet
    with pytest.raises(AppError, match="Generate some text first"):
        fresh.predict(1, 0.8, 40, 0.95, 1.1, api_name="/pipeline")
    out = fresh.predict(LM, "Once upon a time", 0.8, 40, 0.95, 1.1, 6, 0, api_name="/generate")
    assert len(out) == 3  # the kept run is server-side state, not an API output
    fig, paths = fresh.predict(3, 0.5, 3, 1.0, 1.0, api_name="/pipeline")
    rows, data = files(paths)
    assert data["step"] == 3 and data["top_k"] == 3 and data["temperature"] == 0.5
    final = [float(r["final_prob"]) for r in rows]
    assert sum(p > 0 for p in final) == 3 and sum(final) == pytest.approx(1, abs=1e-5)
    raw = [float(r["raw_logit"]) for r in rows]
    scaled = [float(r["scaled"]) for r in rows]
    assert scaled == pytest.approx([x / 0.5 for x in raw], rel=1e-5)  # no repetition penalty
    assert sum(r["chosen"] == "True" for r in rows) == 1
    assert "Sampling pipeline at step 3" in fig["plot"] and "Top-k cut (k = 3)" in fig["plot"]
    fig, _ = fresh.predict(99, 0, 0, 1.0, 1.0, api_name="/pipeline")  # clamped to the last step
    assert "step 6" in fig["plot"] and "greedy: skipped" in fig["plot"]


def test_exports_of_the_older_charts(app):
    """The attention heatmaps' and the spam trace's numbers, as the tabs' download buttons give
    them (functions called directly: they are not API endpoints)."""
    from pages.attention import attention_numbers
    from pages.classify import trace_numbers

    rows, data = files(attention_numbers(LM, "The cat sat on the mat.", 1, 0))
    model, tok = loaded(LM)
    T = len(tok.encode("The cat sat on the mat."))
    assert len(rows) == T * (T + 1) // 2 and data["layer"] == 1 and data["head"] == 0
    ex = model.explain(torch.tensor([tok.encode("The cat sat on the mat.")]))
    torch.testing.assert_close(torch.tensor(data["weights"]), ex.attentions[1][0, 0])
    rows, data = files(trace_numbers(SPAM, "WIN a FREE prize now"))
    clf, tok = loaded(SPAM)
    expected = clf.trace(torch.tensor([tok.encode("WIN a FREE prize now")]))[:, 1]
    got = torch.tensor([float(r["P(spam)"]) for r in rows])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
