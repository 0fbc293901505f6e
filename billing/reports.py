"""Usage reports across tenants, read from the daily rollups only.

Every function here reads ``DailyUsage`` (one row per UTC day, tenant, key,
model and channel), never ``UsageRecord``: a report over a year of traffic
touches a few rows per key and day, whatever the number of requests behind
them. Ranges are inclusive UTC dates, as the rollups are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import QuerySet, Sum

from billing import replica
from billing.models import ChannelDaily, DailyUsage

# The longest range a report may cover: a year and a day (a leap year).
MAX_RANGE_DAYS = 366

BREAKDOWNS = ("day", "tenant", "model", "channel", "key")

# What each breakdown groups the rollups by; the first field is the row's key.
_GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    "day": ("day",),
    "tenant": ("tenant_id", "tenant__slug"),
    "model": ("model",),
    "channel": ("channel_id",),
    "key": ("api_key_id", "api_key__name", "api_key__prefix", "api_key__last4", "tenant__slug"),
}


@dataclass(frozen=True)
class UsageRow:
    """Requests, failures, tokens and spend of one slice of the range."""

    key: object  # the day, tenant id, model, channel id (None: no channel) or key id
    label: str
    requests: int = 0
    failed: int = 0
    tokens: int = 0
    cost_nanos: int = 0

    @property
    def error_rate(self) -> float | None:
        """Failed over all requests; None when there were none."""
        return self.failed / self.requests if self.requests else None

    def __add__(self, other: UsageRow) -> UsageRow:
        return UsageRow(
            key=self.key,
            label=self.label,
            requests=self.requests + other.requests,
            failed=self.failed + other.failed,
            tokens=self.tokens + other.tokens,
            cost_nanos=self.cost_nanos + other.cost_nanos,
        )


@dataclass(frozen=True)
class Report:
    start: dt.date
    end: dt.date
    by_day: list[UsageRow]
    by_tenant: list[UsageRow]
    by_model: list[UsageRow]
    by_channel: list[UsageRow]
    top_keys: list[UsageRow]
    total: UsageRow = field(init=False)

    def __post_init__(self) -> None:
        # Each rollup row falls on exactly one day, so the days add up to the
        # range: the total is the plain sum of the rows the report covers.
        total = UsageRow(key=None, label="Total")
        for row in self.by_day:
            total = total + row
        object.__setattr__(self, "total", total)


def rollups(*, start: dt.date, end: dt.date, tenant_id: int | None = None) -> QuerySet:
    """The rollup rows of days ``start`` to ``end`` inclusive (served by the
    ``daily_usage_day`` / ``daily_usage_tenant_day`` indexes)."""
    rows = DailyUsage.objects.using(replica.reports_db()).filter(day__gte=start, day__lte=end)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    return rows


def _label(breakdown: str, values: dict) -> str:
    if breakdown == "day":
        return values["day"].isoformat()
    if breakdown == "tenant":
        return values["tenant__slug"]
    if breakdown == "model":
        return values["model"]
    if breakdown == "channel":
        channel_id = values["channel_id"]
        return "(no channel: every channel failed)" if channel_id is None else f"#{channel_id}"
    return (
        f"{values['tenant__slug']}/{values['api_key__name']} "
        f"({values['api_key__prefix']}...{values['api_key__last4']})"
    )


def usage_by(
    *,
    breakdown: str,
    start: dt.date,
    end: dt.date,
    tenant_id: int | None = None,
    limit: int | None = None,
) -> list[UsageRow]:
    """The range's usage grouped by ``breakdown`` (one of BREAKDOWNS).

    Days come in date order; every other breakdown by spend, largest first.
    ``limit`` keeps the first rows only (top keys).
    """
    if breakdown not in _GROUP_FIELDS:
        raise ValueError(f"unknown breakdown {breakdown!r}")
    fields = _GROUP_FIELDS[breakdown]
    rows = (
        rollups(start=start, end=end, tenant_id=tenant_id)
        .values(*fields)
        .annotate(
            requests_sum=Sum("requests"),
            failed_sum=Sum("failed"),
            tokens_sum=Sum("tokens"),
            cost_sum=Sum("cost_nanos"),
        )
    )
    rows = rows.order_by("day") if breakdown == "day" else rows.order_by("-cost_sum", fields[0])
    if limit is not None:
        rows = rows[:limit]
    return [
        UsageRow(
            key=values[fields[0]],
            label=_label(breakdown, values),
            requests=values["requests_sum"] or 0,
            failed=values["failed_sum"] or 0,
            tokens=values["tokens_sum"] or 0,
            cost_nanos=values["cost_sum"] or 0,
        )
        for values in rows
    ]


def build(
    *, start: dt.date, end: dt.date, tenant_id: int | None = None, top_keys: int = 10
) -> Report:
    """Every breakdown of the range (or of one tenant's usage in it)."""
    if end < start:
        raise ValueError("the range ends before it starts")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"a report covers at most {MAX_RANGE_DAYS} days")
    scope = {"start": start, "end": end, "tenant_id": tenant_id}
    return Report(
        start=start,
        end=end,
        by_day=usage_by(breakdown="day", **scope),
        by_tenant=usage_by(breakdown="tenant", **scope),
        by_model=usage_by(breakdown="model", **scope),
        by_channel=usage_by(breakdown="channel", **scope),
        top_keys=usage_by(breakdown="key", limit=top_keys, **scope),
    )


def every_day(rows: list[UsageRow], *, start: dt.date, end: dt.date) -> list[UsageRow]:
    """``by_day`` rows with the quiet days filled in as zeros (for charts)."""
    by_date = {row.key: row for row in rows}
    days = (start + dt.timedelta(days=n) for n in range((end - start).days + 1))
    return [by_date.get(day) or UsageRow(key=day, label=day.isoformat()) for day in days]


def usage_by_channel_since(since: dt.date) -> dict[int | None, UsageRow]:
    """Each channel's served requests and spend from ``since`` (a UTC day) on."""
    today = dt.datetime.now(dt.UTC).date()
    rows = usage_by(breakdown="channel", start=since, end=max(today, since))
    return {row.key: row for row in rows}


@dataclass(frozen=True)
class ChannelAttempts:
    attempts: int = 0
    failures: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None


def attempts_by_channel_since(since: dt.date) -> dict[int, ChannelAttempts]:
    """Every upstream attempt per channel from ``since`` (a UTC day) on,
    including those that failed over to another channel."""
    rows = (
        ChannelDaily.objects.using(replica.reports_db())
        .filter(day__gte=since)
        .values("channel_id")
        .annotate(attempts=Sum("attempts"), failures=Sum("failures"))
    )
    return {row["channel_id"]: ChannelAttempts(row["attempts"], row["failures"]) for row in rows}
