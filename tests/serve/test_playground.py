"""The playground page in a real headless Chromium: type a review, get a label, probability
bars and highlighted tokens; the screenshot lands in docs/playground-test.png (not committed:
the README shows docs/playground.png, taken from a served quickstart model)."""

from __future__ import annotations

from tests.conftest import REPO
from tests.helpers import CHROMIUM_ARGS, chromium


def test_playground_predicts_and_highlights_tokens(service) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 760})
        page.goto(service["url"] + "/")
        page.fill("#key", service["key"])
        page.fill("#text", "a gorgeous witty film")
        page.click("#explain")
        page.wait_for_selector("#tokens .tok", timeout=30_000)

        assert page.text_content("#label") in ("negative", "positive")
        assert page.locator("#bars .bar").count() == 2
        tokens = page.eval_on_selector_all("#tokens .tok", "els => els.map(e => e.textContent)")
        assert tokens == ["a", "gorgeous", "witty", "film"]
        colours = page.eval_on_selector_all(
            "#tokens .tok", "els => els.map(e => getComputedStyle(e).backgroundColor)"
        )
        assert any(colour != "rgba(0, 0, 0, 0)" for colour in colours)
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "playground-test.png"), full_page=True)

        page.fill("#key", "wrong")
        page.click("#predict")
        page.wait_for_selector("#error:not([hidden])")
        assert "API key" in page.text_content("#error")
        browser.close()
