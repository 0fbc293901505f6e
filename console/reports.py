"""The operator's usage report as both the operator console and the operator
API show it: billing's report (relay-blind) with channels named."""

from __future__ import annotations

import dataclasses
import datetime as dt

from billing import reports
from relay.models import Channel


def operator_report(*, start: dt.date, end: dt.date, tenant_id: int | None) -> reports.Report:
    report = reports.build(start=start, end=end, tenant_id=tenant_id)
    return dataclasses.replace(report, by_channel=with_channel_names(report.by_channel))


def with_channel_names(rows: list[reports.UsageRow]) -> list[reports.UsageRow]:
    """Channel rows labelled by the channel's name (billing knows only ids)."""
    ids = [row.key for row in rows if row.key is not None]
    names = dict(Channel.objects.filter(pk__in=ids).values_list("pk", "name"))
    return [
        dataclasses.replace(row, label=names[row.key]) if row.key in names else row for row in rows
    ]
