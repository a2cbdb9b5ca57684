"""The Inside tab, the Generate tab's sampling pipeline and the Spam tab's attribution in a real
browser (Playwright + /usr/bin/chromium), with a screenshot of each view in `test_browser.SHOTS`
(test-artifacts/screenshots/, or docs/screenshots/ with GPT2LAB_REFRESH_SCREENSHOTS=1)."""

from __future__ import annotations

import pytest

from tests import test_browser
from tests.test_browser import CHAT, LM, SHOTS, SPAM, open_tab, pick_model, settle, shot

page = test_browser.page  # the browser fixture: one app and one browser for this module

pytestmark = pytest.mark.slow

TEXT = "Pip the fox lived in a den under the roots of the great oak. One night, Pip"


def element_shot(page, selector: str, name: str) -> None:
    """A screenshot of one view (an element), scrolled into sight."""
    settle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(selector).scroll_into_view_if_needed()
    page.locator(selector).screenshot(path=str(SHOTS / f"{name}.png"))


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def wait_text(page, selector: str, needle: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"(document.querySelector({selector!r})?.innerText || '').includes({needle!r})",
        timeout=timeout,
    )


def test_inside_lens_and_surprisal(page):
    open_tab(page, "Inside")
    pick_model(page, "ins-model", LM)
    page.locator("#ins-text textarea").fill(TEXT)
    page.locator("#ins-run").click()
    wait_text(page, "#ins-surprisal", "fox")  # this text's views, not the first render's
    page.wait_for_function(
        "(document.querySelector('#ins-lens')?.textContent || '').includes('fox')", timeout=60_000
    )
    page.wait_for_selector("#ins-lens .js-plotly-plot")
    title = page.locator("#ins-lens .gtitle").first.text_content()
    assert title.startswith("Logit lens")
    # each cell shows the top-1 token's text; the last row is the model's own guess
    assert page.locator("#ins-lens .heatmaplayer text, #ins-lens text.textpoint").count() > 0 or (
        "texttemplate" in page.content()
    )
    png = "#ins-lens .modebar-btn[data-title='Download plot as a PNG']"
    assert page.locator(png).count() == 1  # every chart saves itself as an image
    assert "When does the model decide" in page.locator("#ins-decide .gtitle").first.text_content()
    spans = page.locator("#ins-surprisal .surprisal-view .tok")
    assert spans.count() > 10
    assert "rank" in (spans.nth(3).get_attribute("title") or "")
    assert page.locator("#ins-lens-files a").count() == 0  # numbers are written when asked
    page.locator("#ins-lens-files-btn").click()
    page.wait_for_function("document.querySelectorAll('#ins-lens-files a').length === 2")
    page.locator("#ins-lens").scroll_into_view_if_needed()
    settle(page)
    drag = page.locator("#ins-lens .nsewdrag").first  # the plot area: hover a cell
    box = drag.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.3)
    page.wait_for_function(
        "(document.querySelector('#ins-lens .hoverlayer')?.textContent || '').includes('top 5')"
    )
    assert "1. " in page.locator("#ins-lens .hoverlayer").text_content()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#ins-lens").screenshot(path=str(SHOTS / "inside-lens-hover.png"))
    element_shot(page, "#ins-lens-box", "inside-lens")
    page.mouse.move(0, 0)
    element_shot(page, "#ins-surprisal-box", "inside-surprisal")
    shot(page, "inside")


def open_box(page, box: str, title: str) -> None:
    """Open a closed accordion (Inside opens only its first two views)."""
    if not page.locator(box).locator(".label-wrap.open").count():
        page.locator(box).get_by_text(title, exact=True).first.click()


def test_inside_head_ablation(page):
    open_tab(page, "Inside")
    open_box(page, "#ins-ablate-box", "Head ablation")
    grid = page.locator("#ins-heads")
    grid.get_by_label("L0H1", exact=True).check()
    grid.get_by_label("L1H2", exact=True).check()
    assert (
        "L0H1"
        in page.locator("#ins-heads-text input, #ins-heads-text textarea").first.input_value()
    )
    page.get_by_label("Mean over positions").check()
    page.locator("#ins-ablate-run").click()
    wait_text(page, "#ins-ablate-note", "replaced by their mean")
    assert "L0H1, L1H2" in text_of(page, "#ins-ablate-note")
    assert "intact vs ablated" in page.locator("#ins-ablate-next .gtitle").first.text_content()
    element_shot(page, "#ins-ablate-box", "inside-ablation")


def test_inside_attribution_and_compare(page):
    open_tab(page, "Inside")
    page.locator("#ins-attr-box").get_by_text("Which tokens pushed the prediction").click()
    page.locator("#ins-attr-run").click()
    wait_text(page, "#ins-attr-note", "Explaining the next token")
    assert page.locator("#ins-attr .attribution-view .tok").count() > 10
    element_shot(page, "#ins-attr-box", "inside-attribution")
    open_box(page, "#ins-compare-box", "Compare two models")
    pick_model(page, "ins-model-b", CHAT)
    page.locator("#ins-compare-run").click()
    wait_text(page, "#ins-compare-note", "Loss A")
    assert page.locator("#ins-compare .compare-view .tok").count() > 10
    page.wait_for_selector("#ins-compare-lens .js-plotly-plot")
    element_shot(page, "#ins-compare-box", "inside-compare")


def test_generate_sampling_pipeline_follows_the_sliders(page):
    open_tab(page, "Generate")
    pick_model(page, "gen-model", LM)
    page.locator("#gen-max input[type=range]").fill("20")
    page.locator("#gen-prompt textarea").fill("Pip the fox")
    page.locator("#gen-run").click()
    wait_text(page, "#gen-status", "stopped", timeout=60_000)
    page.wait_for_function(
        "[...document.querySelectorAll('#gen-pipeline .gtitle')]"
        ".some(t => t.textContent.includes('step 20'))"
    )
    step = page.locator("#gen-step input[type=range]")
    step.fill("5")
    step.dispatch_event("pointerup")
    page.wait_for_function(
        "[...document.querySelectorAll('#gen-pipeline .gtitle')]"
        ".some(t => t.textContent.includes('step 5'))"
    )
    topk = page.locator("#gen-topk input[type=range]")
    topk.fill("8")
    page.wait_for_function(  # the subplot titles follow the slider
        "(document.querySelector('#gen-pipeline')?.textContent || '').includes('(k = 8)')"
    )
    page.locator("#gen-temp input[type=range]").fill("2")  # flatter: every stage shows
    page.wait_for_function(
        "(document.querySelector('#gen-pipeline')?.textContent || '').includes('temperature 2')"
    )
    assert page.locator("#gen-run-files a").count() == 2  # the run's numbers: CSV + JSON
    output = page.locator("#gen-out textarea").input_value()
    assert output  # the run's text is untouched: the model did not run again
    element_shot(page, "#gen-pipe-box", "generate-pipeline")


def test_spam_attribution(page):
    open_tab(page, "Spam classifier")
    pick_model(page, "clf-model", SPAM)
    text = "Hi Sam, great news: you have won a free entry to our weekly prize draw, text WIN now"
    page.locator("#clf-text textarea").fill(text)
    page.locator("#clf-run").click()
    wait_text(page, "#clf-attr-note", "P(spam)")
    assert page.locator("#clf-attr .attribution-view .tok").count() > 10
    page.wait_for_function("document.querySelectorAll('#clf-trace-files a').length === 2")
    element_shot(page, "#clf-attr-box", "classify-attribution")


def toasts_saying(page, needle: str) -> int:
    """How many messages on screen say `needle` (Gradio groups same-kind pop-ups into one box,
    "Error (2)", with each message in it)."""
    return page.evaluate(
        "n => [...document.querySelectorAll('.toast-body')]"
        ".map(t => t.textContent.split(n).length - 1).reduce((a, b) => a + b, 0)",
        needle,
    )


def refuse(page, box: str, button: str | None, chars: int) -> str:
    """Type a flooding text of `chars` characters into `box` (and click `button`); wait until
    its refusal pops up and every listener of the click has ended. Returns the message's start."""
    needle = f"is {chars:,} characters"
    page.evaluate("() => document.querySelectorAll('.toast-close').forEach(b => b.click())")
    page.locator(f"{box} textarea").fill("x" * chars)
    if button:
        page.locator(button).click()
    page.wait_for_function(
        "n => [...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes(n))",
        arg=needle,
        timeout=30_000,
    )
    page.wait_for_timeout(2_000)  # the twin listener's error, had it popped up, is there now
    return needle


def test_a_refused_text_is_said_once_and_leaves_no_stale_view(page):
    """A flooding text gives one pop-up, not one per view the click draws (the Tokenizer's
    tokens and byte view, Inside's lens and surprisal), and the Spam tab's attribution of the
    previous message is cleared rather than shown beside the error as if it were this one's."""
    open_tab(page, "Tokenizer")
    assert toasts_saying(page, refuse(page, "#tok-text", None, 200_000)) == 1
    page.locator("#tok-text textarea").fill("Hello world")

    open_tab(page, "Inside")
    assert toasts_saying(page, refuse(page, "#ins-text", "#ins-run", 200_001)) == 1
    page.locator("#ins-text textarea").fill(TEXT)

    open_tab(page, "Spam classifier")
    pick_model(page, "clf-model", SPAM)
    page.locator("#clf-text textarea").fill("WIN a free prize now, text CLAIM to 80086")
    page.locator("#clf-run").click()
    wait_text(page, "#clf-attr-note", "P(spam)")
    assert page.locator("#clf-attr .attribution-view .tok").count() > 0
    page.wait_for_function("document.querySelectorAll('#clf-trace-files a').length === 2")
    assert toasts_saying(page, refuse(page, "#clf-text", "#clf-run", 30_000)) == 1
    wait_text(page, "#clf-attr-note", "Not drawn for this message")
    assert page.locator("#clf-attr .attribution-view .tok").count() == 0
    assert page.locator("#clf-trace-files a").count() == 0
    page.locator("#clf-text textarea").fill("see you at 8")
