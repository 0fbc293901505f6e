"""With Redis down (relay/limits/fallback.py): each process enforces its share of
the limits, and a Redis failing under load leaves only admissions and 429s.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from relay.connections import pools
from relay.contract.errors import RateLimited
from relay.limits import admission, fallback
from tests.helpers import run
from tests.relay.limits.helpers import key_context, try_admit

# --- Redis down ------------------------------------------------------------------------


def test_with_redis_down_each_process_enforces_its_share(monkeypatch, settings):
    settings.RELAY_FALLBACK_PROCESSES = 2
    key = key_context(rpm=10, concurrency=2)
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    before = fallback.fallback_activations()

    async def scenario():
        served = []
        for _ in range(3):  # Redis up: shared limits
            served.append(await try_admit(key))
            await served[-1].release()
        monkeypatch.setattr(pools, "redis", lambda: dead)
        answers = []
        for _ in range(8):
            answers.append(await try_admit(key))
            if isinstance(answers[-1], admission.Admission):
                await answers[-1].release()
        return served, answers

    served, answers = run(scenario())
    assert all(isinstance(a, admission.Admission) for a in served)
    # Half of 10 RPM in this process (the fallback knows nothing of the 3 before).
    outcome = [type(a).__name__ for a in answers]
    assert outcome == ["Admission"] * 5 + ["RateLimited"] * 3
    assert answers[0].headers["x-ratelimit-limit-requests"] == "5"
    assert fallback.fallback_activations() - before == 8


@pytest.mark.standalone_only  # drops redis-py's pool of one server
def test_redis_failing_mid_load_leaves_only_admissions_and_429s(monkeypatch, settings):
    settings.RELAY_FALLBACK_PROCESSES = 1
    key = key_context(rpm=1000, concurrency=20)
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    before = fallback.fallback_activations()

    async def request():
        answer = await try_admit(key)
        if isinstance(answer, admission.Admission):
            await asyncio.sleep(0.02)  # the upstream call
            await answer.release()
        return answer

    async def scenario():
        alive = pools.redis()
        first = [asyncio.create_task(request()) for _ in range(60)]
        await asyncio.sleep(0)  # their scripts are on the wire now
        # Redis "dies" under them: open connections drop, new ones are refused.
        monkeypatch.setattr(pools, "redis", lambda: dead)
        await alive.connection_pool.disconnect()
        second = [asyncio.create_task(request()) for _ in range(60)]
        return await asyncio.gather(*first, *second, return_exceptions=True)

    outcome = asyncio.run(scenario())
    assert {type(o).__name__ for o in outcome} == {"Admission", "RateLimited"}
    refused = [o for o in outcome if isinstance(o, RateLimited)]
    # The fallback's in-flight limit is what refused them; the RPM had room.
    assert all("concurrent requests: Limit 20" in o.message for o in refused)
    assert fallback.fallback_activations() - before >= 60


def test_with_redis_down_the_fallback_holds_requests_in_flight(monkeypatch, settings):
    settings.RELAY_FALLBACK_PROCESSES = 1
    key = key_context(concurrency=2)
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    monkeypatch.setattr(pools, "redis", lambda: dead)

    async def scenario():
        held = [await try_admit(key) for _ in range(3)]
        await held[0].release()
        return held, await try_admit(key)

    held, after_release = asyncio.run(scenario())
    assert [type(a).__name__ for a in held] == ["Admission", "Admission", "RateLimited"]
    assert isinstance(after_release, admission.Admission)
