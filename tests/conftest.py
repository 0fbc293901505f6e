"""Shared fixtures: real PostgreSQL, Redis and Celery; only the upstream is fake.

The relay runs as a real server (uvicorn, a subprocess) against the test
database, so tests drive it over HTTP as clients do. Tests that touch it use
``transactional_db``: the server and the worker only see committed rows.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from django.conf import settings
from django.core.management.base import CommandError

from accounts.models import ApiKey, Group, GroupModel, Membership, Tenant
from billing import ledger
from billing.models import BasePrice, UsageRecord
from billing.usage_events import UsageEvent
from relay.models import Channel, ChannelModel

ROOT = Path(__file__).resolve().parent.parent
SMALL = "text-embedding-3-small"
SMALL_PRICE_NANOS = 20_000_000  # $0.02 per million tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout_s}s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_until(condition, timeout_s: float = 15, interval_s: float = 0.05):
    """Poll ``condition`` until it returns something truthy; fail on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last: {value!r})")
        time.sleep(interval_s)


@pytest.fixture(scope="session")
def fake_upstream():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "relay.devtools.fake_upstream", "--port", str(port)], cwd=ROOT
    )
    wait_for_port(port, process)
    yield FakeUpstream(f"http://127.0.0.1:{port}")
    stop(process)


@dataclass
class FakeUpstream:
    url: str

    def base_url(self, options: str = "") -> str:
        """A channel base URL; ``options`` as in relay/devtools/fake_upstream.py."""
        return f"{self.url}/x/{options}/v1" if options else f"{self.url}/v1"

    def stats(self, options: str = "") -> dict:
        return httpx.get(f"{self.url}/_stats").json().get(options, {"requests": 0})

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset")


@pytest.fixture(scope="session")
def server_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    """The environment for subprocesses: the *test* database, the test Redis."""
    parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    test_db = settings.DATABASES["default"]["NAME"]
    database_url = urllib.parse.urlunsplit(parts._replace(path=f"/{test_db}"))
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "RELAY_CONFIG_CACHE_TTL_S": "0.5",
        "USAGE_DRAIN_INTERVAL_S": "0.2",
        "USAGE_CLAIM_IDLE_S": "2",
        "RELAY_UPSTREAM_READ_TIMEOUT_S": "2",
    }


@pytest.fixture(scope="session")
def relay_server(server_env):
    """The relay served by uvicorn, as gunicorn's workers serve it."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "relay.asgi:application",
            "--port", str(port), "--no-access-log", "--log-level", "warning",
        ],
        cwd=ROOT,
        env=server_env,
    )
    wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}"
    stop(process)


class CeleryWorker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "relay", "worker", "--beat-thread",
                "--concurrency", "1", "--loglevel", "WARNING",
                "--schedule", f"/tmp/celerybeat-test-{os.getpid()}",
            ],
            cwd=ROOT,
            env=self.env,
            # As the relay runs it (relay/devtools/devstack.py): one process, tasks and
            # beat in threads. Its own process group, so kill() takes anything
            # it started down with it, as a crashed machine would.
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def celery_worker(server_env):
    """A real Celery worker (with beat, so it drains usage events by itself)."""
    worker = CeleryWorker(server_env)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(autouse=True, scope="session")
def flush_survives_a_deadlock_with_the_worker():
    """A transactional test ends by truncating every table, while the live
    worker may be mid-transaction (draining usage, applying the ledger):
    PostgreSQL then aborts one of the two. When it picks the flush, flush
    again rather than fail the next test on leftover rows."""
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self, **options):
        for attempt in range(5):
            try:
                return original(self, **options)
            except CommandError as exc:
                if "deadlock" not in str(exc.__cause__) or attempt == 4:
                    raise
                time.sleep(0.2)

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


def uses_live_relay(test):
    """Marks a test that drives the live relay and worker: they only see
    committed rows, and the worker must be running."""
    test = pytest.mark.usefixtures("celery_worker")(test)
    return pytest.mark.django_db(transaction=True)(test)


@pytest.fixture(autouse=True)
def usage_drained_before_flush(request):
    """A test with the worker ends only once the worker has written every
    usage event: flushing the test database under a worker's transaction
    deadlocks."""
    yield
    if "celery_worker" in request.fixturenames:
        stream = redis_lib.Redis.from_url(settings.REDIS_URL)
        wait_until(lambda: stream.xlen(settings.USAGE_STREAM) == 0, timeout_s=30)


@pytest.fixture(autouse=True)
def clean_redis():
    """Each test starts with an empty Redis (limits, holds, queued events)."""
    redis_lib.Redis.from_url(settings.REDIS_URL).flushdb()
    from relay.catalog import keys, routes

    keys.clear_cache()
    routes.clear_cache()


# --- the cast ----------------------------------------------------------------


@pytest.fixture
def group(db) -> Group:
    group = Group.objects.create(name="default", limit_rpm=None)
    BasePrice.objects.update_or_create(
        model=SMALL, defaults={"price_per_mtok_nanos": SMALL_PRICE_NANOS}
    )
    BasePrice.objects.update_or_create(
        model="text-embedding-3-large", defaults={"price_per_mtok_nanos": 130_000_000}
    )
    BasePrice.objects.update_or_create(
        model="text-embedding-ada-002", defaults={"price_per_mtok_nanos": 100_000_000}
    )
    for model in (SMALL, "text-embedding-3-large", "text-embedding-ada-002"):
        GroupModel.objects.create(group=group, model=model)
    return group


def make_channel(group: Group, base_url: str, *, name: str = "main", priority: int = 0,
                 weight: int = 1, models: dict[str, str] | None = None,
                 credential: str = "sk-upstream-credential-0001") -> Channel:
    channel = Channel.objects.create(
        name=name, base_url=base_url, credential=credential, priority=priority, weight=weight
    )
    channel.groups.add(group)
    mapping = models or {SMALL: "", "text-embedding-3-large": "", "text-embedding-ada-002": ""}
    for model, upstream_model in mapping.items():
        ChannelModel.objects.create(channel=channel, model=model, upstream_model=upstream_model)
    return channel


@pytest.fixture
def channel(group, fake_upstream) -> Channel:
    return make_channel(group, fake_upstream.base_url())


STARTING_BALANCE_NANOS = 100 * 10**9  # $100: plenty, unless a test says otherwise


@pytest.fixture
def tenant(db) -> Tenant:
    tenant = Tenant.objects.create(slug="acme", name="Acme")
    ledger.top_up(tenant=tenant, amount_nanos=STARTING_BALANCE_NANOS, reason="test funds")
    return tenant


@pytest.fixture
def outsider_tenant(db) -> Tenant:
    return Tenant.objects.create(slug="globex", name="Globex")


@pytest.fixture
def owner(tenant, django_user_model):
    user = django_user_model.objects.create_user("olivia", password="pw-olivia-123")
    Membership.objects.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def member(tenant, django_user_model):
    user = django_user_model.objects.create_user("max", password="pw-max-123")
    Membership.objects.create(tenant=tenant, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def outsider(outsider_tenant, django_user_model):
    user = django_user_model.objects.create_user("oscar", password="pw-oscar-123")
    Membership.objects.create(tenant=outsider_tenant, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def api_key(tenant, group, channel) -> tuple[ApiKey, str]:
    return ApiKey.issue(tenant=tenant, group=group, name="ci")


@pytest.fixture
def secret(api_key) -> str:
    return api_key[1]


@pytest.fixture
def relay(relay_server) -> httpx.Client:
    with httpx.Client(base_url=relay_server, timeout=30) as client:
        yield client


def embed(client: httpx.Client, secret: str | None, body, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    if isinstance(body, dict | list):
        return client.post("/v1/embeddings", json=body, headers=headers, **kwargs)
    return client.post("/v1/embeddings", content=body, headers=headers, **kwargs)


def usage_event(
    api_key: ApiKey,
    *,
    tokens: int = 9,
    price: int = SMALL_PRICE_NANOS,
    status: str = UsageRecord.Status.SERVED,
    request_id: str | None = None,
) -> UsageEvent:
    """A usage event as the relay queues it for a served one-item request."""
    return UsageEvent(
        request_id=request_id or f"req_{uuid.uuid4().hex}",
        tenant_id=api_key.tenant_id,
        api_key_id=api_key.pk,
        group_id=api_key.group_id,
        channel_id=None,
        model=SMALL,
        served_model=SMALL,
        input_count=1,
        counted_tokens=tokens,
        tokens=tokens,
        token_source=UsageRecord.TokenSource.PROMPT_TOKENS,
        price_per_mtok_nanos=price,
        latency_ms=5,
        status=status,
        end_user="",
        created_ms=int(time.time() * 1000),
    )


def records(**filters) -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(**filters).order_by("created"))
