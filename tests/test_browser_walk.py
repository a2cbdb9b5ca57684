"""The Walk tab (and the Inside tab's patching view) in a real browser (Playwright +
/usr/bin/chromium): step through a block with Next, jump, run a knockout; screenshots in
`test_browser.SHOTS` (test-artifacts/screenshots/, or docs/screenshots/ with
GPT2LAB_REFRESH_SCREENSHOTS=1)."""

from __future__ import annotations

import pytest

from tests import test_browser
from tests.test_browser import LM, SHOTS, open_tab, pick_model, settle, shot
from tests.test_browser_inside import element_shot, wait_text

page = test_browser.page  # the browser fixture: one app and one browser for this module

pytestmark = pytest.mark.slow


def header(page) -> str:
    return page.locator("#walk-header").inner_text()


def next_step(page, n: int) -> str:
    """Press Next and wait for step `n` on screen; its header."""
    page.locator("#walk-next").click()
    wait_text(page, "#walk-header", f"Step {n} of", timeout=20_000)
    return header(page)


def test_walk_through_a_block_and_a_knockout(page):
    open_tab(page, "Walk")
    pick_model(page, "walk-model", LM)  # the starter model: its own stories' world
    page.locator("#walk-run").click()
    wait_text(page, "#walk-note", "steps (4 blocks of 24)")
    wait_text(page, "#walk-header", "Step 0 of")
    assert "text → ids" in header(page) and "gpt/tokenizer.py" in page.locator("#walk-code").inner_text()
    names = []
    for n in range(1, 28):  # the embeddings, then all of block 0
        names.append(next_step(page, n))
        if "softmax" in names[-1]:
            page.wait_for_selector("#walk-chart .js-plotly-plot")
            title = page.locator("#walk-chart .gtitle").first.text_content()
            assert "softmax, block 0, head 0" in title and "grey" in title
            assert page.locator("#walk-code mark").count() == 1  # the expression highlighted
            element_shot(page, "#walk-chart", "walk-attention")
        if "GELU" in names[-1]:
            page.wait_for_function(
                "(document.querySelector('#walk-chart .gtitle')?.textContent || '')"
                ".includes('GELU, block 0')"
            )
            element_shot(page, "#walk-chart", "walk-gelu")
    seen = " ".join(names)
    for step in ("token embedding", "ln_1 mean", "q·kᵀ/√d", "causal mask", "weighted sum of v",
                 "c_fc", "GELU", "residual add"):  # fmt: skip
        assert step in seen, step
    assert "block 0" in names[-1] and "residual add" in names[-1]
    assert "norm" in page.locator("#walk-numbers").inner_text()
    assert "Why." in page.locator("#walk-why").inner_text()
    assert "residual norm" in page.locator("#walk-path .gtitle").first.text_content()
    page.locator("#walk-prev").click()
    wait_text(page, "#walk-header", "Step 26 of")
    # jump to block 2, then follow another token: its row is drawn
    page.locator("#walk-jump input").click()
    page.get_by_role("option", name="block 2").click()
    wait_text(page, "#walk-header", "Step 52 of")
    # the highlighted expression wraps inside the half-width code pane, never cut off
    mark = page.locator("#walk-code mark").bounding_box()
    pane = page.locator("#walk-code").bounding_box()
    assert mark["x"] + mark["width"] <= pane["x"] + pane["width"] + 1, (mark, pane)
    token = page.locator("#walk-token input")
    token.fill("5")
    token.press("Enter")
    wait_text(page, "#walk-header", "Following token 5")
    # an empty download box takes no room; it shows once it holds the step's numbers
    height = "document.querySelector('#walk-files').offsetHeight"
    assert page.evaluate(height) == 0
    page.locator("#walk-files-btn").click()  # this step's numbers
    page.wait_for_function("document.querySelectorAll('#walk-files a').length === 2")
    assert page.evaluate(height) > 0
    page.locator("#walk-header").scroll_into_view_if_needed()
    settle(page)
    shot(page, "walk")
    # a knockout: the causal mask is ticked by default
    page.locator("#walk-ko-run").click()
    wait_text(page, "#walk-ko-note", "Without the mask", timeout=60_000)
    table = page.locator("#walk-ko-table").inner_text()
    assert "Loss on the text" in table and "Greedy continuation" in table
    page.wait_for_selector("#walk-ko-chart .js-plotly-plot")
    element_shot(page, "#walk-ko-box", "walk-knockout")


def test_inside_patching_view(page):
    open_tab(page, "Inside")
    pick_model(page, "ins-model", LM)
    page.locator("#ins-patch-box").get_by_text("Activation patching", exact=True).first.click()
    page.locator("#ins-patch-run").click()
    wait_text(page, "#ins-patch-note", "after the clean prompt", timeout=60_000)
    page.wait_for_selector("#ins-patch .js-plotly-plot")
    title = page.locator("#ins-patch .gtitle").first.text_content()
    assert title.startswith("Activation patching")
    page.locator("#ins-patch-files-btn").click()
    page.wait_for_function("document.querySelectorAll('#ins-patch-files a').length === 2")
    SHOTS.mkdir(parents=True, exist_ok=True)
    element_shot(page, "#ins-patch-box", "walk-patch")
