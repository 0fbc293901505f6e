"""How fast the operator report answers over a large history.

    python -m bench.reports   (needs DATABASE_URL; creates its own rows in a
                               throwaway tenant set, then deletes them)

Fills the daily rollups with a year of traffic for 100 tenants x 10 keys x 2
models x 2 channels (what ~30 million usage records would roll up into) and
times billing.reports.build over 30 days and over the whole year.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay.settings")
    django.setup()
    from accounts.models import ApiKey, Group, Tenant
    from billing import reports
    from billing.models import DailyUsage

    rng = random.Random(7)
    group, _ = Group.objects.get_or_create(name="bench-reports")
    tenants = [Tenant.objects.create(slug=f"bench-r-{i}", name=f"R{i}") for i in range(100)]
    keys = [
        ApiKey.issue(tenant=t, group=group, name=f"k{j}")[0] for t in tenants for j in range(10)
    ]
    today = dt.date.today()
    rows, requests = [], 0
    for day in range(365):
        date = today - dt.timedelta(days=day)
        for key in keys:
            for model in ("text-embedding-3-small", "text-embedding-3-large"):
                channel = rng.choice((1, 2))
                n = rng.randint(20, 60)
                requests += n
                rows.append(
                    DailyUsage(
                        day=date,
                        tenant_id=key.tenant_id,
                        api_key=key,
                        model=model,
                        channel_id=channel,
                        requests=n,
                        failed=n // 50,
                        tokens=n * 300,
                        cost_nanos=n * 6000,
                    )
                )
    try:
        started = time.perf_counter()
        DailyUsage.objects.bulk_create(rows, batch_size=20_000)
        print(
            f"{len(rows):,} rollup rows for {requests:,} requests "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        for days in (30, 365):
            start = today - dt.timedelta(days=days - 1)
            started = time.perf_counter()
            report = reports.build(start=start, end=today)
            took = time.perf_counter() - started
            print(
                f"report over {days:>3} days: {took * 1000:7.1f} ms "
                f"({report.total.requests:,} requests, {len(report.by_tenant)} tenants)"
            )
    finally:
        DailyUsage.objects.filter(tenant__in=tenants).delete()
        ApiKey.objects.filter(tenant__in=tenants).delete()
        Tenant.objects.filter(pk__in=[t.pk for t in tenants]).delete()
        group.delete()


if __name__ == "__main__":
    main()
