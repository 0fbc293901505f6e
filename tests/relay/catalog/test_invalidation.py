"""A change made anywhere reaches every web node's caches well within their
TTL: two relay nodes (separate gunicorn masters) caching for a minute, and a
revoked key or a disabled channel refused on both within seconds."""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth import get_user_model

from relay.operations import actions
from tests.helpers import (
    HELLO,
    SMALL,
    funded_key,
    make_channel,
    relay_nodes,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

CACHE_TTL_S = 60  # far longer than the test waits: only the message can explain it


@pytest.fixture(scope="module")
def two_nodes(server_env):
    with relay_nodes({**server_env, "RELAY_CONFIG_CACHE_TTL_S": str(CACHE_TTL_S)}) as urls:
        yield urls


def statuses(urls: list[str], secret: str, per_node: int = 6) -> set[int]:
    """Several requests on each node: each lands on one of its two workers."""
    seen = set()
    for url in urls:
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(per_node):
                seen.add(
                    client.post(
                        "/v1/embeddings",
                        json={"model": SMALL, "input": HELLO},
                        headers={"Authorization": f"Bearer {secret}"},
                    ).status_code
                )
    return seen


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-123")


def test_a_revoked_key_is_refused_on_every_node_well_within_the_cache_ttl(
    two_nodes, group, fake_upstream, operator
):
    make_channel(group, fake_upstream.base_url("ch=invalidate-key"))
    _tenant, api_key, secret = funded_key(group, requests=1000, name="revoked-everywhere")
    assert statuses(two_nodes, secret) == {200}  # cached on every worker of both nodes

    actions.revoke_key(actor=operator, key=api_key)

    wait_until(lambda: statuses(two_nodes, secret) == {401}, timeout_s=10, interval_s=0.5)


def test_a_disabled_channel_stops_serving_on_every_node_well_within_the_cache_ttl(
    two_nodes, group, fake_upstream, operator
):
    channel = make_channel(group, fake_upstream.base_url("ch=invalidate-channel"))
    _tenant, _key, secret = funded_key(group, requests=1000, name="channel-off")
    assert statuses(two_nodes, secret) == {200}

    actions.set_channel_enabled(actor=operator, channel=channel, enabled=False)

    # No channel left for the model: every node now refuses instead of serving.
    wait_until(lambda: 200 not in statuses(two_nodes, secret), timeout_s=10, interval_s=0.5)
