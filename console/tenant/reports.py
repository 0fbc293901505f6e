"""What the tenant console reads from the daily rollups (``billing.DailyUsage``).

Rollups are written in the transaction that writes the usage records they
count, so they are exact; reading them keeps the dashboard cheap however many
records a tenant has. Their days are UTC dates (billing/usage.py), so "today"
and "this month" here are UTC days too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import QuerySet, Sum
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from accounts.models import ApiKey, Tenant
from billing import replica
from billing.models import DailyUsage
from console import charts
from console.formatting import money

SUMS = {
    "requests": Sum("requests"),
    "failed": Sum("failed"),
    "tokens": Sum("tokens"),
    "cost_nanos": Sum("cost_nanos"),
}


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def rollups(tenant: Tenant) -> QuerySet[DailyUsage]:
    """The tenant's rollup rows: the only way this console reads DailyUsage."""
    return DailyUsage.objects.using(replica.reports_db()).filter(tenant=tenant)


def totals(rows: QuerySet[DailyUsage]) -> dict[str, int]:
    """Requests, failed, tokens and cost_nanos summed over ``rows`` (0 when none)."""
    return {name: value or 0 for name, value in rows.aggregate(**SUMS).items()}


@dataclass
class ModelUsage:
    model: str
    color: str
    requests: int = 0
    failed: int = 0
    tokens: int = 0
    cost_nanos: int = 0


@dataclass
class DailyUsageReport:
    """Daily tokens and cost by model over a window of days ending ``end``."""

    days: list[dt.date]
    by_model: list[ModelUsage]  # most expensive first
    by_day: list[dict] = field(default_factory=list)  # {"day", "requests", ..., "cost_nanos"}
    total: dict[str, int] = field(default_factory=dict)
    _tokens: dict[str, list[int]] = field(default_factory=dict)
    _cost: dict[str, list[int]] = field(default_factory=dict)
    _colors: dict[str, str] = field(default_factory=dict)

    def _chart(self, values: dict[str, list[int]], title: str, fmt) -> SafeString:
        return charts.stacked_bars(
            labels=[f"{day:%m-%d}" for day in self.days],
            series=[charts.Series(m.model, values[m.model]) for m in self.by_model],
            colors=self._colors,
            title=title,
            format_value=fmt,
        )

    def tokens_chart(self) -> SafeString:
        return self._chart(self._tokens, _("Tokens per day by model"), charts.thousands)

    def cost_chart(self) -> SafeString:
        return self._chart(
            self._cost, _("Cost per day by model"), lambda nanos: money(nanos, currency=False)
        )


def daily_by_model(rows: QuerySet[DailyUsage], *, end: dt.date, days: int = 30) -> DailyUsageReport:
    start = end - dt.timedelta(days=days - 1)
    window = [start + dt.timedelta(days=i) for i in range(days)]
    index = {day: i for i, day in enumerate(window)}
    grouped = (
        rows.filter(day__gte=start, day__lte=end)
        .values("day", "model")
        .annotate(**SUMS)
        .order_by("day", "model")
    )
    tokens: dict[str, list[int]] = {}
    cost: dict[str, list[int]] = {}
    models: dict[str, dict[str, int]] = {}
    per_day = {day: dict.fromkeys(SUMS, 0) for day in window}
    for row in grouped:
        i, model = index[row["day"]], row["model"]
        tokens.setdefault(model, [0] * days)[i] += row["tokens"]
        cost.setdefault(model, [0] * days)[i] += row["cost_nanos"]
        sums = models.setdefault(model, dict.fromkeys(SUMS, 0))
        for name in SUMS:
            sums[name] += row[name]
            per_day[row["day"]][name] += row[name]
    order = sorted(models, key=lambda m: (-models[m]["cost_nanos"], -models[m]["tokens"], m))
    colors = charts.colors_for(order)
    return DailyUsageReport(
        days=window,
        by_model=[ModelUsage(m, colors.get(m, charts.OTHER_COLOR), **models[m]) for m in order],
        by_day=[{"day": day, **sums} for day, sums in per_day.items()],
        total={name: sum(sums[name] for sums in models.values()) for name in SUMS},
        _tokens=tokens,
        _cost=cost,
        _colors=colors,
    )


def top_keys(tenant: Tenant, *, start: dt.date, end: dt.date, limit: int = 10) -> list[dict]:
    """The keys that spent most in [start, end], with their sums."""
    rows = list(
        rollups(tenant)
        .filter(day__gte=start, day__lte=end)
        .values("api_key")
        .annotate(**SUMS)
        .order_by("-cost_nanos", "-tokens", "api_key")[:limit]
    )
    keys = (
        ApiKey.objects.for_tenant(tenant)
        .select_related("group")
        .in_bulk([row["api_key"] for row in rows])
    )
    return [{**row, "key": keys[row["api_key"]]} for row in rows if row["api_key"] in keys]


def by_key(
    tenant: Tenant, key_ids: list[int], *, start: dt.date | None = None
) -> dict[int, dict[str, int]]:
    """Sums per key (from ``start`` on, or ever), for the keys listed."""
    rows = rollups(tenant).filter(api_key__in=key_ids)
    if start is not None:
        rows = rows.filter(day__gte=start)
    return {
        row.pop("api_key"): row
        for row in rows.values("api_key").annotate(**SUMS).order_by("api_key")
    }
