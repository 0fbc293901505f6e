"""Rate limits: requests per minute, tokens per minute and requests in flight,
per key and per tenant, enforced in Redis.

A key's limits are its own overrides, else its group's defaults (null means
unlimited); the tenant's limits hold over all its keys together, so issuing
more keys does not multiply them. ``admit()`` makes one decision with one
``EVALSHA`` (relay/limits_lua.py): GCRA for the rates, on Redis's clock, and a
set of expiring slots for requests in flight. Every applicable limit is
checked and, only if all pass, all are recorded, atomically across every web
process. ``release()`` frees the in-flight slots with one more ``EVALSHA``,
and only when an in-flight limit applies.

If Redis cannot be reached the relay keeps serving: each process enforces its
share of every limit in memory (``relay.gcra.LocalLimiter``, the script's
logic in Python), logs that it does (at most every ``_LOG_EVERY_S``) and
counts the requests so decided (``fallback_activations()``).

Also here: each key's IP allow-list, and the limit on invalid keys from one
address (``check_invalid_key_flood`` and ``note_invalid_key``, called by
relay/auth.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from relay import addresses, connections, limits_lua, metrics
from relay.addresses import client_ip as client_ip  # the view reads the address here
from relay.errors import PermissionDenied, RateLimited
from relay.gcra import Decision, Limits, LocalLimiter, format_duration

if TYPE_CHECKING:  # relay.auth imports this module
    from relay.auth import KeyContext
    from relay.catalog import GroupRoutes

log = logging.getLogger(__name__)

# After a failed call, go straight to the fallback for this long: a Redis that
# hangs would otherwise cost every request a socket timeout.
_REDIS_RETRY_S = 1.0
_LOG_EVERY_S = 30.0
# Errors that mean "Redis is not answering properly": anything from the client
# (connection, timeout, a full or read-only Redis) fails open, never a 500.
REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

_NO_LIMITS = Limits(None, None, None, None, None, None)


def effective_limits(key: KeyContext, routes: GroupRoutes) -> Limits:
    """The key's override if set, else its group's default; the tenant's own."""
    return Limits(
        routes.limit_rpm if key.limit_rpm is None else key.limit_rpm,
        routes.limit_tpm if key.limit_tpm is None else key.limit_tpm,
        key.tenant_limit_rpm,
        key.tenant_limit_tpm,
        routes.limit_concurrency if key.limit_concurrency is None else key.limit_concurrency,
        key.tenant_limit_concurrency,
    )


# --- refusals -----------------------------------------------------------------

_TENANT_WIDE = " in your organization (all its API keys together)"
_RATES = {
    1: ("requests", "requests per min (RPM)", ""),
    2: ("tokens", "tokens per min (TPM)", ""),
    3: ("requests", "requests per min (RPM)", _TENANT_WIDE),
    4: ("tokens", "tokens per min (TPM)", _TENANT_WIDE),
}
# A slot frees when some request ends, which nobody can predict; the SDKs
# back off and retry after this.
_IN_FLIGHT_RETRY_S = 1.0


def rate_headers(limits: Limits, decision: Decision) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers from the key's own rates. A rate that is
    unlimited has no header at all: any number sent for it would be made up."""
    headers: dict[str, str] = {}
    if limits.key_rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.key_rpm)
        headers["x-ratelimit-remaining-requests"] = str(decision.rpm_remaining)
        headers["x-ratelimit-reset-requests"] = format_duration(decision.rpm_reset_us)
    if limits.key_tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.key_tpm)
        headers["x-ratelimit-remaining-tokens"] = str(decision.tpm_remaining)
        headers["x-ratelimit-reset-tokens"] = format_duration(decision.tpm_reset_us)
    return headers


def refusal(
    decision: Decision, limits: Limits, *, model: str, tokens: int, headers: dict[str, str]
) -> RateLimited:
    """OpenAI's 429 for the limit the decision names."""
    limit = limits[decision.refused - 1]
    if decision.refused >= 5:
        whose = "" if decision.refused == 5 else _TENANT_WIDE
        return RateLimited(
            f"Rate limit reached for {model}{whose} on concurrent requests: Limit {limit}, "
            f"In flight {decision.used}, Requested 1. Please wait for a request in flight "
            "to finish, then try again.",
            limit_type="requests",
            retry_after_s=_IN_FLIGHT_RETRY_S,
            headers=headers,
        )
    limit_type, unit, whose = _RATES[decision.refused]
    requested = tokens if limit_type == "tokens" else 1
    head = (
        f"Rate limit reached for {model}{whose} on {unit}: Limit {limit}, "
        f"Used {decision.used}, Requested {requested}."
    )
    if decision.retry_us >= 0:
        return RateLimited(
            f"{head} Please try again in {format_duration(decision.retry_us)}.",
            limit_type=limit_type,
            retry_after_s=decision.retry_us / 1_000_000,
            headers=headers,
        )
    # Waiting cannot help; tell the SDKs not to retry (they honour this header).
    headers["x-should-retry"] = "false"
    if limit_type == "tokens":
        advice = (
            "This request alone is over the limit, so it can never succeed: split the input "
            "into smaller requests, or ask for a higher limit."
        )
    else:
        advice = "This limit admits no requests; ask for a higher limit."
    return RateLimited(
        f"{head} {advice}", limit_type=limit_type, retry_after_s=60.0, headers=headers
    )


# --- admission ------------------------------------------------------------------


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
        _fallback.failed(failure)


class _LocalSlot:
    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    async def release(self) -> None:
        _fallback.limiter.release(self.keys)


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


def _scripts_for(client) -> _Scripts:
    scripts = _scripts.get(client)
    if scripts is None:
        scripts = _Scripts(
            admit=client.register_script(limits_lua.ADMIT),
            release=client.register_script(limits_lua.RELEASE),
            invalid_key=client.register_script(limits_lua.INVALID_KEY),
        )
        _scripts[client] = scripts
    return scripts


_background: set[asyncio.Task] = set()


def in_background(coroutine: Coroutine) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)  # a task nobody references can be collected mid-flight
    task.add_done_callback(_background.discard)


async def even_if_cancelled(step: Callable[[], Coroutine]) -> None:
    """Await ``step()``. Cancelled meanwhile (cancelled again, while cleaning
    up), run it once more in the background and let the cancellation go on:
    the steps given here are harmless to repeat."""
    try:
        await step()
    except asyncio.CancelledError:
        in_background(step())
        raise


async def to_completion(call: Coroutine, *, give_back: Callable[[Any], Coroutine | None]):
    """Await a Redis step to its end even if the request is cancelled
    meanwhile (client gone): what it took is then given back in the
    background, not left to expire. ``give_back`` gets the step's reply and
    returns the coroutine that gives back what it took, or None."""
    running = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:

        def give_back_if_taken(done: asyncio.Future) -> None:
            if not done.cancelled() and done.exception() is None:
                undo = give_back(done.result())
                if undo is not None:
                    in_background(undo)

        running.add_done_callback(give_back_if_taken)
        raise


def check_address(key: KeyContext, client_ip: str) -> None:
    """Raise PermissionDenied when the address is not on the key's allow-list."""
    if key.allowed_ips and not addresses.within(client_ip, key.allowed_ips):
        raise PermissionDenied(
            f"This API key may not be used from {client_ip or 'an unknown address'}: the "
            "address is not on the key's IP allow-list. Its owner can add it in the console "
            "of this relay.",
            code="ip_not_allowed",
        )


@dataclass(frozen=True)
class Plan:
    """What the limiter script needs for one request (relay/limits_lua.py)."""

    limits: Limits
    keys: tuple[str, str, str, str]
    slot_keys: tuple[str, ...]  # the in-flight sets this request takes a slot in
    slot_id: str
    args: tuple

    @classmethod
    def of(cls, key: KeyContext, limits: Limits, tokens: int, *, slot_id: str = "") -> Plan:
        """``slot_id`` names the request's in-flight slot: the request id
        when there is one (unique already), else a random one."""
        keys = (
            f"rl:k:{key.key_id}",
            f"rl:t:{key.tenant_id}",
            f"rl:k:{key.key_id}:slots",
            f"rl:t:{key.tenant_id}:slots",
        )
        slot_keys = tuple(
            name for name, limit in zip(keys[2:], limits[4:], strict=True) if limit is not None
        )
        slot_id = (slot_id or secrets.token_hex(8)) if slot_keys else ""
        args = (
            tokens,
            *(-1 if limit is None else limit for limit in limits),
            slot_id,
            settings.RELAY_INFLIGHT_SLOT_TTL_S * 1_000_000,
        )
        return cls(limits, keys, slot_keys, slot_id, args)


def decided(plan: Plan, reply, *, model: str, tokens: int) -> dict[str, str]:
    """The rate-limit headers of an admitted request; raises the 429 of a refused one."""
    if _fallback.active:
        _fallback.recovered()
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
    hold (relay/gate.py); this is the limiter alone, and the per-process
    fallback when Redis cannot be reached."""
    check_address(key, client_ip)
    limits = effective_limits(key, routes)
    if limits == _NO_LIMITS:
        return Admission()
    plan = Plan.of(key, limits, tokens)
    client = connections.redis()
    scripts = _scripts_for(client)
    if scripts.down_until > time.monotonic():
        return _admit_locally(plan, model=model, tokens=tokens)
    try:
        if plan.slot_keys:
            reply = await to_completion(
                scripts.admit(keys=plan.keys, args=plan.args, client=client),
                give_back=lambda taken: _release_in_redis(
                    client, scripts.release, plan.slot_keys, plan.slot_id
                ) if taken[0] == 0 else None,
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


def redis_failed(client, failure: BaseException) -> None:
    """Note that Redis failed: go straight to the fallback for a while."""
    _scripts_for(client).down_until = time.monotonic() + _REDIS_RETRY_S
    _fallback.failed(failure)


def _admit_locally(plan: Plan, *, model: str, tokens: int) -> Admission:
    # Each process enforces its share, so together they stay near the limit;
    # the headers show the share actually enforced here.
    limits = plan.limits.share(settings.RELAY_FALLBACK_PROCESSES)
    decision = _fallback.limiter.admit(plan.keys, limits, tokens, time.monotonic_ns() // 1000)
    _fallback.activations += 1
    metrics.FALLBACK_LIMITER.inc()
    headers = rate_headers(limits, decision)
    result = "fallback_refused" if decision.refused else "fallback_admitted"
    metrics.LIMITER.labels(result=result).inc()
    if decision.refused:
        raise refusal(decision, limits, model=model, tokens=tokens, headers=headers)
    return Admission(headers, _LocalSlot(plan.slot_keys) if plan.slot_keys else None)


class _Fallback:
    """Bookkeeping of the per-process fallback."""

    def __init__(self) -> None:
        self.limiter = LocalLimiter()
        self.activations = 0  # requests decided without Redis; see fallback_activations()
        self.active = False
        self._logged_at = -_LOG_EVERY_S
        self._logged_activations = 0

    def failed(self, failure: BaseException) -> None:
        self.active = True
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:
            # One line per interval, not one per request: an outage under load
            # would otherwise flood the log.
            log.warning(
                "Redis unreachable for rate limits (%s: %s); each process enforces 1/%d of "
                "every limit (%d requests decided so since the last report)",
                type(failure).__name__, failure, settings.RELAY_FALLBACK_PROCESSES,
                self.activations - self._logged_activations,
            )
            self._logged_at, self._logged_activations = now, self.activations

    def recovered(self) -> None:
        self.active = False
        log.warning("Redis reachable again; rate limits are shared across processes again")


_fallback = _Fallback()


def fallback_activations() -> int:
    """Requests this process admitted or refused without Redis (for metrics)."""
    return _fallback.activations


# --- invalid keys from one address -------------------------------------------------

_INVALID_KEY_WINDOW_MS = 60_000


async def check_invalid_key_flood(client_ip: str) -> None:
    """Before the database is asked about a key this process does not know:
    refuse an address that already sent too many invalid keys this minute."""
    await _invalid_keys(client_ip, note=False)


async def note_invalid_key(client_ip: str) -> None:
    """Count an invalid key from this address; past the limit, raise
    RateLimited (answered instead of the 401)."""
    await _invalid_keys(client_ip, note=True)


async def _invalid_keys(client_ip: str, *, note: bool) -> None:
    if not client_ip:
        return
    client = connections.redis()
    scripts = _scripts_for(client)
    if scripts.down_until > time.monotonic():
        return  # fail open: no flood limit while Redis is down
    try:
        count, left_ms = await scripts.invalid_key(
            keys=(f"rl:badkey:{client_ip}",),
            args=(_INVALID_KEY_WINDOW_MS, 1 if note else 0),
            client=client,
        )
    except REDIS_FAILURES as failure:
        redis_failed(client, failure)
        return
    limit = settings.RELAY_INVALID_KEY_LIMIT_PER_MIN
    if count > limit or (not note and count >= limit):
        left_ms = left_ms if left_ms > 0 else _INVALID_KEY_WINDOW_MS
        raise RateLimited(
            f"Too many requests with invalid API keys from {client_ip}. Please try again in "
            f"{format_duration(left_ms * 1000)}.",
            limit_type="requests",
            retry_after_s=left_ms / 1000,
        )
