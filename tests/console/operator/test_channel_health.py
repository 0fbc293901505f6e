"""Channel health on the operator's channels page and in the operator API:
why and since when the relay took a channel out, its next probe, the pin,
and "test all channels"."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from relay.health import state
from relay.models import Channel
from tests.console.api.helpers import client_with, token_for
from tests.helpers import eventually, make_channel, uses_live_relay

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken(group, fake_upstream) -> Channel:
    channel = make_channel(group, fake_upstream.base_url("quota"), name="broken")
    state.auto_disable(
        channel_id=channel.pk,
        reason=Channel.DisabledReason.QUOTA,
        detail="429 You exceeded your current quota",
    )
    channel.refresh_from_db()
    return channel


def test_the_channels_page_shows_why_and_since_when_a_channel_was_taken_out(staff_client, broken):
    page = staff_client.get(reverse("operator:channels")).content.decode()
    assert "auto-disabled" in page
    assert "Upstream quota exhausted" in page
    assert broken.disabled_at.strftime("%Y-%m-%d %H:%M") in page
    assert "429 You exceeded your current quota" in page
    assert f"{broken.next_probe_at:%Y-%m-%d %H:%M}" in page
    assert broken.credential not in page


def test_the_channels_page_reads_it_in_chinese(staff_client, broken):
    page = staff_client.get(reverse("operator:channels"), HTTP_ACCEPT_LANGUAGE="zh-Hans")
    text = page.content.decode()
    assert "上游额度已用尽" in text and "自动停用" in text and "测试全部渠道" in text


def test_the_operator_pins_and_unpins_a_channel_audited(staff_client, broken, staff):
    pin = reverse("operator:channel_pin", args=[broken.pk])
    assert staff_client.post(pin, {"pinned": "1", "next": "list"}).status_code == 302
    broken.refresh_from_db()
    assert broken.pinned
    page = staff_client.get(reverse("operator:channels")).content.decode()
    assert "pinned" in page and "Unpin" in page
    staff_client.post(pin, {"pinned": "0"})
    broken.refresh_from_db()
    assert not broken.pinned
    actions = list(
        AuditEvent.objects.filter(target="broken", actor=staff)
        .order_by("created")
        .values_list("action", flat=True)
    )
    assert actions == ["channel.pinned", "channel.unpinned"]


def test_enabling_an_auto_disabled_channel_by_hand_ends_the_relays_disable(staff_client, broken):
    staff_client.post(reverse("operator:channel_toggle", args=[broken.pk]), {"enabled": "1"})
    broken.refresh_from_db()
    assert broken.enabled and broken.disabled_reason == "" and broken.next_probe_at is None
    page = staff_client.get(reverse("operator:channels")).content.decode()
    assert "Upstream quota exhausted" not in page


def test_the_api_shows_a_channels_health_and_pins_it(staff, broken):
    api: APIClient = client_with(token_for(staff))
    shown = api.get(f"/api/channels/{broken.pk}/").json()
    assert shown["enabled"] is False and shown["disabled_reason"] == "quota"
    assert shown["disabled_at"] and shown["next_probe_at"] and shown["pinned"] is False
    assert "credential" not in shown
    pinned = api.post(f"/api/channels/{broken.pk}/pin/", {"pinned": True}, format="json")
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    bad = api.post(f"/api/channels/{broken.pk}/pin/", {"pinned": "maybe"}, format="json")
    assert bad.status_code == 400


@uses_live_relay
def test_test_all_from_the_page_and_the_api_probes_every_channel(
    staff_client, staff, group, fake_upstream
):
    healed = make_channel(group, fake_upstream.base_url(), name="healed")
    state.auto_disable(channel_id=healed.pk, reason="failures", detail="503")
    failing = make_channel(group, fake_upstream.base_url("status=500"), name="failing")
    response = staff_client.post(reverse("operator:channels_test_all"), follow=True)
    assert "Testing all 2 channels" in response.content.decode()

    def tested() -> bool:
        return not Channel.objects.filter(last_probe_at__isnull=True).exists()

    eventually(tested)
    healed.refresh_from_db()
    failing.refresh_from_db()
    assert healed.enabled and healed.last_probe_ok
    assert failing.enabled and failing.last_probe_ok is False
    page = staff_client.get(reverse("operator:channels")).content.decode()
    assert "last test" in page and "passed" in page and "failed" in page

    Channel.objects.update(last_probe_at=None)
    api = client_with(token_for(staff))
    answer = api.post("/api/channels/test-all/", {}, format="json")
    assert answer.status_code == 202 and answer.json() == {"queued": 2}
    eventually(tested)
    # Only those the relay took out: none now, so nothing is probed.
    Channel.objects.update(last_probe_at=None)
    answer = api.post("/api/channels/test-all/", {"only_auto_disabled": True}, format="json")
    assert answer.status_code == 202 and answer.json() == {"queued": 0}
