"""Fixtures of the tenant console's tests: the conftest group opened to the
tenant, a key of each tenant, and a month and more of usage records."""

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from accounts.models import ApiKey, Group
from billing.models import UsageRecord
from tests.console.tenant.helpers import record
from tests.helpers import ADA, LARGE, SMALL


@pytest.fixture
def open_group(tenant, group) -> Group:
    """The conftest group, opened to the tenant."""
    tenant.groups.add(group)
    return group


@pytest.fixture
def acme_key(tenant, open_group) -> ApiKey:
    return ApiKey.issue(tenant=tenant, group=open_group, name="acme-prod")[0]


@pytest.fixture
def globex_key(outsider_tenant, group) -> ApiKey:
    outsider_tenant.groups.add(group)
    return ApiKey.issue(tenant=outsider_tenant, group=group, name="globex-prod")[0]


@pytest.fixture
def usage(tenant, open_group, acme_key, globex_key) -> dict:
    """~300 records over 40 days: two keys, three models, both statuses; and
    some of another tenant's."""
    other = ApiKey.issue(tenant=tenant, group=open_group, name="acme-batch")[0]
    # Noon yesterday (UTC), not now: each record's date then does not depend
    # on the time of day the suite runs (a run just after midnight pushed the
    # minutes below into the day before and left one page, not two).
    midnight = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    now = midnight - dt.timedelta(hours=12)
    rows = []
    combos = itertools.product(range(40), [acme_key, other], [SMALL, LARGE, ADA])
    for n, (days_ago, key, model) in enumerate(combos):
        if n % 5 == 4:
            continue
        status = "failed" if n % 7 == 0 else "served"
        created = now - dt.timedelta(days=days_ago, minutes=n)
        rows.append(record(key, created=created, model=model, status=status, tokens=n + 1, n=n))
    rows += [record(globex_key, created=now - dt.timedelta(days=d), n=d) for d in range(40)]
    UsageRecord.objects.bulk_create(rows)
    return {"records": rows, "keys": (acme_key, other)}
