"""The playground and the API docs in a real headless Chromium: type a review, get a label,
probability bars and highlighted tokens, under a Content-Security-Policy that the page obeys
(no violation), the key kept in sessionStorage only; the docs load nothing from other sites.
The screenshot lands in docs/playground-test.png (not committed: the README shows
docs/playground.png, taken from a served quickstart model)."""

from __future__ import annotations

from tests.conftest import REPO
from tests.helpers import CHROMIUM_ARGS, chromium


def test_playground_predicts_and_highlights_tokens(service) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 760})
        violations = []
        page.on(
            "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
        )
        response = page.goto(service["url"] + "/")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
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
        stored = page.evaluate("[sessionStorage.getItem('hpo-api-key'), localStorage.length]")
        assert stored == [service["key"], 0]
        assert violations == []
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "playground-test.png"), full_page=True)

        page.fill("#key", "wrong")
        page.click("#predict")
        page.wait_for_selector("#error:not([hidden])")
        assert "API key" in page.text_content("#error")
        browser.close()


def test_the_api_docs_load_nothing_from_other_sites(service) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        hosts = set()
        page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
        response = page.goto(service["url"] + "/docs")
        page.get_by_text("/predict").first.wait_for(timeout=30_000)
        assert "content-security-policy" in response.headers
        assert hosts == {service["url"].split("/")[2]}
        browser.close()


def test_errors_that_are_not_json_show_their_status(service) -> None:
    """A proxy's HTML error page (here: the playground calling a path that answers HTML)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route(
            "**/predict",
            lambda route: route.fulfill(
                status=502, content_type="text/html", body="<html>Bad Gateway</html>"
            ),
        )
        page.goto(service["url"] + "/")
        page.fill("#key", service["key"])
        page.fill("#text", "fine")
        page.click("#predict")
        page.wait_for_selector("#error:not([hidden])")
        assert page.text_content("#error").startswith("502")
        browser.close()
