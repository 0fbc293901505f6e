"""A Redis primary killed under load: the replica takes over, the relay
follows it, and every request it served is billed exactly once.

The test brings its own Redis (a cluster, or a primary behind Sentinel, from
relay/devtools/redis_topologies.py), a relay node (gunicorn, two workers) and
a worker with beat on it, whatever topology the run's own Redis is; Celery's
broker is the run's broker, in a database of its own."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from billing import live
from billing.models import LedgerEntry, UsageRecord
from relay.devtools.redis_topologies import redis_cluster, redis_sentinel
from tests.helpers import (
    HELLO,
    ROOT,
    SMALL,
    CeleryWorker,
    free_port,
    funded_key,
    make_channel,
    stop,
    wait_for_port,
    wait_until,
    web_command,
)

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Load:
    """Threads sending requests until stopped; every answer kept."""

    url: str
    secret: str
    threads: int = 4
    answers: list[tuple[int | None, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.secret}"}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stopping.is_set():
                try:
                    response = client.post(
                        "/v1/embeddings", headers=headers, json={"model": SMALL, "input": HELLO}
                    )
                    answer = (response.status_code, response.headers.get("x-request-id"))
                except httpx.TransportError:
                    answer = (None, None)
                with self._lock:
                    self.answers.append(answer)

    def served(self) -> list[str]:
        with self._lock:
            return [request_id for status, request_id in self.answers if status == 200]

    def statuses(self) -> set[int | None]:
        with self._lock:
            return {status for status, _ in self.answers}


def own_broker(url: str) -> str:
    """The run's broker, in database 9: the session's worker never reads it."""
    return url.rsplit("/", 1)[0] + "/9"


@pytest.fixture(params=["cluster", "sentinel"])
def failover_stack(request, server_env, tmp_path, settings):
    topology_of = redis_cluster if request.param == "cluster" else redis_sentinel
    with topology_of(tmp_path / "redis") as topology:
        env = {
            **server_env,
            "REDIS_URL": topology.url,
            "CELERY_BROKER_URL": own_broker(settings.CELERY_BROKER_URL),
            "RELAY_REDIS_WAIT_REPLICAS": "1",
            "RELAY_HOLD_TTL_S": "10",  # holds stranded by the kill are swept soon
            "WEB_CONCURRENCY": "2",
        }
        port = free_port()
        relay = subprocess.Popen(
            web_command(port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        worker = CeleryWorker(env, str(tmp_path / "celerybeat-schedule"))
        try:
            wait_for_port(port, relay)
            worker.start()
            yield topology, f"http://127.0.0.1:{port}", env
        finally:
            worker.stop()
            stop(relay)


def reconcile(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "reconcile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_killing_the_primary_of_a_busy_tenant_loses_no_money_and_bills_nothing_twice(
    failover_stack, group, fake_upstream
):
    topology, relay_url, env = failover_stack
    make_channel(group, fake_upstream.base_url("ch=redis-failover"))
    tenant, _key, secret = funded_key(group, requests=100_000, name="failover")
    load = Load(relay_url, secret).start()
    try:
        wait_until(lambda: len(load.served()) >= 50, timeout_s=30)
        victim = topology.primary_for(live.tenant_key(tenant.pk))
        victim.stop()  # SIGKILL, mid-load
        served_at_kill = len(load.served())
        # The replica is promoted and the relay follows it.
        wait_until(lambda: len(load.served()) >= served_at_kill + 100, timeout_s=60)
    finally:
        load.stop()

    served = load.served()
    # During the failover requests were refused (503: money fails closed),
    # never a 500, never a dropped connection.
    assert load.statuses() <= {200, 503}
    assert len(served) == len(set(served))
    wait_until(
        lambda: UsageRecord.objects.filter(tenant=tenant).count() >= len(served), timeout_s=60
    )
    time.sleep(1)  # nothing else may arrive: a second record would be a double bill
    records = UsageRecord.objects.filter(tenant=tenant, status=UsageRecord.Status.SERVED)
    assert sorted(records.values_list("request_id", flat=True)) == sorted(served)
    costs = sum(records.values_list("cost_nanos", flat=True))
    wait_until(
        lambda: (
            -sum(
                LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE).values_list(
                    "amount_nanos", flat=True
                )
            )
            == costs
        ),
        timeout_s=30,
    )
    wait_until(lambda: reconcile(env).returncode == 0, timeout_s=40, interval_s=1)
    books = reconcile(env)
    assert "drift=0 " in books.stdout, books.stdout + books.stderr
