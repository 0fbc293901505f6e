"""Money on the request path: reserve the request's cost before the upstream
call, spend what it really cost after, release it if the call failed.

One Redis script per step (billing/live.py). If Redis cannot be reached the
request is refused with 503: money checks fail closed, never open.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from billing import live, live_sync
from billing.pricing import cost_nanos, from_nanos
from billing.usage import record_usage
from billing.usage_events import FIELD, FIELD_CHARGE, UsageEvent
from relay import connections, metrics
from relay.auth import KeyContext
from relay.catalog import ModelRoute
from relay.db import off_loop
from relay.errors import InsufficientQuota, InvalidApiKey, ServiceUnavailable
from relay.validation import EmbeddingRequest

log = logging.getLogger(__name__)

HELD, NO_BALANCE, TENANT_NOT_LOADED, KEY_NOT_LOADED, KEY_CAP_REACHED, KEY_EXPIRED = (
    1, 0, -1, -2, -3, -4
)

_load_tenant = off_loop(live_sync.load_tenant)
_load_key = off_loop(live_sync.load_key)
_record_now = off_loop(record_usage)
_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _script(name: str):
    client = connections.redis()
    registered = _scripts.get(client)
    if registered is None:
        registered = {
            "hold": client.register_script(live.HOLD),
            "settle": client.register_script(live.SETTLE),
            "release": client.register_script(live.RELEASE),
        }
        _scripts[client] = registered
    return registered[name]


@dataclass(frozen=True)
class Hold:
    tenant_id: int
    api_key_id: int
    amount_nanos: int
    capped: bool
    member: str

    @property
    def keys(self) -> list[str]:
        return [live.tenant_key(self.tenant_id), live.key_key(self.api_key_id), live.HOLDS]


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The relay cannot check your balance right now, so the request was not sent. "
        "Please retry shortly."
    )


async def hold(
    *, key: KeyContext, route: ModelRoute, request: EmbeddingRequest, request_id: str
) -> Hold:
    """Reserve the request's cost (its tokens are counted exactly already)."""
    amount = cost_nanos(request.total_tokens, route.price_per_mtok_nanos)
    capped = key.spend_cap_nanos is not None
    placed = Hold(
        tenant_id=key.tenant_id,
        api_key_id=key.key_id,
        amount_nanos=amount,
        capped=capped,
        member=live.hold_member(request_id, key.tenant_id, key.key_id, amount, capped),
    )
    expires_ms = int((time.time() + settings.RELAY_HOLD_TTL_S) * 1000)
    key_expires_ms = int(key.expires.timestamp() * 1000) if key.expires else -1
    args = [
        amount, key.spend_cap_nanos if capped else -1, placed.member, expires_ms, key_expires_ms
    ]
    try:
        for _attempt in range(3):
            result = await _script("hold")(keys=placed.keys, args=args)
            if result == HELD:
                metrics.HOLDS.labels(result="held").inc()
                return placed
            if result == TENANT_NOT_LOADED:
                await _load_tenant(key.tenant_id)
            elif result == KEY_NOT_LOADED:
                await _load_key(key.key_id)
            else:
                break
    except (RedisError, OSError) as exc:
        log.error("live balance unreachable (%s): refusing the request", type(exc).__name__)
        metrics.HOLDS.labels(result="unavailable").inc()
        raise _unavailable() from exc
    if result == KEY_EXPIRED:
        # Checked at authentication too; this closes the gap between the two
        # (a key expiring mid-request, or a cached context).
        raise InvalidApiKey(key.masked)
    if result == KEY_CAP_REACHED:
        metrics.HOLDS.labels(result="key_quota").inc()
        error = InsufficientQuota(
            "This API key has reached its spending limit of "
            f"{from_nanos(key.spend_cap_nanos or 0)} (the key's quota). Ask the tenant's "
            "administrator to raise the key's limit or issue another key."
        )
        error.code = "key_quota_exceeded"
        raise error
    if result == NO_BALANCE:
        metrics.HOLDS.labels(result="insufficient_quota").inc()
        raise InsufficientQuota()
    raise _unavailable()


async def settle(placed: Hold, event: UsageEvent) -> None:
    """Spend the billed cost and queue the usage event, in one step."""
    billed = cost_nanos(event.tokens, event.price_per_mtok_nanos)
    try:
        await _script("settle")(
            keys=[*placed.keys, settings.USAGE_STREAM, live.applied_key(0, event.request_id)],
            args=[
                placed.member, placed.amount_nanos, billed, int(placed.capped),
                event.encode(), FIELD, FIELD_CHARGE, live.APPLIED_TTL_S,
            ],
        )
        metrics.USAGE_QUEUED.inc()
    except (RedisError, OSError) as exc:
        # Served but Redis went away mid-request: bill it straight into
        # PostgreSQL. The hold expires and is swept; the debit reaches the
        # live balance through the ledger once Redis is back.
        log.warning("usage stream unreachable (%s); billing %s directly", exc, event.request_id)
        await _record_now([(event, None)], live_applied=False)


async def release(placed: Hold, failed_event: UsageEvent | None = None) -> None:
    """Give the reservation back; note a failed request (cost 0) for error rates."""
    try:
        await _script("release")(
            keys=placed.keys, args=[placed.member, placed.amount_nanos, int(placed.capped)]
        )
        if failed_event is not None:
            await connections.redis().xadd(
                settings.USAGE_STREAM, {FIELD: failed_event.encode(), FIELD_CHARGE: 0}
            )
    except (RedisError, OSError) as exc:
        # The sweeper releases the hold when it expires; the failed-request
        # note is only for error rates and may be lost.
        log.warning("could not release hold %s now (%s)", placed.member, type(exc).__name__)
