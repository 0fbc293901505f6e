"""The usage drain isolates failure: an event PostgreSQL refuses goes to the
dead-letter stream with its reason, every other event of its batch is
written, an outage of PostgreSQL dead-letters nothing, and what is left
behind is named by ``reconcile`` and measured on /metrics.

These tests drain by calling the drain themselves, on a stream of their own
(``own_stream``), so a session worker left running by another test does not
race them.
"""

from __future__ import annotations

import io
import time
import uuid

import orjson
import psycopg
import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection

from accounts.models import ApiKey
from billing import backlog, dead_letters, drain, streams
from billing.models import UsageRecord
from billing.pricing import cost_nanos
from billing.usage_events import FIELD, FIELD_CHARGE, UsageEvent
from relay.lib import metrics
from tests.helpers import SMALL_PRICE_NANOS, STARTING_BALANCE_NANOS, balance_row, usage_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def own_stream(settings) -> redis.Redis:
    settings.USAGE_STREAM = f"usage:test-drain:{uuid.uuid4().hex[:8]}"
    conn = streams.client()
    for stream in streams.all_streams():
        streams.ensure_group(conn, stream)
    return conn


@pytest.fixture
def api_key(tenant, group) -> ApiKey:
    return ApiKey.issue(tenant=tenant, group=group, name="drain")[0]


def poisoned(api_key: ApiKey, request_id: str = "req_poisoned_nul_0001") -> UsageEvent:
    """An event as a web process from before the edge refused NUL queued it."""
    event = usage_event(api_key, request_id=request_id)
    return UsageEvent(**{**event.__dict__, "end_user": "a\x00b"})


def queue(conn: redis.Redis, *events: UsageEvent, entry_id: str = "*") -> list[bytes]:
    # One MULTI, so a drain reads them in one batch.
    pipe = conn.pipeline(transaction=True)
    for event in events:
        pipe.xadd(streams.stream_for(event.tenant_id), {FIELD: event.encode()}, id=entry_id)
    return pipe.execute()


def queued_ago(seconds: int) -> str:
    """The id of an entry queued ``seconds`` ago by Redis's clock (an entry
    id is its time in ms)."""
    return f"{int(time.time() * 1000) - seconds * 1000}-0"


def waiting(conn: redis.Redis) -> int:
    """Events still in the usage streams (unwritten or unacknowledged)."""
    return sum(conn.xlen(stream) for stream in streams.all_streams())


def reconcile_output() -> tuple[str, bool]:
    out = io.StringIO()
    try:
        call_command("reconcile", stdout=out)
    except CommandError:
        return out.getvalue(), False
    return out.getvalue(), True


def test_one_refused_event_is_dead_lettered_and_the_rest_of_its_batch_written(
    own_stream, api_key, tenant
):
    good = [usage_event(api_key, request_id=f"req_good_{n:04}") for n in range(4)]
    queue(own_stream, good[0], good[1], poisoned(api_key), good[2], good[3])

    drain.drain(budget_s=5)

    written = set(UsageRecord.objects.values_list("request_id", flat=True))
    assert written == {event.request_id for event in good}
    assert balance_row(tenant) == STARTING_BALANCE_NANOS - 4 * cost_nanos(9, SMALL_PRICE_NANOS)
    [letter] = dead_letters.buried(own_stream)
    assert letter.event.request_id == "req_poisoned_nul_0001"
    assert letter.event.end_user == "a\x00b"  # kept as it was, for the operator
    assert "NUL" in letter.reason or "0x00" in letter.reason
    assert waiting(own_stream) == 0  # nothing left pending


def test_an_event_for_a_deleted_key_is_dead_lettered_with_the_constraint_named(
    own_stream, api_key, tenant, group
):
    doomed = ApiKey.issue(tenant=tenant, group=group, name="doomed")[0]
    orphan = usage_event(doomed, request_id="req_deleted_key_0001")
    doomed.delete()
    queue(own_stream, orphan, usage_event(api_key, request_id="req_beside_orphan_01"))

    drain.drain(budget_s=5)

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == [
        "req_beside_orphan_01"
    ]
    [letter] = dead_letters.buried(own_stream)
    assert letter.event.request_id == "req_deleted_key_0001"
    assert "foreign key" in letter.reason


def test_postgresql_not_answering_dead_letters_nothing_and_the_batch_is_written_later(
    own_stream, api_key, settings
):
    settings.USAGE_CLAIM_IDLE_S = 1
    events = [usage_event(api_key, request_id=f"req_pg_busy_{n:04}") for n in range(3)]
    queue(own_stream, *events)
    # Another session holds the usage table, and ours gives up after 200 ms:
    # the same OperationalError as a database that does not answer.
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=False) as blocker:
        blocker.execute("LOCK TABLE billing_usagerecord IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 200")
        try:
            with pytest.raises(OperationalError):
                drain.drain(budget_s=5)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = 0")
        assert dead_letters.buried(own_stream) == []
        assert waiting(own_stream) == 3  # all still waiting
        blocker.rollback()

    # Claimed by the failed drain and never acknowledged: taken over once idle.
    time.sleep(settings.USAGE_CLAIM_IDLE_S + 0.1)
    drain.drain(budget_s=5)

    assert UsageRecord.objects.count() == 3
    assert waiting(own_stream) == 0
    assert dead_letters.buried(own_stream) == []


# --- reconcile and the metric ------------------------------------------------------------


def test_reconcile_names_a_dead_lettered_event_and_exits_1(own_stream, api_key):
    queue(own_stream, poisoned(api_key), usage_event(api_key, request_id="req_fine_00001"))
    drain.drain(budget_s=5)

    output, clean = reconcile_output()

    assert not clean
    assert "dead-lettered: req_poisoned_nul_0001" in output
    assert "req_fine_00001" not in output
    assert "dead_letters=1" in output


def test_reconcile_names_an_event_pending_past_the_bound_and_exits_1(own_stream, api_key, settings):
    settings.USAGE_PENDING_BOUND_S = 60
    queue(
        own_stream,
        usage_event(api_key, request_id="req_stuck_00001"),
        entry_id=queued_ago(300),
    )
    queue(own_stream, usage_event(api_key, request_id="req_recent_0001"))

    output, clean = reconcile_output()

    assert not clean
    assert "overdue: req_stuck_00001" in output
    assert "req_recent_0001" not in output
    [(request_id, age_s)] = backlog.pending_ages_s(own_stream, older_than_s=60)
    assert request_id == "req_stuck_00001"
    assert 290 <= age_s <= 400


def test_reconcile_is_clean_when_recent_events_are_only_queued(own_stream, api_key):
    queue(own_stream, usage_event(api_key, request_id="req_just_queued_1"))

    output, clean = reconcile_output()

    assert clean, output
    assert "queued_events=1" in output


def metric(name: str) -> float:
    body, _content_type = metrics.exposition()
    for line in body.decode().splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_the_metric_gives_the_age_of_the_oldest_pending_event(own_stream, api_key):
    assert metric("relay_usage_oldest_pending_seconds") == 0
    queue(
        own_stream,
        usage_event(api_key, request_id="req_old_0000001"),
        entry_id=queued_ago(120),
    )
    queue(own_stream, usage_event(api_key, request_id="req_new_0000001"))

    assert 115 <= metric("relay_usage_oldest_pending_seconds") <= 200

    drain.drain(budget_s=5)
    assert metric("relay_usage_oldest_pending_seconds") == 0


def test_the_metric_counts_dead_letters(own_stream, api_key):
    queue(own_stream, poisoned(api_key))
    drain.drain(budget_s=5)

    assert metric("relay_usage_dead_letters") == 1


# --- the operator's command --------------------------------------------------------------


def dead_letters_command(*args: str) -> str:
    out = io.StringIO()
    call_command("dead_letters", *args, stdout=out)
    return out.getvalue()


def test_an_operator_lists_requeues_and_the_drain_writes_a_dead_letter(own_stream, api_key, tenant):
    # Refused once for a cause since fixed (here: buried by hand).
    event = usage_event(api_key, request_id="req_requeued_00001")
    [entry] = queue(own_stream, event)
    dead_letters.bury(
        own_stream,
        entry,
        event,
        None,
        reason="a cause since fixed",
        stream=streams.stream_for(event.tenant_id),
    )

    listing = dead_letters_command()
    assert "req_requeued_00001" in listing and "a cause since fixed" in listing
    assert reconcile_output()[1] is False

    [letter] = dead_letters.buried(own_stream)
    assert "requeued: 1" in dead_letters_command("--requeue", letter.entry_id)
    drain.drain(budget_s=5)

    [record] = UsageRecord.objects.all()
    assert record.request_id == "req_requeued_00001"
    assert dead_letters.buried(own_stream) == []
    assert reconcile_output()[1] is True


def test_an_operator_discards_only_the_dead_letters_named(own_stream, api_key):
    queue(
        own_stream, poisoned(api_key, "req_poison_one_01"), poisoned(api_key, "req_poison_two_01")
    )
    drain.drain(budget_s=5)
    first, second = dead_letters.buried(own_stream)

    assert "discarded: 1" in dead_letters_command("--discard", first.entry_id)

    assert [letter.entry_id for letter in dead_letters.buried(own_stream)] == [second.entry_id]
    with pytest.raises(CommandError, match="no such dead letter"):
        dead_letters_command("--requeue", "1-1")


# --- an entry that holds no usage event (issue 17) ---------------------------------------


def garbage(api_key: ApiKey) -> dict[str, dict]:
    """Stream entries no web process would write, each with what the drain
    should say of it."""
    fields = usage_event(api_key, request_id="req_garbage_00001").__dict__
    wrong_type = orjson.dumps({**fields, "tenant_id": "seven"})
    missing = orjson.dumps({k: v for k, v in fields.items() if k != "tokens"})
    return {
        "not JSON": {"entry": {FIELD: b"\xff{not json"}, "reason": "not JSON"},
        "a JSON list": {"entry": {FIELD: b"[1, 2]"}, "reason": "not a JSON object"},
        "a field missing": {"entry": {FIELD: missing}, "reason": "fields missing: tokens"},
        "a value of the wrong type": {"entry": {FIELD: wrong_type}, "reason": "tenant_id is str"},
        "a bool for a count": {
            "entry": {FIELD: orjson.dumps({**fields, "tokens": True})},
            "reason": "tokens is bool",
        },
        "no event field": {"entry": {"x": b"1"}, "reason": "no 'e' field"},
        "a charge that is no number": {
            "entry": {FIELD: orjson.dumps(fields), FIELD_CHARGE: b"lots"},
            "reason": "charge b'lots' is not a number",
            # Its event decodes: the dead letter names its request and tenant.
            "names": f"req_garbage_00001 tenant_id={api_key.tenant_id}",
        },
    }


@pytest.mark.parametrize(
    "kind",
    [
        "not JSON",
        "a JSON list",
        "a field missing",
        "a value of the wrong type",
        "a bool for a count",
        "no event field",
        "a charge that is no number",
    ],
)
def test_an_undecodable_entry_is_dead_lettered_and_its_stream_drained(
    own_stream, api_key, tenant, kind
):
    case = garbage(api_key)[kind]
    stream = streams.stream_for(api_key.tenant_id)
    good = [usage_event(api_key, request_id=f"req_beside_garbage_{n}") for n in range(4)]
    pipe = own_stream.pipeline(transaction=True)  # one batch: garbage amid good events
    for event in good[:2]:
        pipe.xadd(stream, {FIELD: event.encode()})
    pipe.xadd(stream, case["entry"])
    for event in good[2:]:
        pipe.xadd(stream, {FIELD: event.encode()})
    garbage_entry = pipe.execute()[2]
    # Before the drain, reconcile counts it as queued rather than failing on it.
    assert "queued_events=5" in reconcile_output()[0]

    drain.drain(budget_s=5)

    written = set(UsageRecord.objects.values_list("request_id", flat=True))
    assert written == {event.request_id for event in good}
    assert balance_row(tenant) == STARTING_BALANCE_NANOS - 4 * cost_nanos(9, SMALL_PRICE_NANOS)
    assert waiting(own_stream) == 0
    [letter] = dead_letters.buried(own_stream)
    names = case.get("names", "(undecodable) tenant_id=None")
    assert f"{letter.request_id} tenant_id={letter.tenant_id}" == names
    assert letter.reason.startswith("undecodable: ")
    assert case["reason"] in letter.reason
    # Kept as it was queued, naming the entry it came from.
    assert own_stream.xrange(letter.stream)[0][1][b"entry"] == garbage_entry
    assert {k.decode(): v for k, v in letter.fields.items()} == {
        k: v if isinstance(v, bytes) else v.encode() for k, v in case["entry"].items()
    }
    output, clean = reconcile_output()
    assert not clean
    assert f"dead-lettered: {names} charged_nanos=0 entry={letter.entry_id}" in output
    assert case["reason"] in output
    listing = dead_letters_command()
    assert letter.entry_id in listing and case["reason"] in listing
    assert "dead-lettered: 1" in listing


def test_a_requeued_undecodable_entry_goes_back_as_it_was_and_is_set_aside_again(
    own_stream, api_key
):
    stream = streams.stream_for(api_key.tenant_id)
    own_stream.xadd(stream, {FIELD: b"oops", FIELD_CHARGE: 20})
    drain.drain(budget_s=5)
    [letter] = dead_letters.buried(own_stream)
    assert letter.charged_live_nanos == 20

    dead_letters_command("--requeue", letter.entry_id)
    [(_id, fields)] = own_stream.xrange(stream)
    assert fields == {FIELD.encode(): b"oops", FIELD_CHARGE.encode(): b"20"}
    drain.drain(budget_s=5)

    [again] = dead_letters.buried(own_stream)
    assert again.fields == letter.fields
    assert waiting(own_stream) == 0
