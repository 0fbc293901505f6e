"""What the tenant console's tests share: signing in, today's date, usage records."""

from __future__ import annotations

import datetime as dt

from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from billing.models import UsageRecord
from billing.pricing import cost_nanos
from tests.helpers import SMALL, SMALL_PRICE_NANOS


def signed_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def record(
    key: ApiKey,
    *,
    created: dt.datetime,
    model: str = SMALL,
    status: str = "served",
    tokens: int = 10,
    n: int = 0,
) -> UsageRecord:
    served = status == UsageRecord.Status.SERVED
    return UsageRecord(
        request_id=f"req-{key.pk}-{n}",
        tenant=key.tenant,
        api_key=key,
        group=key.group,
        model=model,
        served_model=model,
        input_count=1,
        counted_tokens=tokens,
        tokens=tokens,
        token_source=UsageRecord.TokenSource.PROMPT_TOKENS,
        price_per_mtok_nanos=SMALL_PRICE_NANOS,
        cost_nanos=cost_nanos(tokens, SMALL_PRICE_NANOS) if served else 0,
        latency_ms=20 + n % 7,
        status=status,
        end_user=f"user-{n % 3}",
        created=created,
    )
