"""Admitting a request against its rate limits in Redis: one ``EVALSHA``
(relay/limits/lua.py) makes the decision, GCRA for the rates on Redis's
clock and a set of expiring slots for requests in flight. Every applicable
limit is checked and, only if all pass, all are recorded, atomically across
every web process. ``Admission.release()`` frees the in-flight slots with one
more ``EVALSHA``, and only when an in-flight limit applies.

The request path runs the same Lua together with the money hold
(relay/pipeline/gate.py) and reads its reply through ``decided``; ``admit``
is the limiter alone, used when Redis failed under the gate. If Redis cannot
be reached, each process enforces its share of every limit in memory
(relay/limits/fallback.py).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

from redis.commands.core import AsyncScript

from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes
from relay.connections import pools
from relay.connections.pools import REDIS_FAILURES
from relay.lib.cancellation import even_if_cancelled, to_completion
from relay.limits import fallback
from relay.limits import lua as limits_lua
from relay.limits.gcra import Decision
from relay.limits.rules import (
    NO_LIMITS,
    Plan,
    check_address,
    effective_limits,
    rate_headers,
    refusal,
)

# After a failed call, go straight to the fallback for this long: a Redis that
# hangs would otherwise cost every request a socket timeout.
_REDIS_RETRY_S = 1.0


class _RedisSlot:
    __slots__ = ("client", "script", "keys", "slot_id")

    def __init__(self, client, script: AsyncScript, keys: tuple[str, ...], slot_id: str) -> None:
        self.client, self.script, self.keys, self.slot_id = client, script, keys, slot_id

    async def release(self) -> None:
        # ZREM is idempotent, so releasing twice is harmless.
        await even_if_cancelled(
            lambda: _release_in_redis(self.client, self.script, self.keys, self.slot_id)
        )


async def _release_in_redis(client, script: AsyncScript, keys, slot_id: str) -> None:
    try:
        await script(keys=keys, args=(slot_id,), client=client)
    except REDIS_FAILURES as failure:
        # The slot frees itself after RELAY_INFLIGHT_SLOT_TTL_S.
        fallback.state.failed(failure)


class _LocalSlot:
    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    async def release(self) -> None:
        fallback.state.limiter.release(self.keys)


@dataclass
class Admission:
    """A request let through; ``release()`` must run however the request ends."""

    headers: dict[str, str] = field(default_factory=dict)
    slot: _RedisSlot | _LocalSlot | None = field(default=None, repr=False)

    async def release(self) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            await slot.release()


@dataclass
class _Scripts:
    """The scripts bound to one Redis client, and whether it is failing."""

    admit: AsyncScript
    release: AsyncScript
    invalid_key: AsyncScript
    down_until: float = 0.0


_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def scripts_for(client) -> _Scripts:
    scripts = _scripts.get(client)
    if scripts is None:
        scripts = _Scripts(
            admit=client.register_script(limits_lua.ADMIT),
            release=client.register_script(limits_lua.RELEASE),
            invalid_key=client.register_script(limits_lua.INVALID_KEY),
        )
        _scripts[client] = scripts
    return scripts


def decided(plan: Plan, reply, *, model: str, tokens: int) -> dict[str, str]:
    """The rate-limit headers of an admitted request; raises the 429 of a refused one."""
    if fallback.state.active:
        fallback.state.recovered()
    decision = Decision(*reply)
    headers = rate_headers(plan.limits, decision)
    if decision.refused:
        raise refusal(decision, plan.limits, model=model, tokens=tokens, headers=headers)
    return headers


async def admit(
    *, key: KeyContext, routes: GroupRoutes, model: str, tokens: int, client_ip: str
) -> Admission:
    """Let the request through, or raise PermissionDenied (address not on the
    key's allow-list) or RateLimited. Never sends anything upstream.

    The relay's request path runs the same script together with the money
    hold (relay/pipeline/gate.py); this is the limiter alone, and the per-process
    fallback when Redis cannot be reached."""
    check_address(key, client_ip)
    limits = effective_limits(key, routes)
    if limits == NO_LIMITS:
        return Admission()
    plan = Plan.of(key, limits, tokens)
    client = pools.redis()
    scripts = scripts_for(client)
    if scripts.down_until > time.monotonic():
        return _admit_locally(plan, model=model, tokens=tokens)
    try:
        if plan.slot_keys:
            reply = await to_completion(
                scripts.admit(keys=plan.keys, args=plan.args, client=client),
                give_back=lambda taken: (
                    _release_in_redis(client, scripts.release, plan.slot_keys, plan.slot_id)
                    if taken[0] == 0
                    else None
                ),
            )
        else:
            reply = await scripts.admit(keys=plan.keys, args=plan.args, client=client)
    except REDIS_FAILURES as failure:
        redis_failed(client, failure)
        return _admit_locally(plan, model=model, tokens=tokens)
    headers = decided(plan, reply, model=model, tokens=tokens)
    if not plan.slot_keys:
        return Admission(headers)
    return Admission(headers, _RedisSlot(client, scripts.release, plan.slot_keys, plan.slot_id))


def _admit_locally(plan: Plan, *, model: str, tokens: int) -> Admission:
    headers = fallback.decide_locally(plan, model=model, tokens=tokens)
    return Admission(headers, _LocalSlot(plan.slot_keys) if plan.slot_keys else None)


def redis_failed(client, failure: BaseException) -> None:
    """Note that Redis failed: go straight to the fallback for a while."""
    scripts_for(client).down_until = time.monotonic() + _REDIS_RETRY_S
    fallback.state.failed(failure)
