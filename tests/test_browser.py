"""The app in a real browser (Playwright driving Debian's /usr/bin/chromium): use every tab as a
person would and save a full-page screenshot of each as <tab>.png in test-artifacts/screenshots/
(git-ignored), or in docs/screenshots/ with GPT2LAB_REFRESH_SCREENSHOTS=1.

Install the browser with `scripts/install_browser.sh`; without it these tests are skipped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# The committed starter models (tests/test_starter.py checks they exist): real text in the
# screenshots, and small enough to keep these tests fast.
LM, SPAM, CHAT = "starter", "starter-spam", "starter-chat"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"{CHROMIUM} is missing: run scripts/install_browser.sh (apt chromium + fonts-liberation)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")

from tests.test_app_api import start_app  # noqa: E402

pytestmark = pytest.mark.slow  # the app in a real browser

# Screenshots go to test-artifacts/screenshots/ (git-ignored), so a test run leaves the checkout
# clean; GPT2LAB_REFRESH_SCREENSHOTS=1 writes the committed ones in docs/screenshots/ instead,
# and GPT2LAB_SCREENSHOTS=<folder> puts them anywhere else.
REFRESH = os.environ.get("GPT2LAB_REFRESH_SCREENSHOTS") == "1"
SHOTS = Path(
    os.environ.get("GPT2LAB_SCREENSHOTS")
    or Path(__file__).resolve().parents[1] / ("docs" if REFRESH else "test-artifacts") / "screenshots"
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def browser_page(url: str):
    """A headless Chromium page (fresh profile) on the app at `url`, once its first tab is up."""
    with sync_api.sync_playwright() as p, tempfile.TemporaryDirectory(prefix="pw-") as profile:
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        pg = ctx.new_page()
        pg.set_default_timeout(20_000)
        pg.goto(url, wait_until="load")
        pg.wait_for_selector("#tok-text textarea")
        yield pg
        ctx.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    demo, url = start_app(tmp_path_factory.mktemp("browser-models"))
    with browser_page(url) as pg:
        yield pg
    demo.close()


def settle(page) -> None:
    """Wait for Gradio's fades and Plotly's transitions to finish."""
    # Infinite animations (spinners of idle components) never end: wait for the finite ones.
    page.wait_for_function(
        "document.getAnimations().filter(a => a.playState === 'running'"
        " && a.effect && a.effect.getComputedTiming().iterations !== Infinity).length === 0",
        timeout=10_000,
    )
    page.wait_for_timeout(300)


def shot(page, name: str) -> None:
    settle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()


def pick_model(page, elem_id: str, name: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    page.get_by_role("option", name=name).first.click()


def test_tokenizer_tab(page):
    open_tab(page, "Tokenizer")
    text = page.locator("#tok-text textarea")
    text.fill("Hello world 🦜\n\tcafé")
    page.wait_for_function(
        "(document.querySelector('#tok-counts')?.innerText || '').includes('19 characters')"
    )
    assert page.locator("#tok-out .tok-group").count() >= 1  # the parrot spans several tokens
    assert "15496, 995" in page.locator("#tok-ids textarea").input_value()
    assert page.locator("#tok-ours-out .tok").count() > 0
    page.locator("#tok-index input").fill("1")
    page.locator("#tok-index input").press("Enter")
    page.wait_for_function(
        "(document.querySelector('#tok-bytes')?.innerText || '').includes('995')"
    )
    # every heading and the index, id and count are on one line each ("154 / 96" wrapped)
    assert page.evaluate(
        """() => [...document.querySelectorAll('#tok-bytes th, #tok-bytes td')]
            .filter((c, i) => c.tagName === 'TH' || [0, 1, 3].includes(i % 5))
            .map(c => { const r = document.createRange(); r.selectNodeContents(c);
                        return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; })
            .every(n => n === 1)"""
    )
    page.locator("#tok-word textarea, #tok-word input").first.fill(" lowest")
    page.wait_for_function(
        "(document.querySelector('#tok-merges')?.innerText || '').includes('step 1')"
    )
    text.fill("GPT-2 reads text as tokens, not letters! Emoji 🙂 and café take several bytes.")
    page.wait_for_function(
        "(document.querySelector('#tok-counts')?.innerText || '').includes('characters')"
    )
    shot(page, "tokenizer")


def test_attention_tab(page):
    open_tab(page, "Attention")
    pick_model(page, "att-model", LM)
    page.wait_for_selector("#att-heatmap .js-plotly-plot")
    page.locator("#att-layer input[type=range]").fill("1")
    page.locator("#att-layer input[type=range]").dispatch_event("pointerup")
    page.wait_for_function(
        "[...document.querySelectorAll('#att-heatmap .gtitle')]"
        ".some(t => t.textContent.includes('Layer 1'))"
    )
    titles = page.locator("#att-heatmap .gtitle").all_text_contents()
    assert any("head" in t for t in titles)
    xtitle = page.locator("#att-heatmap .xtitle").first.text_content()
    assert xtitle == "Key (attended-to token)"
    page.get_by_label("Renormalise").check()
    page.wait_for_function(
        "[...document.querySelectorAll('#att-heatmap .gtitle')]"
        ".some(t => t.textContent.includes('renormalised'))"
    )
    assert page.locator("#att-grid .js-plotly-plot").count() == 1
    assert "Where token" in page.locator("#att-bars .gtitle").first.text_content()
    shot(page, "attention")


def test_attention_text_follows_the_model_and_redraws_as_you_type(page):
    """The default text is the starter stories' for a starter model and English for a GPT-2
    tokenizer model; typing redraws (no button) and the token count follows; a text the visitor
    wrote stays when they pick another model."""
    from pages.common.texts import TEXTS
    from tests.test_app_api import LM as ENGLISH_MODEL

    open_tab(page, "Attention")
    text = page.locator("#att-text textarea")
    pick_model(page, "att-model", LM)
    page.wait_for_function(
        f"document.querySelector('#att-text textarea').value === {TEXTS['attention']['starter']!r}"
    )
    pick_model(page, "att-model", ENGLISH_MODEL)
    page.wait_for_function(
        f"document.querySelector('#att-text textarea').value === {TEXTS['attention']['english']!r}"
    )
    text.fill("")
    text.press_sequentially("One two three four five six seven", delay=20)
    page.wait_for_function(
        "(document.querySelector('#att-note')?.innerText || '').startsWith('7 tokens')",
        timeout=20_000,
    )
    pick_model(page, "att-model", LM)
    page.wait_for_timeout(1500)
    assert text.input_value() == "One two three four five six seven"


def test_generation_tab(page):
    open_tab(page, "Generate")
    pick_model(page, "gen-model", LM)
    page.locator("#gen-max input[type=range]").fill("120")
    page.locator("#gen-prompt textarea").fill("Once upon a time")
    # The page itself samples the output's length and the status line every 10 ms (a fast run
    # can grow between two polls from Python). The status may still say "stopped" from an
    # earlier test's run: the run counts from the first sample without it.
    page.evaluate(
        """() => { window.__hist = [];
        window.__poll = setInterval(() => window.__hist.push([
            document.querySelector('#gen-out textarea').value.length,
            document.querySelector('#gen-status')?.innerText || '']), 10); }"""
    )
    page.locator("#gen-run").click()
    page.wait_for_function(
        """() => { const h = window.__hist;
        const i = h.findIndex(x => !x[1].includes('stopped'));
        return i >= 0 && h.length - 1 > i && h[h.length - 1][1].includes('stopped'); }""",
        timeout=60_000,
    )
    hist = page.evaluate("() => { clearInterval(window.__poll); return window.__hist; }")
    start = next(i for i, (_, status) in enumerate(hist) if "stopped" not in status)
    lengths = {n for n, _ in hist[start:] if n > 0}
    assert len(lengths) >= 2, hist[start:]  # the text grew while streaming
    title = page.locator("#gen-chart .gtitle").first.text_content()
    assert title.startswith("Step ") and "chosen" in title
    shot(page, "generate")


# What the status line says when a run ends by itself (pages/generation.py): none after Stop.
FINISH_REASONS = ("<|endoftext|>", "max new tokens", "a stop string")


GREY_STOP = "!document.querySelector('#gen-stop').classList.contains('running')"


def test_a_refused_run_leaves_stop_grey(page):
    """A run refused before its first token (a flooding prompt) ends too: Stop turns grey again
    (Gradio runs `.then` only after a success)."""
    open_tab(page, "Generate")
    page.wait_for_function(GREY_STOP, timeout=30_000)  # the page-load run has ended
    prompt = page.locator("#gen-prompt textarea")
    prompt.fill("x" * 60_000)  # over 5 x the 10,000-character limit: refused
    page.locator("#gen-run").click()
    page.wait_for_function(
        "[...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('Prompt'))",
        timeout=30_000,
    )
    page.wait_for_function(GREY_STOP, timeout=5_000)
    assert page.evaluate("() => window.gptLabRuns") == 0
    prompt.fill("Pip the fox")


def test_generation_stop_button(page, monkeypatch):
    """Stop pressed 1 s into a 256-token run ends it within 1 s and says so. The model is slowed
    to about 70 tokens/s (the default model on a busy 2-core machine), so the run would last
    3-4 s; before the page coalesced its updates, such a Stop landed after 7.4 s (issue 21)."""
    import time

    from pages import generation

    real = generation.stream

    def slowed(*args, **kwargs):
        for event in real(*args, **kwargs):
            time.sleep(1 / 70)
            yield event

    monkeypatch.setattr(generation, "stream", slowed)  # the app runs in this process
    open_tab(page, "Generate")
    # the run the tab makes on page load has ended (its status then says why)
    page.wait_for_function(
        "(document.querySelector('#gen-status')?.innerText || '').includes('stopped:')",
        timeout=60_000,
    )
    page.wait_for_function(GREY_STOP)  # grey once nothing runs
    page.locator("#gen-max input[type=range]").fill("256")
    # With seed 0 the starter model writes 248 tokens here before <|endoftext|>.
    page.locator("#gen-prompt textarea").fill("Pip the fox")
    # The page itself presses Stop 1 s after this run's first token shows (its status says
    # "/ 256 tokens"), and notes when the status says it stopped: no round trip to Python, and
    # a click event on the button itself (Playwright's click() waits for the page to be still).
    page.evaluate(
        """() => { window.__first = null; window.__stopAt = null; window.__ended = null;
        window.__red = false;
        const t = setInterval(() => {
            const s = document.querySelector('#gen-status')?.innerText || '';
            const now = performance.now();
            if (window.__first === null) {
                if (s.includes('/ 256 tokens') && !s.includes('stopped')) window.__first = now;
                return; }
            const stop = document.querySelector('#gen-stop');
            if (window.__stopAt === null && now - window.__first >= 1000) {
                window.__red = stop.className;
                window.__stopAt = performance.now(); stop.click(); return; }
            if (window.__stopAt !== null && s.includes('stopped')) {
                window.__ended = now; window.__status = s; clearInterval(t); } }, 5); }"""
    )
    page.locator("#gen-run").click()
    page.wait_for_function("window.__ended !== null", timeout=60_000)
    took = page.evaluate("() => window.__ended - window.__stopAt")
    status = page.evaluate("() => window.__status")
    # It stopped because of Stop: not at <|endoftext|> or max new tokens, as a run that
    # Stop did not reach would.
    assert not any(reason in status for reason in FINISH_REASONS), status
    assert "stopped: you pressed Stop" in status, status
    assert took < 1000, f"Stop took {took:.0f} ms to end the run"
    red = page.evaluate("() => window.__red")
    assert "running" in red.split(), red  # red while the run streamed
    out = page.locator("#gen-out textarea")
    before = out.input_value()
    page.wait_for_timeout(500)  # no tokens land after the run said it stopped
    assert before and out.input_value() == before
    page.wait_for_function(GREY_STOP)  # grey again


def test_stop_stays_red_while_any_run_streams(page, monkeypatch):
    """The run the page makes on load and a clicked run overlap: when the first ends, Stop stays
    red while the second streams, and turns grey when it ends (Stop went grey mid-run before)."""
    import time

    from pages import generation

    real = generation.stream

    def slowed(*args, **kwargs):
        for event in real(*args, **kwargs):
            time.sleep(1 / 20)
            yield event

    monkeypatch.setattr(generation, "stream", slowed)
    page.reload(wait_until="load")
    page.wait_for_selector("#tok-text textarea")
    open_tab(page, "Generate")
    page.evaluate(
        """() => { window.__most = 0; window.__atDrop = null; let before = 0;
        const t = setInterval(() => {
            const n = window.gptLabRuns || 0;
            window.__most = Math.max(window.__most, n);
            if (before === 2 && n === 1) {
                window.__atDrop = document.querySelector('#gen-stop').className; clearInterval(t); }
            before = n; }, 2); }"""
    )
    page.wait_for_function("window.gptLabRuns === 1")  # the page-load run streams
    page.locator("#gen-max input[type=range]").fill("256")
    page.locator("#gen-run").click()
    page.wait_for_function("window.__atDrop !== null", timeout=60_000)
    assert page.evaluate("() => window.__most") == 2
    assert "running" in page.evaluate("() => window.__atDrop").split()  # still red
    page.locator("#gen-stop").click()
    page.wait_for_function(GREY_STOP)
    assert page.evaluate("() => window.gptLabRuns") == 0


def test_classify_tab(page):
    open_tab(page, "Spam classifier")
    pick_model(page, "clf-model", SPAM)
    # a message that turns into spam half-way: the trace shows the classifier change its mind
    text = (
        "Hi Sam, great news: you have won a free entry to our weekly prize draw, text WIN to 80086"
    )
    page.locator("#clf-text textarea").fill(text)
    page.locator("#clf-run").click()
    page.wait_for_function(
        "(document.querySelector('#clf-summary')?.innerText || '').includes('P(spam)')"
    )
    assert "P(spam) after each token" in page.locator("#clf-chart .gtitle").first.text_content()
    assert "Limit:" in page.locator("#clf-summary").inner_text()  # from starter-spam's card
    shot(page, "classify")


def chat_messages(page) -> int:
    return page.locator("#chat-bot .message").count()


def test_chat_tab(page):
    open_tab(page, "Chat")
    pick_model(page, "chat-model", CHAT)
    remember = page.locator("#chat-remember input[type=checkbox]")
    assert not remember.is_checked()  # starter-chat was trained on single turns
    box = page.locator("#chat-input textarea")
    placeholder = box.get_attribute("placeholder")
    assert placeholder
    # clicking an example sends it (not only fills the box)
    page.locator("#chat-bot button", has_text="Is a robin a mammal").first.click()
    page.wait_for_function(
        "document.querySelectorAll('#chat-bot .message').length >= 2", timeout=30_000
    )
    page.wait_for_function("!document.querySelector('#chat-input textarea').disabled")
    settle(page)
    assert box.get_attribute("placeholder") == placeholder  # still there after a message
    box.fill("Where does Pip the fox live?")
    box.press("Enter")
    page.wait_for_function(
        "document.querySelectorAll('#chat-bot .message').length >= 4", timeout=30_000
    )
    page.get_by_text("Prompt sent to the model").click()
    page.wait_for_function(
        # null-safe: the accordion's content may not be in the page yet right after the click
        "(document.querySelector('#chat-prompt')?.innerText || '')"
        ".includes('Where does Pip the fox live?')"
    )
    sent = page.locator("#chat-prompt").inner_text()
    assert "robin" not in sent and "### Input:" not in sent  # single-turn, as in training
    shot(page, "chat")


def test_a_refused_chat_message_is_answered_and_the_box_works_again(page):
    """Gradio's ChatInterface leaves its box disabled after an error; ours answers the refusal
    in the chat, and the next message is sent as usual (and never remembers the refused one)."""
    open_tab(page, "Chat")
    pick_model(page, "chat-model", CHAT)
    page.locator("#chat-new").click()
    page.wait_for_function("document.querySelectorAll('#chat-bot .message').length === 0")
    # over 5 x the 4,000-character limit: refused, not cut
    send(page, "x" * 25_000, "(document.querySelector('#chat-bot')?.innerText || '').includes('Not sent')")
    shown = page.locator("#chat-bot").inner_text()
    assert "the limit is 4,000" in shown and "… (25,000 characters)" in shown
    assert "x" * 501 not in shown  # the flood, cut
    page.wait_for_function("!document.querySelector('#chat-input textarea').disabled")
    send(page, "Where does Pip the fox live?",
         "document.querySelectorAll('#chat-bot .message').length >= 4")  # fmt: skip
    page.wait_for_function("!document.querySelector('#chat-input textarea').disabled")


def send(page, message: str, until: str) -> None:
    """Type `message` in the chat box, press Enter and wait until `until` (JS) holds."""
    box = page.locator("#chat-input textarea")
    box.fill(message)
    box.press("Enter")
    page.wait_for_function(until, timeout=30_000)


def test_chat_remember_and_new_chat(page):
    """Remembering sends the turns so far (the previous test's, without its refused one)."""
    open_tab(page, "Chat")
    page.locator("#chat-remember input[type=checkbox]").check()
    send(page, "And Otto the owl?",
         "(document.querySelector('#chat-prompt')?.innerText || '').includes('And Otto')")  # fmt: skip
    sent = page.locator("#chat-prompt").inner_text()
    assert "### Input:" in sent and "User: Where does Pip the fox live?" in sent
    assert "xxxx" not in sent and "Not sent" not in sent  # the refused turn is not remembered
    settle(page)
    page.locator("#chat-new").click()
    page.wait_for_function("document.querySelectorAll('#chat-bot .message').length === 0")
    send(page, "Where does Pip the fox live?",
         "document.querySelectorAll('#chat-bot .message').length >= 2")  # fmt: skip
    page.wait_for_function(
        "(document.querySelector('#chat-prompt')?.innerText || '').includes('Pip the fox')"
    )
    assert "### Input:" not in page.locator("#chat-prompt").inner_text()  # the chat is new
    page.locator("#chat-remember input[type=checkbox]").uncheck()


def test_model_card_follows_the_picker(page):
    open_tab(page, "Chat")
    page.locator("#chat-card-box").get_by_text("About this model").click()
    page.wait_for_function(
        "(document.querySelector('#chat-card')?.innerText || '').includes('starter-chat')"
    )
    card = page.locator("#chat-card").inner_text()
    assert "Held-out results" in card and "Limits" in card and "single-turn" in card
    shot(page, "chat-card")
    open_tab(page, "Generate")
    page.locator("#gen-card-box").get_by_text("About this model").click()
    pick_model(page, "gen-model", CHAT)
    page.wait_for_function(
        "(document.querySelector('#gen-card')?.innerText || '').includes('starter-chat')"
    )
    pick_model(page, "gen-model", LM)
    page.wait_for_function(
        "(document.querySelector('#gen-card')?.innerText || '').includes('invented valley')"
    )
