"""Redis round trips per request, counted by Redis itself: still two scripts
(enter, settle) on any topology, however the state is sharded."""

from __future__ import annotations

import pytest
from django.conf import settings

from billing import redis_url
from tests.helpers import funded_key, hello, make_channel, uses_live_relay

pytestmark = pytest.mark.django_db(transaction=True)


def script_calls() -> int:
    """EVALSHA and EVAL calls so far, summed over every primary."""
    client = redis_url.client(settings.REDIS_URL)
    if redis_url.parse(settings.REDIS_URL).kind == redis_url.CLUSTER:
        stats = client.info("commandstats", target_nodes=client.PRIMARIES).values()
    else:
        stats = [client.info("commandstats")]
    return sum(
        node.get(name, {}).get("calls", 0)
        for node in stats
        for name in ("cmdstat_evalsha", "cmdstat_eval")
    )


@uses_live_relay
def test_a_served_request_costs_two_redis_scripts(relay, group, fake_upstream):
    make_channel(group, fake_upstream.base_url("ch=round-trips"))
    _tenant, _key, secret = funded_key(group, requests=100, name="round-trips")
    # The first loads the live balance and the scripts (a NOSCRIPT's EVAL
    # follows the answer); the second runs as every later one does.
    for _ in range(2):
        assert hello(relay, secret).status_code == 200

    before = script_calls()
    for _ in range(20):
        assert hello(relay, secret).status_code == 200
    after = script_calls()

    assert after - before == 2 * 20
