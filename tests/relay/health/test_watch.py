"""An auto-disabled channel is probed with a real embeddings call in its
own dialect and put back when the probe passes, with a growing wait between
failed probes; a pinned channel is never taken out; "test all" probes every
channel and records each result."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from relay.health import state, watch
from relay.models import Channel
from tests.clients.channels import DIALECTS, dialect_channel

pytestmark = pytest.mark.django_db
ids = [dialect.id for dialect in DIALECTS]


def taken_out(channel: Channel, reason: str = "failures") -> Channel:
    assert state.auto_disable(channel_id=channel.pk, reason=reason, detail="503 down")
    channel.refresh_from_db()
    return channel


def due_now(channel: Channel) -> None:
    Channel.objects.filter(pk=channel.pk).update(next_probe_at=timezone.now())


@pytest.mark.parametrize("dialect", DIALECTS, ids=ids)
def test_a_healed_channel_of_every_kind_is_put_back_by_its_probe(dialect, fake_upstream):
    channel = taken_out(dialect_channel(None, fake_upstream.url, dialect))
    assert channel.next_probe_at > timezone.now()
    assert watch.probe_due() == []  # not due yet: nothing probed
    due_now(channel)
    fake_upstream.reset()
    assert watch.probe_due() == [channel.pk]
    channel.refresh_from_db()
    assert channel.enabled and channel.disabled_reason == "" and channel.disabled_at is None
    assert channel.last_probe_ok is True
    assert AuditEvent.objects.filter(action="channel.auto_enabled", target=channel.name).exists()
    # One call, at the dialect's embeddings route (the fake has no chat
    # routes: a chat call would not have been answered).
    called = httpx.get(f"{fake_upstream.url}/_stats").json()
    assert {route: stats["requests"] for route, stats in called.items()} == {dialect.stats_key(): 1}


def test_a_failed_probe_waits_twice_as_long_for_the_next(fake_upstream, settings):
    settings.RELAY_HEALTH_PROBE_BASE_S = 60
    settings.RELAY_HEALTH_PROBE_MAX_S = 200
    channel = taken_out(dialect_channel(None, fake_upstream.url, DIALECTS[0], options="status=503"))
    waits = []
    for _ in range(3):
        due_now(channel)
        before = timezone.now()
        assert watch.probe_due() == []
        channel.refresh_from_db()
        waits.append(round((channel.next_probe_at - before).total_seconds() / 10) * 10)
        assert not channel.enabled and channel.last_probe_ok is False
        assert channel.last_probe_error.startswith("Upstream status 503")
    assert waits == [120, 200, 200]  # 60·2, 60·4 capped at 200, capped
    assert channel.probe_failures == 3


def test_a_pinned_channel_is_never_taken_out(fake_upstream):
    channel = dialect_channel(None, fake_upstream.url, DIALECTS[0])
    assert state.set_pinned(actor=None, channel=channel, pinned=True)
    assert not state.auto_disable(channel_id=channel.pk, reason="credential", detail="401")
    channel.refresh_from_db()
    assert channel.enabled and channel.disabled_reason == ""
    assert AuditEvent.objects.filter(action="channel.pinned", target=channel.name).exists()
    assert not AuditEvent.objects.filter(action="channel.auto_disabled").exists()


def test_a_channel_a_person_disabled_is_not_put_back_by_a_probe(fake_upstream):
    from relay.operations import actions

    channel = taken_out(dialect_channel(None, fake_upstream.url, DIALECTS[0]))
    actions.set_channel_enabled(actor=None, channel=channel, enabled=True)
    actions.set_channel_enabled(actor=None, channel=channel, enabled=False)
    channel.refresh_from_db()
    assert channel.disabled_reason == "" and channel.next_probe_at is None
    Channel.objects.filter(pk=channel.pk).update(
        next_probe_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert watch.probe_due() == []
    channel.refresh_from_db()
    assert not channel.enabled


def test_test_all_probes_every_channel_and_puts_healed_ones_back(fake_upstream):
    healed = taken_out(dialect_channel(None, fake_upstream.url, DIALECTS[2]))
    broken = dialect_channel(None, fake_upstream.url, DIALECTS[3], options="status=500")
    fine = dialect_channel(None, fake_upstream.url, DIALECTS[4])
    assert watch.test_all() == [healed.pk]
    for channel in (healed, broken, fine):
        channel.refresh_from_db()
        assert channel.last_probe_at is not None
    assert healed.enabled and healed.last_probe_ok
    assert fine.enabled and fine.last_probe_ok
    # A failing enabled channel is reported, not taken out: traffic decides that.
    assert broken.enabled and broken.last_probe_ok is False
    assert "500" in broken.last_probe_error


def test_a_run_out_of_time_leaves_the_rest_for_the_next(fake_upstream, monkeypatch):
    from relay.health.probe import PROBE_TIMEOUT_S

    channel = taken_out(dialect_channel(None, fake_upstream.url, DIALECTS[0]))
    due_now(channel)
    monkeypatch.setattr(watch, "PROBE_BUDGET_S", PROBE_TIMEOUT_S - 1)
    assert watch.probe_due() == [] and watch.test_all() == []
    channel.refresh_from_db()
    assert not channel.enabled and channel.last_probe_at is None
    monkeypatch.undo()
    assert watch.probe_due() == [channel.pk]
