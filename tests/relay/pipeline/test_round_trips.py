"""Redis round trips per request, counted by Redis itself: still two scripts
(enter, settle) on any topology, however the state is sharded."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from django.conf import settings

from billing import redis_url
from tests.helpers import CeleryWorker, funded_key, hello, make_channel, uses_live_relay

pytestmark = pytest.mark.django_db(transaction=True)


def script_calls() -> int:
    """EVALSHA calls so far, summed over every primary: the request path's
    scripts, loaded once (a NOSCRIPT's EVAL comes before the warm-up ends).
    Channel health's once-a-second flush goes as EVAL, per process and not
    per request, so it is not counted."""
    client = redis_url.client(settings.REDIS_URL)
    if redis_url.parse(settings.REDIS_URL).kind == redis_url.CLUSTER:
        stats = client.info("commandstats", target_nodes=client.PRIMARIES).values()
    else:
        stats = [client.info("commandstats")]
    return sum(
        node.get(name, {}).get("calls", 0) for node in stats for name in ("cmdstat_evalsha",)
    )


@contextlib.contextmanager
def workers_paused():
    """The session's Celery worker runs beat tasks with scripts of their own
    (hold sweeps, the ledger, channel health): stopped while counting."""
    running = [w for w in CeleryWorker.started if w.process and w.process.poll() is None]
    for worker in running:
        os.killpg(worker.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for worker in running:
            os.killpg(worker.process.pid, signal.SIGCONT)


@uses_live_relay
def test_a_served_request_costs_two_redis_scripts(relay, group, fake_upstream):
    make_channel(group, fake_upstream.base_url("ch=round-trips"))
    _tenant, _key, secret = funded_key(group, requests=100, name="round-trips")
    # The first loads the live balance and the scripts (a NOSCRIPT's EVAL
    # follows the answer); the second runs as every later one does.
    for _ in range(2):
        assert hello(relay, secret).status_code == 200

    with workers_paused():
        before = script_calls()
        for _ in range(20):
            assert hello(relay, secret).status_code == 200
        after = script_calls()

    assert after - before == 2 * 20
