"""One end-to-end story in a real browser (Playwright driving Debian's Chromium).

An operator signs in, creates a tenant, prices a model, creates a group and a
channel that serves it, opens the group to the tenant and tops it up, all
through the operator console. The tenant's owner then signs in, issues a key
in that group and copies its secret with the Copy button. A request made with
the key is served by the live relay, and once the worker has written it down
it shows in the tenant's Usage page and in the operator's Reports.

Each page visited is saved as a screenshot under test-artifacts/browser/.
"""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, Tenant
from billing.models import DailyUsage, UsageRecord
from console.formatting import money, thousands
from tests.console.browser import (
    CHROMIUM,
    LAUNCH_ARGS,
    TIMEOUT_MS,
    Browser,
    flash,
    require_chromium,
    sign_in,
)
from tests.helpers import SMALL, uses_live_relay, wait_until

OPERATOR = ("opal", "pw-opal-operator-123")
OWNER = ("tess", "pw-tess-owner-123")
TENANT_SLUG, TENANT_NAME = "initech", "Initech"
GROUP = "standard"
CHANNEL = "fake-openai"


@uses_live_relay
def test_operator_sets_up_a_tenant_whose_owner_issues_a_key_that_is_used_and_billed(
    relay_server, fake_upstream, django_user_model, monkeypatch
):
    require_chromium()
    django_user_model.objects.create_user(
        OPERATOR[0], password=OPERATOR[1], is_staff=True, is_superuser=True
    )
    # Playwright's sync API runs its event loop in this thread, so Django would
    # refuse the ORM calls below as made from async code; they are plain sync calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = relay_server
    expect.set_options(timeout=TIMEOUT_MS)
    browser = Browser()

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            # --- 1. The operator sets the tenant up --------------------------------
            operator_context = chromium.new_context(viewport={"width": 1280, "height": 900})
            op = browser.watch(operator_context.new_page())
            sign_in(op, base, *OPERATOR)
            browser.shot(op, "operator-login")
            op.get_by_role("button", name="Sign in").click()
            expect(op).to_have_url(f"{base}/operator/")
            expect(op.get_by_role("heading", name="Overview")).to_be_visible()
            browser.shot(op, "operator-overview")

            # A tenant.
            op.get_by_role("link", name="Tenants", exact=True).click()
            expect(op.get_by_role("heading", name="Tenants")).to_be_visible()
            browser.shot(op, "tenants")
            op.get_by_role("link", name="New tenant").click()
            op.fill("#id_name", TENANT_NAME)
            op.fill("#id_slug", TENANT_SLUG)
            browser.shot(op, "tenant-new")
            op.get_by_role("button", name="Save").click()
            flash(op, f"Tenant {TENANT_SLUG} created.")
            expect(op.get_by_role("heading", level=1)).to_contain_text(TENANT_NAME)
            tenant_url = op.url
            assert re.fullmatch(rf"{re.escape(base)}/operator/tenants/\d+/", tenant_url)

            # The base price of the model, then a group that lists it at that price.
            op.get_by_role("link", name="Groups & prices").click()
            op.get_by_role("link", name="Base prices").click()
            op.fill("#id_model", SMALL)
            op.fill("#id_price", "0.02")
            op.get_by_role("button", name="Save").click()
            flash(op, f"Base price of {SMALL} saved.")
            expect(op.locator("table tbody tr", has_text=SMALL)).to_contain_text("0.02 USD")
            browser.shot(op, "base-prices")

            op.get_by_role("link", name="Groups & prices").click()
            op.get_by_role("link", name="New group").click()
            op.fill("#id_name", GROUP)
            op.fill("#id_description", "Everyday embeddings")
            op.fill("input[name='models-0-model']", SMALL)  # price blank: the base price
            op.get_by_role("button", name="Save").click()
            flash(op, f"Group {GROUP} saved.")
            billed = op.locator(".card", has_text="What its keys are billed")
            expect(billed.locator("tr", has_text=SMALL)).to_contain_text("0.02 USD")
            browser.shot(op, "group-created")

            # A channel to the fake upstream that serves the group; the Test button proves it.
            op.get_by_role("link", name="Channels", exact=True).click()
            op.get_by_role("link", name="New channel").click()
            op.fill("#id_name", CHANNEL)
            op.select_option("#id_kind", "openai")
            op.fill("#id_base_url", fake_upstream.base_url())
            op.fill("#id_credential", "sk-upstream-browser-test-0001")
            op.get_by_role("checkbox", name=GROUP, exact=True).check()
            op.fill("input[name='models-0-model']", SMALL)
            browser.shot(op, "channel-new")
            op.get_by_role("button", name="Save").click()
            flash(op, f"Channel {CHANNEL} saved.")
            expect(op.locator("dt:has-text('Credential') + dd")).to_have_text("set")
            op.get_by_role("button", name="Test", exact=True).click()
            expect(op.locator("#result")).to_contain_text("Success")
            browser.shot(op, "channel-test")
            op.get_by_role("link", name="Channels", exact=True).click()
            expect(op.locator("tr", has_text=CHANNEL)).to_contain_text(GROUP)
            browser.shot(op, "channels")

            # The tenant may issue keys in the group, and gets money to spend.
            op.goto(tenant_url)
            op.get_by_role("link", name="Edit").click()
            op.get_by_role("checkbox", name=GROUP, exact=True).check()
            op.get_by_role("button", name="Save").click()
            flash(op, "Saved (groups).")
            op.locator("#balance-form").get_by_label("Kind").select_option("topup")
            op.locator("#balance-form").get_by_label("Amount").fill("25")
            op.locator("#balance-form").get_by_label("Reason").fill("Wire transfer 2024-117")
            op.get_by_role("button", name="Post to the ledger").click()
            flash(op, "Balance updated.")
            expect(op.locator("#balance")).to_have_text("25.00 USD")
            expect(op.get_by_role("link", name=GROUP, exact=True)).to_be_visible()
            browser.shot(op, "tenant-topped-up")

            # --- 2. The tenant's owner issues a key and copies it ---------------------
            # The operator console has no member management: the owner is set up here.
            tenant = Tenant.objects.get(slug=TENANT_SLUG)
            owner = django_user_model.objects.create_user(OWNER[0], password=OWNER[1])
            Membership.objects.create(tenant=tenant, user=owner, role=Membership.Role.OWNER)

            owner_context = chromium.new_context(viewport={"width": 1280, "height": 900})
            owner_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            tp = browser.watch(owner_context.new_page())
            sign_in(tp, base, *OWNER)
            browser.shot(tp, "owner-login")
            tp.get_by_role("button", name="Sign in").click()
            expect(tp).to_have_url(f"{base}/console/")
            expect(tp.locator("#balance")).to_have_text("25.00 USD")
            browser.shot(tp, "console-dashboard")

            tp.get_by_role("link", name="Keys", exact=True).click()
            expect(tp.get_by_text("No keys yet.")).to_be_visible()
            tp.get_by_role("link", name="Issue a key").first.click()
            tp.fill("#id_name", "production")
            tp.select_option("#id_group", label=GROUP)
            browser.shot(tp, "key-issue")
            tp.get_by_role("button", name="Issue key").click()
            expect(tp.get_by_role("heading", level=1)).to_have_text("Key “production” created")
            shown = tp.input_value("#secret")
            assert shown.startswith("sk-"), shown
            tp.click("#copy-secret")
            expect(tp.locator("#copy-status")).to_have_text("Copied.")
            copied = tp.evaluate("navigator.clipboard.readText()")
            assert copied == shown
            browser.shot(tp, "key-created")

            tp.get_by_role("link", name="Keys", exact=True).click()
            tp.reload()
            row = tp.locator("tbody tr", has_text="production")
            expect(row).to_contain_text(GROUP)
            expect(row).to_contain_text("active")
            assert shown not in tp.content()
            browser.shot(tp, "keys-list")

            # --- 3. The key is used; the request is billed and reported ---------------
            with httpx.Client(base_url=base, timeout=30) as client:
                response = client.post(
                    "/v1/embeddings",
                    headers={"Authorization": f"Bearer {copied}"},
                    json={"model": SMALL, "input": "hello from a real browser"},
                )
            assert response.status_code == 200, response.text
            request_id = response.headers["x-request-id"]
            tokens = response.json()["usage"]["total_tokens"]
            assert tokens > 0

            record = wait_until(
                lambda: UsageRecord.objects.filter(request_id=request_id).first(), timeout_s=20
            )
            assert (record.model, record.tokens) == (SMALL, tokens)
            assert record.cost_nanos == tokens * 20  # 0.02 per million tokens
            wait_until(
                lambda: DailyUsage.objects.filter(tenant=tenant, requests__gte=1).exists(),
                timeout_s=20,
            )

            tp.get_by_role("link", name="Usage", exact=True).click()
            usage_row = tp.locator("tbody tr", has_text=request_id)
            expect(usage_row).to_contain_text(SMALL)
            expect(usage_row).to_contain_text(thousands(tokens))
            expect(tp.locator("#total-count")).to_have_text("1")
            expect(tp.locator("#total-tokens")).to_have_text(thousands(tokens))
            browser.shot(tp, "usage")

            op.get_by_role("link", name="Reports", exact=True).click()
            tenant_row = op.locator("table[data-breakdown='tenant'] tbody tr", has_text=TENANT_SLUG)
            expect(tenant_row).to_contain_text(thousands(tokens))
            expect(tenant_row).to_contain_text(money(record.cost_nanos))
            browser.shot(op, "operator-reports")
        finally:
            chromium.close()

    assert not browser.problems, browser.problems
