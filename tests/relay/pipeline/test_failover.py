"""Routing and failover over HTTP: which channel serves a request, and what
the client gets when channels fail.

Each channel gets its own fake-upstream route (``/x/ch=<label>/v1``; unknown
options are ignored by the fake), so its requests are counted apart.
"""

import base64
import random
import struct

import pytest
from django.conf import settings

from accounts.models import ApiKey
from billing.models import ChannelDaily
from relay.pipeline.routing import next_channel
from relay.providers.base import ChannelRoute
from tests.helpers import (
    SMALL,
    assert_envelope,
    embed,
    make_channel,
    records,
    uses_live_relay,
    wait_until,
)

FOX = "The quick brown fox jumps over the lazy dog"


@pytest.fixture
def key(tenant, group) -> str:
    """A key whose group has no channel yet: each test sets up its own."""
    return ApiKey.issue(tenant=tenant, group=group, name="failover")[1]


def requests_to(fake_upstream, options: str) -> int:
    return fake_upstream.stats(options)["requests"]


# --- failing over ---------------------------------------------------------------


@uses_live_relay
def test_a_failing_channel_fails_over_to_the_next_tier_and_is_tried_once(
    relay, key, group, fake_upstream, celery_worker
):
    fake_upstream.reset()
    broken = make_channel(group, fake_upstream.base_url("status=503"), name="broken", priority=0)
    backup = make_channel(group, fake_upstream.base_url("ch=backup"), name="backup", priority=1)

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert response.status_code == 200, response.text
    assert len(response.json()["data"][0]["embedding"]) == 1536
    assert requests_to(fake_upstream, "status=503") == 1
    assert requests_to(fake_upstream, "ch=backup") == 1
    [record] = wait_until(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.channel_id == backup.pk
    assert record.status == "served"
    # Each channel's error rate counts the attempt it failed, though another served.
    attempts = {c.channel_id: (c.attempts, c.failures) for c in ChannelDaily.objects.all()}
    assert attempts == {broken.pk: (1, 1), backup.pk: (1, 0)}


@uses_live_relay
def test_a_channel_slower_than_the_read_timeout_fails_over(relay, key, group, fake_upstream):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("latency=3000"), name="slow", priority=0)
    make_channel(group, fake_upstream.base_url("ch=fast"), name="fast", priority=1)

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert response.status_code == 200, response.text
    assert requests_to(fake_upstream, "latency=3000") == 1
    assert requests_to(fake_upstream, "ch=fast") == 1


@uses_live_relay
@pytest.mark.parametrize("options", ["status=429", "status=500"])
def test_an_upstream_429_or_500_fails_over(relay, key, group, fake_upstream, options):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url(options), name="failing", priority=0)
    make_channel(group, fake_upstream.base_url("ch=healthy"), name="healthy", priority=1)

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert response.status_code == 200, response.text
    assert requests_to(fake_upstream, options) == 1
    assert requests_to(fake_upstream, "ch=healthy") == 1


@uses_live_relay
def test_a_channel_with_a_bad_credential_fails_over_instead_of_blaming_the_client(
    relay, key, group, fake_upstream
):
    fake_upstream.reset()
    make_channel(
        group,
        fake_upstream.base_url("key=sk-right"),
        name="misconfigured",
        priority=0,
        credential="sk-wrong",
    )
    make_channel(group, fake_upstream.base_url("ch=healthy"), name="healthy", priority=1)

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert response.status_code == 200, response.text
    assert requests_to(fake_upstream, "key=sk-right") == 1
    assert requests_to(fake_upstream, "ch=healthy") == 1


@uses_live_relay
def test_an_upstream_400_is_the_clients_fault_and_is_not_retried(relay, key, group, fake_upstream):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("status=400"), name="strict", priority=0)
    make_channel(group, fake_upstream.base_url("ch=backup"), name="backup", priority=1)

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert_envelope(response, 400, "invalid_request_error")
    assert requests_to(fake_upstream, "status=400") == 1
    assert requests_to(fake_upstream, "ch=backup") == 0


@uses_live_relay
def test_when_every_channel_fails_the_client_gets_502_and_a_failed_record(
    relay, key, group, fake_upstream, celery_worker
):
    fake_upstream.reset()
    failing = ["status=503", "status=429", "key=sk-right"]
    for priority, options in enumerate(failing):
        make_channel(
            group,
            fake_upstream.base_url(options),
            name=f"failing-{priority}",
            priority=priority,
            credential="sk-channel-secret-do-not-leak",
        )

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert_envelope(response, 502, "server_error")
    assert "<html" not in response.text.lower()
    assert "Traceback" not in response.text
    assert "sk-channel-secret-do-not-leak" not in response.text
    assert key not in response.text
    for options in failing:
        assert requests_to(fake_upstream, options) == 1, options
    [record] = wait_until(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.status == "failed"
    assert record.cost_nanos == 0
    assert record.model == SMALL


@uses_live_relay
def test_a_request_tries_no_more_channels_than_the_attempt_limit(relay, key, group, fake_upstream):
    fake_upstream.reset()
    attempts = settings.RELAY_MAX_ATTEMPTS
    failing = [f"status=503,ch={n}" for n in range(attempts + 2)]
    for priority, options in enumerate(failing):
        make_channel(
            group, fake_upstream.base_url(options), name=f"down-{priority}", priority=priority
        )

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert_envelope(response, 502, "server_error")
    tried = sum(requests_to(fake_upstream, options) for options in failing)
    assert tried == attempts
    # Lowest tiers first, each at most once.
    assert [requests_to(fake_upstream, o) for o in failing[:attempts]] == [1] * attempts


@uses_live_relay
def test_a_group_model_no_channel_serves_gets_503(relay, key, group, fake_upstream):
    # The group lists text-embedding-3-large, but its one channel serves only small.
    make_channel(group, fake_upstream.base_url("ch=small-only"), models={SMALL: ""})

    response = embed(relay, key, {"model": "text-embedding-3-large", "input": FOX})

    assert_envelope(response, 503, "server_error")


# --- which channel is chosen ------------------------------------------------------


@uses_live_relay
def test_a_disabled_channel_is_never_used(relay, key, group, fake_upstream):
    fake_upstream.reset()
    disabled = make_channel(group, fake_upstream.base_url("ch=off"), name="off", priority=0)
    disabled.enabled = False
    disabled.save()
    make_channel(group, fake_upstream.base_url("ch=on"), name="on", priority=1)

    for _ in range(10):
        response = embed(relay, key, {"model": SMALL, "input": FOX})
        assert response.status_code == 200, response.text

    assert requests_to(fake_upstream, "ch=off") == 0
    assert requests_to(fake_upstream, "ch=on") == 10


@uses_live_relay
def test_a_model_served_only_by_a_disabled_channel_gets_503(relay, key, group, fake_upstream):
    fake_upstream.reset()
    disabled = make_channel(group, fake_upstream.base_url("ch=off"), name="off")
    disabled.enabled = False
    disabled.save()

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert_envelope(response, 503, "server_error")
    assert requests_to(fake_upstream, "ch=off") == 0


@uses_live_relay
def test_healthy_channels_of_the_lowest_priority_tier_take_all_requests(
    relay, key, group, fake_upstream
):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("ch=first"), name="first", priority=0)
    # A heavier weight does not pull requests out of the first tier.
    make_channel(group, fake_upstream.base_url("ch=second"), name="second", priority=1, weight=100)

    for _ in range(20):
        response = embed(relay, key, {"model": SMALL, "input": FOX})
        assert response.status_code == 200, response.text

    assert requests_to(fake_upstream, "ch=first") == 20
    assert requests_to(fake_upstream, "ch=second") == 0


def route(channel_id: int, *, priority: int = 0, weight: int = 1) -> ChannelRoute:
    return ChannelRoute(
        channel_id=channel_id,
        name=f"ch-{channel_id}",
        kind="openai",
        base_url="http://upstream.invalid/v1",
        credential="",
        priority=priority,
        weight=weight,
        upstream_model=SMALL,
    )


def test_within_a_tier_channels_are_chosen_by_weight():
    light, heavy = route(1, weight=1), route(2, weight=9)
    rng = random.Random(20240611)

    picks = [next_channel([light, heavy], set(), rng=rng) for _ in range(2000)]

    heavy_share = sum(p is heavy for p in picks) / len(picks)
    assert 0.85 <= heavy_share <= 0.95
    assert all(p is heavy or p is light for p in picks)


def test_a_lower_tier_wins_whatever_the_weights():
    first, second = route(1, priority=0, weight=1), route(2, priority=1, weight=1000)
    rng = random.Random(7)

    assert {next_channel([second, first], set(), rng=rng).channel_id for _ in range(200)} == {1}


def test_a_tried_channel_is_never_chosen_again():
    light, heavy = route(1, weight=1), route(2, weight=1000)
    rng = random.Random(11)

    picks = {next_channel([light, heavy], {2}, rng=rng).channel_id for _ in range(200)}

    assert picks == {1}


def test_when_a_tier_is_exhausted_the_next_tier_is_chosen():
    first, second = route(1, priority=0), route(2, priority=5)

    assert next_channel([first, second], {1}, rng=random.Random(3)) is second


def test_no_channel_is_chosen_once_all_were_tried():
    channels = [route(1), route(2, priority=1), route(3, weight=5)]

    assert next_channel(channels, {1, 2, 3}, rng=random.Random(1)) is None
    assert next_channel([], set(), rng=random.Random(1)) is None


# --- what reaches the upstream ----------------------------------------------------


@uses_live_relay
def test_the_upstream_sees_the_channel_credential_never_the_tenant_key(
    relay, key, group, fake_upstream
):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("ch=cred"), credential="sk-channel-cred-42")

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert response.status_code == 200, response.text
    stats = fake_upstream.stats("ch=cred")
    assert stats["last_authorization"] == "Bearer sk-channel-cred-42"
    assert key not in str(stats)


@uses_live_relay
def test_a_channel_model_mapping_renames_the_model_upstream_only(
    relay, key, group, fake_upstream, celery_worker
):
    fake_upstream.reset()
    channel = make_channel(group, fake_upstream.base_url("ch=bge"), models={SMALL: "BAAI/bge-m3"})

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert response.status_code == 200, response.text
    assert fake_upstream.stats("ch=bge")["last_body"]["model"] == "BAAI/bge-m3"
    assert response.json()["model"] == SMALL
    [record] = wait_until(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.model == SMALL
    assert record.served_model == "BAAI/bge-m3"
    assert record.channel_id == channel.pk


@uses_live_relay
def test_user_dimensions_and_encoding_format_are_forwarded_as_sent(
    relay, key, group, fake_upstream
):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("ch=fwd"))
    body = {
        "model": SMALL,
        "input": [FOX, "hello world"],
        "user": "end-user-7",
        "dimensions": 256,
        "encoding_format": "float",
    }

    response = embed(relay, key, body)

    assert response.status_code == 200, response.text
    assert fake_upstream.stats("ch=fwd")["last_body"] == body
    assert [len(item["embedding"]) for item in response.json()["data"]] == [256, 256]


@uses_live_relay
def test_optional_fields_not_sent_are_not_forwarded(relay, key, group, fake_upstream):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("ch=bare"))

    response = embed(relay, key, {"model": SMALL, "input": FOX})

    assert response.status_code == 200, response.text
    assert fake_upstream.stats("ch=bare")["last_body"] == {"model": SMALL, "input": FOX}


@uses_live_relay
def test_a_floats_only_provider_still_gives_a_base64_client_base64(
    relay, key, group, fake_upstream
):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("floats"))
    inputs = [FOX, "hello world"]

    as_floats = embed(relay, key, {"model": SMALL, "input": inputs, "encoding_format": "float"})
    as_base64 = embed(relay, key, {"model": SMALL, "input": inputs, "encoding_format": "base64"})

    assert as_floats.status_code == 200, as_floats.text
    assert as_base64.status_code == 200, as_base64.text
    assert fake_upstream.stats("floats")["last_body"]["encoding_format"] == "base64"
    float_data = as_floats.json()["data"]
    base64_data = as_base64.json()["data"]
    assert [item["index"] for item in base64_data] == [0, 1]
    for float_item, base64_item in zip(float_data, base64_data, strict=True):
        assert isinstance(base64_item["embedding"], str)
        raw = base64.b64decode(base64_item["embedding"], validate=True)
        assert len(raw) == 4 * 1536
        decoded = list(struct.unpack("<1536f", raw))
        assert decoded == float_item["embedding"]
    assert as_base64.json()["model"] == SMALL
    assert as_base64.json()["usage"] == as_floats.json()["usage"]
