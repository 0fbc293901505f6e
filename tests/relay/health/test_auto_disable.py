"""Channel health end to end: clients' requests through the live relay to a
channel of every provider kind, the fake upstream answering in that
provider's own error shape; the worker's beat takes the channel out of
rotation with its reason, time and audit event, and clients then get 503
instead of waiting on a broken channel."""

from __future__ import annotations

import uuid

import redis as redis_lib
from django.conf import settings

from accounts.models import ApiKey, AuditEvent
from relay.models import Channel
from relay.pipeline.channel_health import STREAK_PREFIX
from tests.clients.channels import DIALECTS, dialect_channel, priced_group
from tests.helpers import embed, eventually, free_port, uses_live_relay

THRESHOLD = 5  # RELAY_HEALTH_FAILURES's default, which the live relay runs with


def with_options(options: str):
    """(dialect, options, credential) for every dialect whose fake route takes options."""
    return [(d, options, None) for d in DIALECTS if d.takes_options]


def store():
    return redis_lib.Redis.from_url(settings.REDIS_URL)


def setup(cases, tenant, fake_url) -> list[tuple[Channel, str, str]]:
    rows = []
    for dialect, options, credential in cases:
        group = priced_group(f"g-{uuid.uuid4().hex[:8]}", [dialect])
        channel = dialect_channel(group, fake_url, dialect, options=options, credential=credential)
        _key, secret = ApiKey.issue(tenant=tenant, group=group, name=channel.name)
        rows.append((channel, dialect.model, secret))
    return rows


def send(relay, rows, times: int) -> None:
    for channel, model, secret in rows:
        for _ in range(times):
            answer = embed(relay, secret, {"model": model, "input": "hello world"})
            # The channel's failure is the relay's 502 (or 503 once it is out).
            assert answer.status_code in (502, 503), (channel.name, answer.text)


def all_disabled(rows) -> bool:
    ids = [channel.pk for channel, _model, _secret in rows]
    return not Channel.objects.filter(pk__in=ids, enabled=True).exists()


def assert_out_of_rotation(relay, rows, reason: str) -> None:
    eventually(lambda: all_disabled(rows))
    for channel, _model, _secret in rows:
        channel.refresh_from_db()
        assert (channel.enabled, channel.disabled_reason) == (False, reason), channel.name
        assert channel.disabled_at is not None and channel.next_probe_at > channel.disabled_at
        assert channel.disabled_detail, channel.name
        if channel.credential:
            assert channel.credential not in channel.disabled_detail
        event = AuditEvent.objects.get(action="channel.auto_disabled", target=channel.name)
        assert event.actor is None and event.detail["reason"] == reason
    # Every web process follows within RELAY_CONFIG_CACHE_TTL_S (0.5 s here).
    channel, model, secret = rows[0]
    eventually(lambda: embed(relay, secret, {"model": model, "input": "x"}).status_code == 503)


@uses_live_relay
def test_an_exhausted_upstream_quota_takes_every_kind_of_channel_out_at_once(
    relay, fake_upstream, tenant
):
    rows = setup(with_options("quota"), tenant, fake_upstream.url)
    send(relay, rows, times=1)
    assert_out_of_rotation(relay, rows, Channel.DisabledReason.QUOTA)


@uses_live_relay
def test_a_refused_credential_takes_every_kind_of_channel_out_at_once(relay, fake_upstream, tenant):
    cases = []
    for dialect in DIALECTS:
        if dialect.kind == "azure":  # the fake refuses Azure calls without a key
            cases.append((dialect, "", ""))
        elif dialect.kind == "bedrock":
            cases.append((dialect, "key=AKIAOTHERKEY0000001:otherSecret", None))
        else:
            cases.append((dialect, "key=sk-not-this-channels-key", None))
    rows = setup(cases, tenant, fake_upstream.url)
    send(relay, rows, times=1)
    assert_out_of_rotation(relay, rows, Channel.DisabledReason.CREDENTIAL)


@uses_live_relay
def test_repeated_server_errors_take_every_kind_of_channel_out_at_the_threshold(
    relay, fake_upstream, tenant
):
    rows = setup(with_options("status=503"), tenant, fake_upstream.url)
    first = rows[0][0]
    send(relay, rows[:1], times=THRESHOLD - 1)
    # Counted (flushed to Redis), and below the threshold the channel stays.
    streak = f"{STREAK_PREFIX}{first.pk}"
    eventually(lambda: store().hget(streak, "count") == str(THRESHOLD - 1).encode())
    assert Channel.objects.get(pk=first.pk).enabled
    send(relay, rows, times=THRESHOLD)
    assert_out_of_rotation(relay, rows, Channel.DisabledReason.FAILURES)


@uses_live_relay
def test_connection_errors_take_a_channel_out_at_the_threshold(relay, fake_upstream, tenant):
    dialect = DIALECTS[0]
    rows = setup([(dialect, "", None)], tenant, fake_upstream.url)
    Channel.objects.filter(pk=rows[0][0].pk).update(
        base_url=f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    )
    send(relay, rows, times=THRESHOLD)
    assert_out_of_rotation(relay, rows, Channel.DisabledReason.FAILURES)


@uses_live_relay
def test_a_rate_limited_channel_stays_in_rotation(relay, fake_upstream, tenant):
    limited = setup(with_options("status=429")[:1], tenant, fake_upstream.url)
    # A broken channel beside it, sent the same number of requests after it,
    # shows the counts were flushed and applied meanwhile.
    broken = setup([(DIALECTS[2], "status=500", None)], tenant, fake_upstream.url)
    send(relay, limited, times=THRESHOLD * 2)
    send(relay, broken, times=THRESHOLD)
    eventually(lambda: all_disabled(broken))
    channel = limited[0][0]
    channel.refresh_from_db()
    assert channel.enabled and channel.disabled_reason == ""
    assert not AuditEvent.objects.filter(target=channel.name).exists()
