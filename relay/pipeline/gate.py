"""A request's two Redis steps: ``enter`` before the upstream call, and
``Entry.settle`` or ``Entry.cancel`` after it.

``enter`` checks the rate limits and the balance and, only if both pass,
records the admission and places the hold, in one script. ``settle`` spends
the hold, queues the usage event and frees the in-flight slots, in one
script; ``cancel`` releases the hold and frees the slots. Each Redis round
trip costs a request ~50 µs of client CPU and a pass through the event loop,
where it queues behind others under load; with limits and money in separate
scripts a request made four (docs/benchmarks.md).

The rules stay in their modules: relay/limits/rules.py and relay/limits/lua.py
decide a key's limits and word the 429s, relay/pipeline/money.py and billing/live.py
price the hold and word the refusals. The scripts here call their Lua
functions in turn.

When Redis cannot be reached, limits fail open and money fails closed: the
per-process fallback limiter still answers 429 once this process's share is
spent, and otherwise the request is refused with 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from django.conf import settings

from billing import live
from billing.usage_events import FIELD, FIELD_CHARGE, UsageEvent
from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes, ModelRoute
from relay.connections import pools
from relay.connections.lua_client import Script
from relay.connections.pools import REDIS_FAILURES
from relay.contract.validation import EmbeddingRequest
from relay.lib import metrics
from relay.lib.cancellation import even_if_cancelled, in_background
from relay.limits import admission, rules
from relay.limits import lua as limits_lua
from relay.pipeline import money

log = logging.getLogger(__name__)

# The hold was not tried: a rate limit refused the request first.
NOT_TRIED = 2

# KEYS: 1-4 as limits_decide's K, 5-7 as hold_check's K.
# ARGV: 1-9 as limits_decide's A, 10-14 as hold_check's A.
# Returns {hold result (NOT_TRIED when a limit refused), then limits_reply}.
ENTER = (
    limits_lua.FUNCTIONS
    + live.FUNCTIONS
    + f"""
local d = limits_decide({{unpack(KEYS, 1, 4)}}, {{unpack(ARGV, 1, 9)}})
if d.refused ~= 0 then return {{{NOT_TRIED}, unpack(limits_reply(d))}} end
local K, A = {{unpack(KEYS, 5, 7)}}, {{unpack(ARGV, 10, 14)}}
local held = hold_check(K, A)
if held == 1 then
  limits_record(d)
  hold_place(K, A)
end
return {{held, unpack(limits_reply(d))}}
"""
)

# KEYS: 1-5 as hold_settle's K, then the slot sets. ARGV: 1-8 as
# hold_settle's A, 9 the slot id. Returns the amount charged.
SETTLE = (
    limits_lua.FUNCTIONS
    + live.FUNCTIONS
    + """
local charge = hold_settle(KEYS, ARGV)
limits_free({unpack(KEYS, 6)}, ARGV[9])
return charge
"""
)

# KEYS: 1-3 as hold_release's K, 4 the usage stream, then the slot sets.
# ARGV: 1-3 as hold_release's A, 4 the slot id, 5-7 the failed request's
# event (field, json, charge field), json '' when there is none to note.
CANCEL = (
    limits_lua.FUNCTIONS
    + live.FUNCTIONS
    + """
hold_release(KEYS, ARGV)
limits_free({unpack(KEYS, 5)}, ARGV[4])
if ARGV[6] ~= '' then redis.call('XADD', KEYS[4], '*', ARGV[5], ARGV[6], ARGV[7], 0) end
return 0
"""
)

_ENTER, _SETTLE, _CANCEL = Script(ENTER), Script(SETTLE), Script(CANCEL)


@dataclass
class Entry:
    """A request let through, its cost held; exactly one of ``settle`` and
    ``cancel`` must run however the request ends."""

    headers: dict[str, str]
    hold: money.Hold
    slot_keys: tuple[str, ...]
    slot_id: str

    def settle(self, event: UsageEvent) -> Awaitable[None]:
        """Spend the billed cost, queue the usage event, free the slots.

        The script is written to Redis before this returns; the caller sends
        the response, then awaits the result. The client does not wait for
        that round trip, yet cannot get ahead of it: the slots are free
        before it can hear back (Redis runs commands in the order they
        reach it), and a settle that failed is billed into PostgreSQL all
        the same."""
        keys, args = money.settle_args(self.hold, event)
        lua = pools.lua()
        sent = lua.send(_SETTLE, [*keys, *self.slot_keys], [*args, self.slot_id])
        replicas = settings.RELAY_REDIS_WAIT_REPLICAS
        # Written behind the settle on the same connection: no round trip of
        # its own, and it covers the settle (docs/deploy.md, "Redis").
        confirmed = (
            lua.command(keys, b"WAIT", replicas, settings.RELAY_REDIS_WAIT_TIMEOUT_MS)
            if replicas
            else None
        )
        return self._settled(sent, confirmed, event)

    async def _settled(
        self, sent: Awaitable, confirmed: Awaitable | None, event: UsageEvent
    ) -> None:
        try:
            await sent
            metrics.USAGE_QUEUED.inc()
            if confirmed is not None and await confirmed < settings.RELAY_REDIS_WAIT_REPLICAS:
                # A failover now would lose the settle: bill it in PostgreSQL
                # too, where its request id keeps it once (billing/live.py's
                # applied marker keeps the live balance from paying twice).
                log.warning("settle of %s not confirmed by a replica", event.request_id)
                await money.bill_directly(event)
        except REDIS_FAILURES:
            # The slots expire after RELAY_INFLIGHT_SLOT_TTL_S.
            _discard(confirmed)
            await money.bill_directly(event)

    async def cancel(self, failed_event: UsageEvent | None = None) -> None:
        """Give the hold and the slots back; note a failed request (cost 0)
        for the channels' error rates."""
        # Releasing twice is harmless: the second finds the hold gone.
        await even_if_cancelled(lambda: self._cancel(failed_event))

    async def _cancel(self, failed_event: UsageEvent | None) -> None:
        event = failed_event.encode() if failed_event is not None else ""
        try:
            await pools.lua().run(
                _CANCEL,
                [*self.hold.keys, self.hold.stream, *self.slot_keys],
                [*money.release_args(self.hold), self.slot_id, FIELD, event, FIELD_CHARGE],
            )
        except REDIS_FAILURES as failure:
            # The sweeper releases the hold when it expires and the slots
            # expire; the failed-request note is only for error rates.
            log.warning(
                "could not release hold %s now (%s)", self.hold.member, type(failure).__name__
            )


def _discard(pending: Awaitable | None) -> None:
    """Drop an awaitable whose outcome no longer matters, quietly."""
    if isinstance(pending, asyncio.Future):
        pending.add_done_callback(lambda done: done.cancelled() or done.exception())
    elif pending is not None:
        pending.close()  # a coroutine never started


async def enter(
    *,
    key: KeyContext,
    routes: GroupRoutes,
    route: ModelRoute,
    request: EmbeddingRequest,
    client_ip: str,
    request_id: str,
) -> Entry:
    """Let the request through with its cost held, or raise the refusal:
    PermissionDenied (address), RateLimited, InsufficientQuota,
    InvalidApiKey (expired on Redis's clock) or ServiceUnavailable."""
    rules.check_address(key, client_ip)
    plan = rules.Plan.of(
        key, rules.effective_limits(key, routes), request.total_tokens, slot_id=request_id
    )
    hold, hold_args = money.plan_hold(key=key, route=route, request=request, request_id=request_id)
    entry = Entry({}, hold, plan.slot_keys, plan.slot_id)
    for _attempt in range(3):
        try:
            # A request cancelled (client gone) while its script runs gives
            # back what the script took once the reply comes.
            reply = await pools.lua().send(
                _ENTER,
                [*plan.keys, *hold.keys],
                [*plan.args, *hold_args],
                if_abandoned=lambda taken: (
                    in_background(entry._cancel(None)) if taken[0] == money.HELD else None
                ),
            )
        except REDIS_FAILURES as failure:
            log.error(
                "Redis unreachable (%s): refusing the request, as money checks fail closed",
                type(failure).__name__,
            )
            admission.redis_failed(pools.redis(), failure)
            admitted = await admission.admit(
                key=key,
                routes=routes,
                model=request.model,
                tokens=request.total_tokens,
                client_ip=client_ip,
            )
            await admitted.release()
            raise money.unavailable() from failure
        held = reply[0]
        entry.headers = admission.decided(
            plan, reply[1:], model=request.model, tokens=request.total_tokens
        )
        if held == money.HELD:
            metrics.HOLDS.labels(result="held").inc()
            return entry
        await money.load_missing(held, key)
    raise money.unavailable()
