"""The language switcher in a real browser (Playwright driving Debian's Chromium).

A tenant owner reads the console in English (the browser's language), switches
to 中文 and reads the same page in Chinese; signed out and in again the choice
holds, and it follows them to a browser that asks for English. Screenshots go
to test-artifacts/browser/languages/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from console.models import Profile
from tests.console.browser import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, Browser, require_chromium

PASSWORD = "pw-olivia-123"  # the conftest owner's


def sign_in(page, base: str, username: str, *, heading: str, button: str) -> None:
    page.goto(f"{base}/accounts/login/")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name=button).click()
    expect(page).to_have_url(f"{base}/console/")


@pytest.mark.django_db(transaction=True)
def test_the_switcher_changes_the_page_and_the_choice_follows_the_person(
    relay_server, owner, monkeypatch
):
    require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright
    base = relay_server
    expect.set_options(timeout=TIMEOUT_MS)
    browser = Browser("languages")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            first = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
            page = browser.watch(first.new_page())
            sign_in(page, base, owner.username, heading="Sign in", button="Sign in")
            nav = page.locator("header nav")
            expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
            expect(page.locator("html")).to_have_attribute("lang", "en")
            browser.shot(page, "dashboard-english")

            page.get_by_role("button", name="简体中文").click()
            expect(page).to_have_url(f"{base}/console/")
            expect(nav.get_by_role("link", name="仪表盘")).to_be_visible()
            expect(page.get_by_text("余额", exact=True)).to_be_visible()
            expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
            expect(page.get_by_role("button", name="简体中文")).to_have_attribute(
                "aria-pressed", "true"
            )
            browser.shot(page, "dashboard-chinese")
            assert Profile.objects.get(user=owner).language == "zh-hans"

            # Signed out: the sign-in page speaks the choice; signed in again, so does the console.
            page.get_by_role("button", name="退出登录").click()
            expect(page.get_by_role("heading", name="登录")).to_be_visible()
            browser.shot(page, "signed-out-chinese")
            sign_in(page, base, owner.username, heading="登录", button="登录")
            expect(nav.get_by_role("link", name="仪表盘")).to_be_visible()
            first.close()

            # Another browser, asking for English: the person's choice wins once signed in.
            second = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
            page = browser.watch(second.new_page())
            sign_in(page, base, owner.username, heading="Sign in", button="Sign in")
            nav = page.locator("header nav")
            expect(nav.get_by_role("link", name="仪表盘")).to_be_visible()
            browser.shot(page, "other-browser-chinese")
            page.get_by_role("link", name="令牌", exact=True).click()
            expect(page.get_by_role("heading", name="API 令牌")).to_be_visible()
            page.get_by_role("button", name="English").click()
            expect(page).to_have_url(f"{base}/console/keys/")
            expect(page.get_by_role("heading", name="API keys")).to_be_visible()
            browser.shot(page, "keys-english-again")
            second.close()
        finally:
            chromium.close()
    assert Profile.objects.get(user=owner).language == "en"
    assert not browser.problems, browser.problems
