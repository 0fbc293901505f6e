"""Shared fixtures: real PostgreSQL, Redis and Celery; only the upstream is fake.

Every fixture the packages share lives here; the helpers they call live in
tests/helpers.py.

The relay runs as a real server (uvicorn, a subprocess) against the test
database, so tests drive it over HTTP as clients do. Tests that touch it use
``transactional_db``: the server and the worker only see committed rows.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.parse

import httpx
import pytest
import redis as redis_lib
from django.conf import settings
from django.core.management.base import CommandError
from django.utils import translation

from accounts.models import ApiKey, Group, GroupModel, Membership, Tenant
from billing import ledger, redis_url, streams
from billing.models import BasePrice
from relay.models import Channel
from tests.helpers import (
    ROOT,
    SMALL,
    SMALL_PRICE_NANOS,
    STARTING_BALANCE_NANOS,
    CeleryWorker,
    FakeUpstream,
    free_port,
    make_channel,
    relay_command,
    stop,
    wait_for_port,
    wait_until,
)


@pytest.fixture(scope="session")
def fake_upstream():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "relay.devtools.fake_upstream", "--port", str(port)], cwd=ROOT
    )
    wait_for_port(port, process)
    yield FakeUpstream(f"http://127.0.0.1:{port}")
    stop(process)


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
        # The worker's notices (relay/notices/) stay in its memory.
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


@pytest.fixture(scope="session")
def relay_server(server_env):
    """The relay served by uvicorn, as gunicorn's workers serve it."""
    port = free_port()
    process = subprocess.Popen(
        relay_command(port, "--log-level", "warning"),
        cwd=ROOT,
        env=server_env,
    )
    wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}"
    stop(process)


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


@pytest.fixture(autouse=True)
def usage_drained_before_flush(request):
    """A test with the worker ends only once the worker has written every
    usage event: flushing the test database under a worker's transaction
    deadlocks."""
    yield
    stream = redis_url.client(settings.REDIS_URL)

    def drained() -> bool:
        return sum(stream.xlen(name) for name in streams.all_streams()) == 0

    if "celery_worker" in request.fixturenames:
        wait_until(drained, timeout_s=30)
    elif CeleryWorker.any_running() and not drained():
        # A test that served through a live relay without asking for the
        # worker still left events for the session's worker. Written after the
        # flush, they would name deleted keys and be dead-lettered into the
        # next test's books: give the worker the time to write them first
        # (and carry on if it could not: that test is not the one to fail).
        with contextlib.suppress(AssertionError):
            wait_until(drained, timeout_s=30)


@pytest.fixture(autouse=True)
def english_again():
    """Each test starts in English: the test client runs the middleware in the
    test's own thread, so a request in Chinese would leave the thread in
    Chinese for the next test (money(), messages... read in Chinese)."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def clean_redis():
    """Each test starts with an empty Redis (limits, holds, queued events)
    and an empty embedding cache."""
    redis_url.client(settings.REDIS_URL).flushdb()
    if settings.CACHE_REDIS_URL:
        redis_lib.Redis.from_url(settings.CACHE_REDIS_URL).flushdb()
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


@pytest.fixture
def channel(group, fake_upstream) -> Channel:
    return make_channel(group, fake_upstream.base_url())


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
