"""Redemption codes in a real browser (Playwright driving Debian's Chromium), in
Chinese: an operator makes a batch, copies the codes and downloads the CSV;
the tenant's owner redeems one and sees the balance move; the operator sees
who redeemed it. Screenshots go to test-artifacts/browser/codes/.
"""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect, sync_playwright

from billing import ledger
from tests.console.browser import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, Browser, require_chromium
from tests.console.browser import sign_in as browser_sign_in
from tests.helpers import STARTING_BALANCE_NANOS

OPERATOR_PASSWORD = "pw-sam-operator-123"
OWNER_PASSWORD = "pw-olivia-123"  # the conftest owner's


def sign_in(page, base: str, username: str, password: str) -> None:
    """The shared sign-in form, in Chinese, sent."""
    browser_sign_in(page, base, username, password, heading="登录")
    page.locator("main button[type=submit]").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


@pytest.mark.django_db(transaction=True)
def test_an_operator_makes_codes_in_chinese_and_an_owner_redeems_one(
    relay_server, owner, tenant, django_user_model, monkeypatch
):
    require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright
    django_user_model.objects.create_user("sam", password=OPERATOR_PASSWORD, is_staff=True)
    base = relay_server
    expect.set_options(timeout=TIMEOUT_MS)
    browser = Browser("codes")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            operator = chromium.new_context(
                locale="zh-CN", viewport={"width": 1280, "height": 900}, accept_downloads=True
            )
            operator.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            page = browser.watch(operator.new_page())
            sign_in(page, base, "sam", OPERATOR_PASSWORD)
            page.locator("header nav").get_by_role("link", name="兑换码").click()
            expect(page.get_by_role("heading", name="兑换码", exact=True)).to_be_visible()
            page.fill("#id_name", "春季活动")
            page.fill("#id_count", "3")
            page.fill("#id_value", "25")
            page.select_option("#id_tenant", "acme")
            browser.shot(page, "operator-new-batch")
            page.get_by_role("button", name="生成兑换码").click()

            expect(page.get_by_text("这些兑换码只显示这一次")).to_be_visible()
            expect(page.locator("#code-value")).to_have_text("25.00 美元")
            codes = page.locator("#codes").input_value().split("\n")
            assert len(codes) == 3
            page.get_by_role("button", name="复制全部兑换码").click()
            expect(page.get_by_text("已复制。")).to_be_visible()
            assert page.evaluate("navigator.clipboard.readText()").split("\n") == codes
            with page.expect_download() as download:
                page.get_by_role("link", name="下载 CSV").click()
            text = open(download.value.path(), encoding="utf-8-sig").read()
            rows = list(csv.reader(io.StringIO(text)))
            assert rows[0] == ["兑换码", "面值", "有效期至", "租户", "批次"]
            assert [row[0] for row in rows[1:]] == codes
            browser.shot(page, "operator-codes-shown-once")

            tenant_side = chromium.new_context(
                locale="zh-CN", viewport={"width": 1280, "height": 900}
            )
            owner_page = browser.watch(tenant_side.new_page())
            sign_in(owner_page, base, owner.username, OWNER_PASSWORD)
            owner_page.locator("header nav").get_by_role("link", name="兑换码充值").click()
            expect(owner_page.locator("#balance")).to_have_text("100.00 美元")
            owner_page.fill("#id_code", codes[1].lower())
            browser.shot(owner_page, "owner-redeem")
            owner_page.get_by_role("button", name="兑换", exact=True).click()
            expect(owner_page.locator("ul.messages")).to_contain_text(
                f"兑换码 …{codes[1][-4:]} 兑换成功：已充值 25.00 美元，当前余额 125.00 美元。"
            )
            expect(owner_page.locator("#balance")).to_have_text("125.00 美元")
            expect(owner_page.locator("#redeemed")).to_contain_text(f"…{codes[1][-4:]}")
            browser.shot(owner_page, "owner-redeemed")

            owner_page.fill("#id_code", codes[1])
            owner_page.get_by_role("button", name="兑换", exact=True).click()
            expect(owner_page.get_by_text("该兑换码已被兑换。")).to_be_visible()
            expect(owner_page.locator("#balance")).to_have_text("125.00 美元")
            browser.shot(owner_page, "owner-refused-twice")
            owner_page.locator("header nav").get_by_role("link", name="仪表盘").click()
            expect(owner_page.locator("#balance")).to_have_text("125.00 美元")

            page.get_by_role("link", name="返回兑换码").click()
            page.locator("#batches").get_by_role("link", name="#").first.click()
            row = page.locator("#codes tr", has_text=f"…{codes[1][-4:]}")
            expect(row).to_contain_text("已兑换")
            expect(row).to_contain_text("acme")
            browser.shot(page, "operator-batch-redeemed")
        finally:
            chromium.close()
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS + 25 * 10**9
    assert not browser.problems, browser.problems
