"""The legacy OpenAI billing endpoints that chat front ends call with the
same Bearer key to show a balance and the spend (中转站 convention).

Amounts are reported in the operator's currency units as JSON numbers, as
those clients expect; they are for display only, never computed with.
"""

from __future__ import annotations

import datetime as dt
import time

import orjson
from django.http import HttpResponse

from billing import live, statements
from billing.ledger import balance_nanos
from billing.pricing import NANOS_PER_UNIT
from relay.api.views import RelayView
from relay.connections import pools
from relay.contract.errors import InvalidRequest
from relay.lib import addresses
from relay.lib.db import off_loop
from relay.pipeline import auth

# OpenAI refused ranges longer than this; so do we (it bounds the query).
MAX_RANGE_DAYS = 100


def _units(nanos: int) -> float:
    return round(nanos / NANOS_PER_UNIT, 9)


async def _available_nanos(key: auth.KeyContext) -> int:
    balance, held = await pools.redis().hmget(live.tenant_key(key.tenant_id), "balance", "held")
    if balance is None:  # not loaded live yet: PostgreSQL has it exactly
        available = await off_loop(balance_nanos)(key.tenant_id)
    else:
        available = int(balance) - int(held or 0)
    if key.spend_cap_nanos is not None:
        spent = await off_loop(statements.key_spent_nanos)(key.key_id)
        available = min(available, key.spend_cap_nanos - spent)
    return max(available, 0)


def _json(payload: dict) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), content_type="application/json")


class SubscriptionView(RelayView):
    async def get(self, request):
        key = await auth.authenticate(
            request.META.get("HTTP_AUTHORIZATION"), addresses.client_ip(request.META)
        )
        limit = _units(await _available_nanos(key))
        return _json(
            {
                "object": "billing_subscription",
                "has_payment_method": True,
                "soft_limit_usd": limit,
                "hard_limit_usd": limit,
                "system_hard_limit_usd": limit,
                "access_until": int(key.expires.timestamp()) if key.expires else 0,
                "plan": {"title": "prepaid", "id": "prepaid"},
                "current_period_end": int(time.time()),
            }
        )


def _date(request, name: str, default: dt.date) -> dt.date:
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidRequest(
            f"Invalid '{name}': {raw!r} is not a date (YYYY-MM-DD).", param=name
        ) from exc


class UsageView(RelayView):
    async def get(self, request):
        key = await auth.authenticate(
            request.META.get("HTTP_AUTHORIZATION"), addresses.client_ip(request.META)
        )
        today = dt.datetime.now(dt.UTC).date()
        end = _date(request, "end_date", today + dt.timedelta(days=1))
        start = _date(request, "start_date", end - dt.timedelta(days=MAX_RANGE_DAYS))
        if not start < end or (end - start).days > MAX_RANGE_DAYS:
            raise InvalidRequest(
                f"The date range must be 1 to {MAX_RANGE_DAYS} days, start before end.",
                param="start_date",
            )
        days = await off_loop(statements.daily_spend)(key.tenant_id, start, end)
        # OpenAI reported these in cents; front ends divide by 100.
        return _json(
            {
                "object": "list",
                "total_usage": round(sum(nanos for _day, nanos in days) / NANOS_PER_UNIT * 100, 7),
                "daily_costs": [
                    {
                        "timestamp": int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()),
                        "line_items": [
                            {"name": "embeddings", "cost": round(n / NANOS_PER_UNIT * 100, 7)}
                        ],
                    }
                    for day, n in days
                ],
            }
        )
