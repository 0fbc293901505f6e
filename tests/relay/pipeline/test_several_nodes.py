"""Two relay nodes (separate gunicorn masters, two workers each) on one Redis
and one PostgreSQL: one key's limit and one tenant's balance hold across
both, whatever topology REDIS_URL names (dev.py test runs this on a
standalone server, a cluster and Sentinel)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.core.management import call_command

from billing.models import LedgerEntry, UsageRecord
from tests.helpers import (
    HELLO,
    HELLO_COST,
    SMALL,
    balance_row,
    funded_key,
    make_channel,
    relay_nodes,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def two_nodes(server_env):
    """Two relays, each its own gunicorn master, as on two machines."""
    with relay_nodes(server_env) as urls:
        yield urls


def send_across(urls: list[str], secret: str, count: int) -> list[httpx.Response]:
    """``count`` requests at once, alternating between the nodes."""
    headers = {"Authorization": f"Bearer {secret}"}
    clients = [httpx.Client(base_url=url, timeout=30) for url in urls]

    def one(n: int) -> httpx.Response:
        body = {"model": SMALL, "input": HELLO}
        return clients[n % len(clients)].post("/v1/embeddings", json=body, headers=headers)

    try:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(one, range(count)))
    finally:
        for client in clients:
            client.close()


def error_codes(answers: list[httpx.Response]) -> set[str]:
    return {a.json()["error"]["code"] for a in answers if a.status_code != 200}


def test_one_keys_limit_holds_across_two_nodes(two_nodes, group, fake_upstream):
    make_channel(group, fake_upstream.base_url("ch=two-nodes-limit"))
    _tenant, _key, secret = funded_key(group, requests=1000, name="two-nodes", limit_rpm=5)

    answers = send_across(two_nodes, secret, 60)

    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 5
    assert statuses.count(429) == 55
    assert error_codes(answers) == {"rate_limit_exceeded"}
    # Each node answered some of both: the limit is shared, not per node.
    for node in (0, 1):
        assert 429 in statuses[node::2]


def test_one_balance_holds_across_two_nodes(two_nodes, group, fake_upstream, celery_worker):
    make_channel(group, fake_upstream.base_url("ch=two-nodes-money"))
    tenant, _key, secret = funded_key(group, requests=20, name="two-nodes-money")

    answers = send_across(two_nodes, secret, 200)

    served = [a.headers["x-request-id"] for a in answers if a.status_code == 200]
    assert len(served) == 20
    assert [a.status_code for a in answers].count(429) == 180
    assert error_codes(answers) == {"insufficient_quota"}
    wait_until(lambda: UsageRecord.objects.filter(tenant=tenant).count() >= 20, timeout_s=30)
    records = list(UsageRecord.objects.filter(tenant=tenant))
    assert sorted(r.request_id for r in records) == sorted(served)
    assert sum(r.cost_nanos for r in records) == 20 * HELLO_COST
    debits = LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE)
    wait_until(lambda: -sum(d.amount_nanos for d in debits.all()) == 20 * HELLO_COST)
    assert balance_row(tenant) == 0
    out = io.StringIO()
    call_command("reconcile", stdout=out)
    assert "drift=0 " in out.getvalue()
