"""The poison property, against the live relay and a real Celery worker:
after one poisoned usage event, every other request answered 200 in the next
90 s has its usage record within 15 s, the poisoned one is dead-lettered
(once), and ``reconcile`` names it. The same with the worker SIGKILLed while
it holds a claimed batch.

The 15 s is the issue's bound on how long billing may lag a served request
(normally well under a second); it is a property of the drain, not a
performance figure.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from accounts.models import ApiKey
from billing import dead_letters, streams
from billing.models import UsageRecord
from billing.usage_events import CONSUMER_GROUP, FIELD, UsageEvent
from tests.billing.helpers import restart_if_dead
from tests.helpers import SMALL, embed, usage_event, uses_live_relay, wait_until

WINDOW_S = 90
RECORD_WITHIN_S = 15
POISON_ID = "req_poisoned_under_load_1"


@dataclass
class Watch:
    """Sends requests one after another for a while, and stamps when each
    served request's usage record first appears."""

    relay_url: str
    secret: str
    answered: dict[str, float] = field(default_factory=dict)  # request id -> when
    recorded: dict[str, float] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._look, daemon=True),
        ]

    def start(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def stop_sending(self) -> None:
        self._stop.set()
        self._threads[0].join(30)

    def finish(self, timeout_s: float) -> None:
        """Wait until every served request is recorded (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.recorded) < len(self.answered):
            time.sleep(0.2)
        self._threads[1].join(0)

    def _send(self) -> None:
        with httpx.Client(base_url=self.relay_url, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                response = embed(client, self.secret, {"model": SMALL, "input": f"load {n}"})
                if response.status_code == 200:
                    with self._lock:
                        self.answered[response.headers["x-request-id"]] = time.monotonic()
                else:
                    self.refused.append(response.status_code)
                time.sleep(0.05)  # a steady trickle, not a benchmark

    def _look(self) -> None:
        try:
            while not (self._stop.is_set() and len(self.recorded) >= len(self.answered)):
                with self._lock:
                    waiting = [rid for rid in self.answered if rid not in self.recorded]
                if waiting:
                    found = UsageRecord.objects.filter(request_id__in=waiting).values_list(
                        "request_id", flat=True
                    )
                    now = time.monotonic()
                    for request_id in found:
                        self.recorded[request_id] = now
                time.sleep(0.25)
        finally:
            connections.close_all()

    def late(self) -> dict[str, float]:
        """Served requests recorded later than the bound (or never: inf)."""
        lags = {rid: self.recorded.get(rid, float("inf")) - at for rid, at in self.answered.items()}
        return {rid: lag for rid, lag in lags.items() if lag > RECORD_WITHIN_S}


def poison(api_key: ApiKey) -> UsageEvent:
    """A usage event PostgreSQL refuses (a NUL in its text), as a web process
    from before the edge refused NUL would have queued it."""
    event = usage_event(api_key, request_id=POISON_ID)
    event = UsageEvent(**{**event.__dict__, "end_user": "end\x00user"})
    streams.client().xadd(streams.stream_for(event.tenant_id), {FIELD: event.encode()})
    return event


def assert_poison_dead_lettered_and_named() -> None:
    conn = streams.client()
    [letter] = dead_letters.buried(conn)
    assert letter.event.request_id == POISON_ID
    assert not UsageRecord.objects.filter(request_id=POISON_ID).exists()
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("reconcile", stdout=out)
    assert f"dead-lettered: {POISON_ID}" in out.getvalue()
    assert "overdue:" not in out.getvalue()


def assert_each_served_request_recorded_once(watch: Watch) -> None:
    assert watch.refused == []
    assert len(watch.answered) > 100  # the window really carried load
    assert watch.late() == {}
    ids = list(UsageRecord.objects.values_list("request_id", flat=True))
    assert len(ids) == len(set(ids))
    assert set(ids) == set(watch.answered)


@pytest.fixture
def secret(tenant, group, channel) -> tuple[ApiKey, str]:
    return ApiKey.issue(tenant=tenant, group=group, name="poison-load")


@uses_live_relay
def test_a_request_with_a_nul_in_user_gets_openais_400_and_no_record(relay, secret):
    _api_key, key = secret
    response = embed(relay, key, {"model": SMALL, "input": "hello", "user": "a\u0000b"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "user"
    assert error["type"] == "invalid_request_error"
    served = embed(relay, key, {"model": SMALL, "input": "hello", "user": "a-b"})
    assert served.status_code == 200
    wait_until(lambda: UsageRecord.objects.filter(request_id=served.headers["x-request-id"]))
    assert UsageRecord.objects.count() == 1


@uses_live_relay
def test_after_a_poisoned_event_every_served_request_is_recorded_within_the_bound(
    relay_server, secret
):
    api_key, key = secret
    poison(api_key)
    watch = Watch(relay_server, key).start()
    time.sleep(WINDOW_S)
    watch.stop_sending()
    watch.finish(timeout_s=RECORD_WITHIN_S + 5)

    assert_each_served_request_recorded_once(watch)
    assert_poison_dead_lettered_and_named()


def _claimed_not_acknowledged(conn: redis.Redis) -> int:
    return sum(conn.xpending(stream, CONSUMER_GROUP)["pending"] for stream in streams.all_streams())


@uses_live_relay
def test_the_poison_property_holds_with_the_worker_killed_mid_batch(
    relay_server, secret, celery_worker
):
    api_key, key = secret
    conn = streams.client()
    for stream in streams.all_streams():
        streams.ensure_group(conn, stream)
    watch = Watch(relay_server, key).start()
    try:
        time.sleep(5)
        poison(api_key)
        # Killed while it holds a claimed batch: read, not yet acknowledged.
        wait_until(lambda: _claimed_not_acknowledged(conn), timeout_s=10, interval_s=0.001)
        celery_worker.kill()
        assert _claimed_not_acknowledged(conn) or dead_letters.buried(conn)
        celery_worker.start()  # as a supervisor would
        time.sleep(WINDOW_S - 5)
        watch.stop_sending()
        watch.finish(timeout_s=RECORD_WITHIN_S + 5)
    finally:
        restart_if_dead(celery_worker)

    assert_each_served_request_recorded_once(watch)
    assert_poison_dead_lettered_and_named()
