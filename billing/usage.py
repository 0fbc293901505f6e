"""Writing usage records from usage events, exactly once per request id."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, transaction

from billing.models import UsageRecord
from billing.pricing import cost_nanos
from billing.usage_events import UsageEvent

log = logging.getLogger(__name__)


def _record(event: UsageEvent) -> UsageRecord:
    served = event.status == UsageRecord.Status.SERVED
    return UsageRecord(
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        api_key_id=event.api_key_id,
        group_id=event.group_id,
        channel_id=event.channel_id,
        model=event.model,
        served_model=event.served_model,
        input_count=event.input_count,
        counted_tokens=event.counted_tokens,
        tokens=event.tokens,
        token_source=event.token_source,
        price_per_mtok_nanos=event.price_per_mtok_nanos,
        # A request that was not served costs nothing.
        cost_nanos=cost_nanos(event.tokens, event.price_per_mtok_nanos) if served else 0,
        latency_ms=event.latency_ms,
        status=event.status,
        end_user=event.end_user[:256],
        created=dt.datetime.fromtimestamp(event.created_ms / 1000, tz=dt.UTC),
    )


def record_usage(events: list[UsageEvent]) -> list[UsageRecord]:
    """Write the records of ``events`` not written before; returns the new ones.

    Idempotent: an event whose request id already has a record (a redelivery,
    or the same event appended twice) is skipped. Two workers racing on the
    same request id are settled by the unique constraint: the loser's
    transaction rolls back and is retried, and then finds the winner's record.
    """
    unique = {event.request_id: event for event in events}
    for _attempt in range(3):
        try:
            with transaction.atomic():
                existing = set(
                    UsageRecord.objects.filter(request_id__in=list(unique)).values_list(
                        "request_id", flat=True
                    )
                )
                new = [_record(e) for rid, e in unique.items() if rid not in existing]
                UsageRecord.objects.bulk_create(new)
                return new
        except IntegrityError:
            log.info("usage batch raced another writer; retrying")
    raise RuntimeError("usage batch kept conflicting with another writer")
