"""Every page of both consoles on a 390 px wide phone (Playwright driving
Debian's Chromium), in English and in Chinese, over a realistic month of data
(and the answers to issuing a key, testing a channel and making redemption codes):
the page never scrolls sideways (wide tables scroll inside their own box).
Screenshots go to test-artifacts/browser/small-screens/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.console.browser import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, Browser, require_chromium
from tests.console.helpers import OPERATOR, OWNER, build_world

WIDTH = 390
# What sticks out past the right edge, outside a scrolling table box.
OVERFLOWING = """(width) => [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > width + 0.5 && !e.closest(".table-scroll"))
  .slice(0, 5).map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + (e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : "")
    + " " + Math.round(e.getBoundingClientRect().right))"""


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("main button[type=submit]").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


@pytest.mark.django_db(transaction=True)
def test_no_console_page_scrolls_sideways_on_a_390px_screen(
    relay_server, django_user_model, monkeypatch
):
    require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright
    world = build_world(django_user_model)
    base = relay_server
    expect.set_options(timeout=TIMEOUT_MS)
    browser = Browser("small-screens")
    too_wide = []
    measured = 0

    def measure(page, language: str, what: str, name: str) -> None:
        """How wide the page is; a screenshot; too wide, what overflows."""
        nonlocal measured
        width = page.evaluate("document.documentElement.scrollWidth")
        measured += 1
        browser.shot(page, f"{language[:2]}-{name}")
        if width > WIDTH:
            too_wide.append((language, what, width, page.evaluate(OVERFLOWING, WIDTH)))

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            for language in ("en-US", "zh-CN"):
                pages = {}
                for who, credentials in (
                    ("nobody", None),
                    ("owner", OWNER),
                    ("operator", OPERATOR),
                ):
                    context = chromium.new_context(
                        locale=language, viewport={"width": WIDTH, "height": 844}
                    )
                    page = browser.watch(context.new_page())
                    if credentials:
                        sign_in(page, base, *credentials)
                    pages[who] = page
                for who, url in world.pages:
                    page = pages[who]
                    page.goto(f"{base}{url}")
                    page.wait_for_load_state("load")
                    name = f"{who}-{url.strip('/').replace('/', '-') or 'home'}"
                    measure(page, language, url, name)
                # The page that shows a new key's secret (a POST's answer).
                owner = pages["owner"]
                owner.goto(f"{base}/console/keys/new/")
                owner.fill("#id_name", f"phone-{language}")
                owner.locator("form.stacked button[type=submit]").click()
                expect(owner.locator("#secret")).to_be_visible()
                measure(owner, language, "key created", "owner-key-created")
                # A channel test's answer (a POST's too); the upstream is unreachable here.
                operator = pages["operator"]
                operator.goto(f"{base}/operator/channels/{world.channel.pk}/")
                operator.locator("form[action$='/test/'] button[type=submit]").click()
                expect(operator.locator("#result")).to_be_visible()
                measure(operator, language, "channel test", "operator-channel-test")
                # The page that shows a new batch's redemption codes (a POST's answer).
                operator.goto(f"{base}/operator/codes/")
                operator.fill("#id_count", "12")
                operator.fill("#id_value", "9.99")
                operator.locator("#new-batch button[type=submit]").click()
                expect(operator.locator("#codes")).to_be_visible()
                measure(operator, language, "codes created", "operator-codes-created")
                for page in pages.values():
                    page.context.close()
        finally:
            chromium.close()
    assert measured == 2 * (len(world.pages) + 3)
    assert not too_wide, too_wide
    assert not browser.problems, browser.problems
