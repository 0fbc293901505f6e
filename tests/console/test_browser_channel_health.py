"""Channel health in a real browser (Playwright driving Debian's Chromium):
a channel whose upstream keeps failing is taken out of rotation by the live
relay and worker, and the operator's channels page says why and since when;
once the upstream heals, the worker's probe puts it back and the page shows
it enabled, its probe passed. Screenshots go to
test-artifacts/browser/channel-health/."""

from __future__ import annotations

import httpx
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from accounts.models import ApiKey
from relay.models import Channel
from tests.console.browser import (
    CHROMIUM,
    LAUNCH_ARGS,
    TIMEOUT_MS,
    Browser,
    require_chromium,
    sign_in,
)
from tests.helpers import SMALL, eventually, make_channel, uses_live_relay

OPERATOR = ("opal", "pw-opal-operator-123")
FAILURES = 5  # RELAY_HEALTH_FAILURES's default, which the live relay runs with


@uses_live_relay
def test_a_failing_channel_is_taken_out_and_put_back_by_its_probe_on_the_channels_page(
    relay_server, fake_upstream, group, tenant, django_user_model, monkeypatch
):
    require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright
    django_user_model.objects.create_user(OPERATOR[0], password=OPERATOR[1], is_staff=True)
    channel = make_channel(group, fake_upstream.base_url("status=503"), name="flaky-upstream")
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="ci")
    with httpx.Client(base_url=relay_server, timeout=30) as client:
        for _ in range(FAILURES):
            answer = client.post(
                "/v1/embeddings",
                json={"model": SMALL, "input": "hi"},
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert answer.status_code == 502, answer.text
    eventually(lambda: not Channel.objects.get(pk=channel.pk).enabled)

    expect.set_options(timeout=TIMEOUT_MS)
    browser = Browser("channel-health")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            page = browser.watch(chromium.new_page())
            sign_in(page, relay_server, *OPERATOR)
            page.locator("main button[type=submit]").click()
            page.goto(f"{relay_server}/operator/channels/")
            row = page.locator("tr", has_text="flaky-upstream")
            expect(row.locator(".badge").first).to_have_text("auto-disabled")
            expect(row.locator("td.health")).to_contain_text("Repeated failures")
            expect(row.locator("td.health")).to_contain_text("503")
            disabled_at = Channel.objects.get(pk=channel.pk).disabled_at
            expect(row.locator("td.health")).to_contain_text(f"{disabled_at:%Y-%m-%d %H:%M}")
            browser.shot(page, "auto-disabled")

            # The upstream heals; the worker's next probe finds it answering.
            Channel.objects.filter(pk=channel.pk).update(
                base_url=fake_upstream.base_url(), next_probe_at=timezone.now()
            )
            eventually(lambda: Channel.objects.get(pk=channel.pk).enabled)
            page.reload()
            row = page.locator("tr", has_text="flaky-upstream")
            expect(row.locator(".badge").first).to_have_text("enabled")
            expect(row.locator("td.health")).to_contain_text("passed")
            expect(row.locator("td.health")).not_to_contain_text("Repeated failures")
            browser.shot(page, "back-in-rotation")
        finally:
            chromium.close()
    assert not browser.problems, browser.problems
