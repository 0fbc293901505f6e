"""What the browser tests share: Debian's Chromium driven by Playwright, and
screenshots under test-artifacts/browser/."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
TIMEOUT_MS = 15_000


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test drives Debian's Chromium "
            "(`apt-get install chromium`; `python -m relay.devtools.devstack test` installs it)."
        )


class Browser:
    """Screenshots with readable, numbered names; fails on page errors and 5xx.

    ``folder``: a folder of test-artifacts/browser/ of this test's own, so that
    tests do not remove each other's screenshots.
    """

    def __init__(self, folder: str = "") -> None:
        self.count = 0
        self.problems: list[str] = []
        self.directory = ARTIFACTS / folder if folder else ARTIFACTS
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in self.directory.glob("*.png"):
            old.unlink()

    def watch(self, page: Page) -> Page:
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on(
            "response",
            lambda response: (
                response.status >= 500
                and self.problems.append(f"{response.status} from {response.url}")
            ),
        )
        return page

    def shot(self, page: Page, name: str) -> None:
        self.count += 1
        page.screenshot(path=self.directory / f"{self.count:02d}-{name}.png", full_page=True)


def sign_in(
    page: Page, base: str, username: str, password: str, *, heading: str = "Sign in"
) -> None:
    page.goto(f"{base}/accounts/login/")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    page.fill("#id_username", username)
    page.fill("#id_password", password)


def flash(page: Page, text: str) -> None:
    expect(page.locator("ul.messages")).to_contain_text(text)
