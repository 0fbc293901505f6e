"""Money on the request path: reserve the request's cost before the upstream
call, spend what it really cost after, release it if the call failed.

The Redis steps themselves run in relay/pipeline/gate.py, in the same scripts as the
rate limiter (the Lua is billing/live.py's). This module prices the hold,
reads what the script answered, and words the refusals. If Redis cannot be
reached the request is refused with 503: money checks fail closed, never
open.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from billing import live, live_sync, streams
from billing.pricing import cost_nanos, from_nanos
from billing.usage import record_usage
from billing.usage_events import FIELD, FIELD_CHARGE, UsageEvent
from relay.catalog.keys import KeyContext
from relay.catalog.routes import ModelRoute
from relay.contract.errors import InsufficientQuota, InvalidApiKey, RelayError, ServiceUnavailable
from relay.contract.validation import EmbeddingRequest
from relay.lib import metrics
from relay.lib.db import off_loop

log = logging.getLogger(__name__)

HELD, NO_BALANCE, TENANT_NOT_LOADED, KEY_NOT_LOADED, KEY_CAP_REACHED, KEY_EXPIRED = (
    1,
    0,
    -1,
    -2,
    -3,
    -4,
)

_load_tenant = off_loop(live_sync.load_tenant)
_load_key = off_loop(live_sync.load_key)
_record_now = off_loop(record_usage)


@dataclass(frozen=True)
class Hold:
    tenant_id: int
    api_key_id: int
    amount_nanos: int
    capped: bool
    member: str

    @property
    def keys(self) -> list[str]:
        # One hash tag, the tenant's (billing/shards.py): one Cluster slot.
        return [
            live.tenant_key(self.tenant_id),
            live.key_key(self.tenant_id, self.api_key_id),
            live.holds_key(self.tenant_id),
        ]

    @property
    def stream(self) -> str:
        """The usage stream under the same hash tag."""
        return streams.stream_for(self.tenant_id)


def unavailable() -> ServiceUnavailable:
    metrics.HOLDS.labels(result="unavailable").inc()
    return ServiceUnavailable(
        "The relay cannot check your balance right now, so the request was not sent. "
        "Please retry shortly."
    )


def plan_hold(
    *, key: KeyContext, route: ModelRoute, request: EmbeddingRequest, request_id: str
) -> tuple[Hold, list]:
    """The hold for the request's cost (its tokens are counted exactly
    already), and the hold script's arguments (billing/live.py)."""
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
        amount,
        key.spend_cap_nanos if capped else -1,
        placed.member,
        expires_ms,
        key_expires_ms,
    ]
    return placed, args


async def load_missing(result: int, key: KeyContext) -> None:
    """Load what the hold script found missing from Redis, so a retry can
    hold; raise the refusal for any other answer but HELD."""
    if result == TENANT_NOT_LOADED:
        await _load_tenant(key.tenant_id)
    elif result == KEY_NOT_LOADED:
        await _load_key(key.tenant_id, key.key_id)
    elif result != HELD:
        raise refusal(result, key)


def refusal(result: int, key: KeyContext) -> RelayError:
    """The error for a hold the script refused."""
    if result == KEY_EXPIRED:
        # Checked at authentication too; this closes the gap between the two
        # (a key expiring mid-request, or a cached context).
        return InvalidApiKey(key.masked)
    if result == KEY_CAP_REACHED:
        metrics.HOLDS.labels(result="key_quota").inc()
        error = InsufficientQuota(
            "This API key has reached its spending limit of "
            f"{from_nanos(key.spend_cap_nanos or 0)} (the key's quota). Ask the tenant's "
            "administrator to raise the key's limit or issue another key."
        )
        error.code = "key_quota_exceeded"
        return error
    if result == NO_BALANCE:
        metrics.HOLDS.labels(result="insufficient_quota").inc()
        return InsufficientQuota()
    return unavailable()


def settle_args(placed: Hold, event: UsageEvent) -> tuple[list, list]:
    """Keys and arguments of billing/live.py's hold_settle for this request."""
    billed = event.cost_nanos
    keys = [*placed.keys, placed.stream, live.applied_key(placed.tenant_id, 0, event.request_id)]
    args = [
        placed.member,
        placed.amount_nanos,
        billed,
        int(placed.capped),
        event.encode(),
        FIELD,
        FIELD_CHARGE,
        live.APPLIED_TTL_S,
    ]
    return keys, args


def release_args(placed: Hold) -> list:
    """Arguments of billing/live.py's hold_release (its keys are ``placed.keys``)."""
    return [placed.member, placed.amount_nanos, int(placed.capped)]


async def bill_directly(event: UsageEvent) -> None:
    """Served, but Redis went away before the settle: bill it straight into
    PostgreSQL. The hold expires and is swept; the debit reaches the live
    balance through the ledger once Redis is back."""
    log.warning("usage stream unreachable; billing %s directly", event.request_id)
    await _record_now([(event, None)], live_applied=False)
