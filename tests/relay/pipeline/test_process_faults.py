"""Money under the faults test_money_faults.py does not cover: a web worker
SIGKILLed with requests in flight, and PostgreSQL stopped and started under
load. Each counts the client's 200s, the usage records and the ledger's
debits: every 200 has exactly one record, nothing else is billed, and
``reconcile`` is clean afterwards.
"""

from __future__ import annotations

import io
import os
import signal
import time
import urllib.parse
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from billing.models import LedgerEntry, UsageRecord
from relay.devtools.devstack import quiet_pgserver
from tests.helpers import make_channel, wait_until, web_server
from tests.relay.pipeline.test_money_faults import (
    Load,
    assert_one_record_per_served_request,
    funded_key,
    open_holds,
    settled,
)

pytestmark = pytest.mark.django_db(transaction=True)


def assert_debits_match_records(tenant) -> None:
    debits = LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE).aggregate(
        total=Sum("amount_nanos")
    )["total"]
    costs = UsageRecord.objects.filter(tenant=tenant).aggregate(total=Sum("cost_nanos"))["total"]
    assert costs and -debits == costs


def assert_reconcile_clean(tenant) -> None:
    conn = redis.Redis.from_url(settings.REDIS_URL)
    # Holds a killed request left behind are released once they expire.
    wait_until(lambda: open_holds(conn, tenant) == 0, timeout_s=60, interval_s=0.5)
    out = io.StringIO()
    call_command("reconcile", stdout=out)  # raises (exit 1) on any drift
    assert "drift=0 " in out.getvalue() and "dead_letters=0" in out.getvalue()


# --- a web worker killed mid-request ---------------------------------------------------------


@pytest.fixture
def gunicorn(server_env, tmp_path):
    """The relay as deployed: gunicorn, two workers; a stranded hold expires
    after 10 s rather than 300."""
    env = {
        **server_env,
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "RELAY_HOLD_TTL_S": "10",
    }
    with web_server(env) as (port, master):
        yield f"http://127.0.0.1:{port}", master


def test_a_web_worker_killed_mid_request_bills_exactly_the_requests_answered_200(
    gunicorn, group, fake_upstream, celery_worker
):
    url, master = gunicorn
    # Slow answers: at any moment requests are in flight in both workers.
    make_channel(group, fake_upstream.base_url("ch=web-killed,latency=150"))
    tenant, secret = funded_key(group, "web-killed")
    load = Load(url, secret, threads=4).start()
    try:
        wait_until(lambda: len(load.served()) >= 20, timeout_s=30)
        victim = master.children()[0]
        victim.send_signal(signal.SIGKILL)
        killed_at = len(load.snapshot())
        # gunicorn starts a new worker; the load goes on.
        wait_until(lambda: victim.pid not in [c.pid for c in master.children()])
        wait_until(lambda: len(master.children()) == 2, timeout_s=30)
        wait_until(lambda: len(load.served()) >= killed_at + 30, timeout_s=30)
    finally:
        load.stop()

    answers = load.snapshot()
    # Those in flight in the killed worker got no answer (status None) and no 500.
    assert {a.status for a in answers} <= {200, None}, {a.status for a in answers}
    assert any(a.status is None for a in answers)  # the kill did cut requests off
    served = load.served()
    settled(redis.Redis.from_url(settings.REDIS_URL), tenant, len(served))
    assert_one_record_per_served_request(served, tenant)
    assert_debits_match_records(tenant)
    assert_reconcile_clean(tenant)


# --- PostgreSQL stopped and started ----------------------------------------------------------


def postgres_data_dir() -> Path:
    """The session's embedded PostgreSQL keeps its data and socket together."""
    socket_dir = urllib.parse.unquote(
        urllib.parse.urlsplit(os.environ["DATABASE_URL"]).hostname or ""
    )
    data_dir = Path(socket_dir)
    assert (data_dir / "PG_VERSION").exists(), data_dir
    return data_dir


def restart_postgres_after(data_dir: Path, down_s: float) -> None:
    """Stop the server (fast: sessions are cut), wait, start it as it was
    started (pgserver runs it as its own system user when we are root)."""
    from pgserver._commands import pg_ctl

    server = quiet_pgserver().get_server(data_dir, cleanup_mode=None)  # the running one
    user = server.system_user
    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=data_dir, user=user, timeout=60)
    time.sleep(down_s)
    pg_ctl(
        ["-w", "-o", '-h ""', "-o", f"-k {data_dir}", "-l", str(data_dir / "restart.log"), "start"],
        pgdata=data_dir,
        user=user,
        timeout=60,
    )


def test_postgresql_stopped_and_started_under_load_loses_and_doubles_no_usage(
    relay_server, group, fake_upstream, celery_worker
):
    make_channel(group, fake_upstream.base_url("ch=pg-restart,latency=10"))
    tenant, secret = funded_key(group, "pg-restart")
    data_dir = postgres_data_dir()
    load = Load(relay_server, secret).start()
    try:
        wait_until(lambda: len(load.served()) >= 30, timeout_s=30)
        connection.close()  # this test's own connection goes down with the server
        restart_postgres_after(data_dir, down_s=3)
        back = len(load.served())
        wait_until(lambda: len(load.served()) >= back + 30, timeout_s=45)
    finally:
        load.stop()

    answers = load.snapshot()
    statuses = {a.status for a in answers}
    # While PostgreSQL is down a key not in a process's cache cannot be
    # checked: 503 in OpenAI's envelope, never a 500.
    assert statuses <= {200, 503}, statuses
    assert {a.error_type for a in answers if a.status == 503} <= {"server_error"}
    served = load.served()
    settled(redis.Redis.from_url(settings.REDIS_URL), tenant, len(served), timeout_s=90)
    assert_one_record_per_served_request(served, tenant)
    assert_debits_match_records(tenant)
    assert_reconcile_clean(tenant)
