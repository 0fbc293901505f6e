"""The request path's counting of channel failures (relay/pipeline/channel_health.py),
against the real Redis: a run of failures within the window trips a channel,
a success anywhere ends the run, a bad credential or an exhausted quota trips
at once, and a rate limit is never counted."""

from __future__ import annotations

import pytest
import redis as redis_lib
from django.conf import settings

from relay.pipeline import causes
from relay.pipeline.channel_health import STREAK_PREFIX, TRIPPED_KEY, Tally
from tests.helpers import run

THRESHOLD = 5


@pytest.fixture
def store():
    return redis_lib.Redis.from_url(settings.REDIS_URL, decode_responses=True)


@pytest.fixture(autouse=True)
def threshold(settings):
    settings.RELAY_HEALTH_FAILURES = THRESHOLD
    settings.RELAY_HEALTH_WINDOW_S = 60.0


def flushed(*steps) -> int:
    """Apply ``steps`` (callables on a fresh tally), each followed by a flush."""

    async def go():
        tripped = 0
        for step in steps:
            tally = Tally()
            step(tally)
            tripped += await tally.flush()
        return tripped

    return run(go())


def fail(channel_id: int, times: int, cause: str | None = causes.FAILURES):
    def step(tally: Tally):
        for _ in range(times):
            tally.failed(channel_id, cause, "503 upstream is down")

    return step


def test_a_run_of_failures_trips_the_channel_at_the_threshold(store):
    assert flushed(fail(7, THRESHOLD - 1)) == 0
    assert store.hget(TRIPPED_KEY, "7") is None
    assert flushed(fail(7, 1)) == 1
    assert store.hget(TRIPPED_KEY, "7") == "failures|503 upstream is down"


def test_a_success_between_failures_ends_the_run(store):
    def served_then_failed(tally: Tally):
        tally.failed(8, causes.FAILURES, "503")
        tally.served(8)  # the failure before it no longer counts
        tally.failed(8, causes.FAILURES, "503")

    assert flushed(fail(8, THRESHOLD - 1), served_then_failed, fail(8, THRESHOLD - 2)) == 0
    assert store.hget(TRIPPED_KEY, "8") is None
    assert int(store.hget(f"{STREAK_PREFIX}8", "count")) == THRESHOLD - 1
    assert flushed(fail(8, 1)) == 1


def test_failures_further_apart_than_the_window_start_a_new_run(store, settings):
    assert flushed(fail(9, THRESHOLD - 1)) == 0
    # The run began longer ago than the window.
    store.hset(f"{STREAK_PREFIX}9", "first", 1)
    assert flushed(fail(9, 1)) == 0
    assert int(store.hget(f"{STREAK_PREFIX}9", "count")) == 1


@pytest.mark.parametrize("cause", [causes.CREDENTIAL, causes.QUOTA])
def test_a_refused_credential_or_an_exhausted_quota_trips_at_once(store, cause):
    assert flushed(fail(10, 1, cause)) == 1
    assert store.hget(TRIPPED_KEY, "10").startswith(f"{cause}|")


def test_rate_limits_are_never_counted(store):
    assert flushed(fail(11, THRESHOLD * 3, None)) == 0
    assert store.hget(TRIPPED_KEY, "11") is None
    assert not store.exists(f"{STREAK_PREFIX}11")
