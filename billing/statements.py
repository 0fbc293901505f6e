"""What a tenant has and has spent, for the legacy billing endpoints."""

from __future__ import annotations

import datetime as dt

from django.db.models import Sum
from django.db.models.functions import TruncDate

from billing.models import UsageRecord


def daily_spend(tenant_id: int, start: dt.date, end: dt.date) -> list[tuple[dt.date, int]]:
    """Nanos spent per day in [start, end), days without spend left out."""
    rows = (
        UsageRecord.objects.filter(
            tenant_id=tenant_id, created__date__gte=start, created__date__lt=end
        )
        .annotate(day=TruncDate("created"))
        .values("day")
        .annotate(total=Sum("cost_nanos"))
        .order_by("day")
    )
    return [(row["day"], row["total"] or 0) for row in rows]


def key_spent_nanos(api_key_id: int) -> int:
    total = UsageRecord.objects.filter(api_key_id=api_key_id).aggregate(s=Sum("cost_nanos"))["s"]
    return total or 0
