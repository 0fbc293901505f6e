"""Writing usage records and their ledger debits, exactly once per request id."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import operator
from collections import defaultdict
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction

from billing import ledger
from billing.models import UsageRecord
from billing.usage_events import UsageEvent

log = logging.getLogger(__name__)


class Row(NamedTuple):
    """A usage record about to be written: the table's columns but the id
    (which its identity gives), in COPY's order. A plain tuple, not a
    UsageRecord: building a model instance cost the drain ~40 µs a record
    (docs/scaling.md)."""

    # Taken from the event as they are (_FROM_EVENT).
    request_id: str
    tenant_id: int
    api_key_id: int
    group_id: int
    channel_id: int | None
    model: str
    served_model: str
    input_count: int
    counted_tokens: int
    tokens: int
    cached_items: int
    cached_tokens: int
    cached_price_per_mtok_nanos: int
    token_source: str
    price_per_mtok_nanos: int
    latency_ms: int
    status: str
    # Worked out by _record.
    cost_nanos: int
    end_user: str
    created: dt.datetime


# One C call copies the event's fields into the row's first columns.
_FROM_EVENT = operator.attrgetter(*Row._fields[: Row._fields.index("cost_nanos")])


def _record(event: UsageEvent, charge: int | None) -> Row:
    if event.status != UsageRecord.Status.SERVED:
        cost = 0  # a request that was not served costs nothing
    elif charge is not None:
        cost = charge
    else:
        cost = event.cost_nanos
    return Row._make((*_FROM_EVENT(event), cost, event.end_user[:256], _created(event)))


def _created(event: UsageEvent) -> dt.datetime:
    return dt.datetime.fromtimestamp(event.created_ms / 1000, tz=dt.UTC)


_TABLE = UsageRecord._meta.db_table
_COPY_BINARY = f"COPY {_TABLE} ({', '.join(Row._fields)}) FROM STDIN (FORMAT BINARY)"
# A request id written before has its event's created, so only the
# partitions of the batch's span are searched.
_WRITTEN = (
    f"SELECT request_id FROM {_TABLE} "  # noqa: S608 (our own table's name)
    "WHERE request_id = ANY(%s) AND created BETWEEN %s AND %s"
)


def _copy(rows: list[Row]) -> None:
    """Insert with PostgreSQL's COPY: bulk_create spent ~200 µs of CPU per
    record preparing its INSERT (docs/scaling.md). A unique violation still
    raises Django's IntegrityError, for the race below."""
    if not rows:
        return
    with connection.cursor() as cursor, connection.wrap_database_errors:
        # Binary COPY: psycopg's C dumpers and PostgreSQL's binary input
        # spend less CPU a value than text's. It needs each column's type.
        types = _column_types()
        with cursor.cursor.copy(_COPY_BINARY) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


@functools.cache
def _column_types() -> list[int]:
    """The type oids of the table's columns, in Row's order: read once a
    process (built-in types' oids are the same in every database)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(Row._fields)} FROM {_TABLE} LIMIT 0")  # noqa: S608
        return [column.type_code for column in cursor.description]


def _written(request_ids: list[str], created: list[dt.datetime]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(_WRITTEN, [request_ids, min(created), max(created)])
        return {request_id for (request_id,) in cursor.fetchall()}


def _fit_to_balance(tenant_id: int, rows: list[Row], available: int) -> list[Row]:
    """Never debit below zero. The live balance already refused overdrafts, so
    this only bites if an operator's debit reached PostgreSQL before the live
    balance saw it; the shortfall is logged, not silently dropped."""
    owed = sum(r.cost_nanos for r in rows)
    if owed <= available:
        return rows
    log.error(
        "tenant %s owes %s nanos but holds %s: shortfall not billed", tenant_id, owed, available
    )
    excess = owed - available
    fitted = []
    for row in reversed(rows):
        cut = min(excess, row.cost_nanos)
        excess -= cut
        fitted.append(row._replace(cost_nanos=row.cost_nanos - cut) if cut else row)
    return fitted[::-1]


def record_usage(entries: list[tuple[UsageEvent, int | None]], *, live_applied: bool) -> list[Row]:
    """Write the records (and one debit per tenant) of events not written before.

    ``entries`` pairs each event with the amount the live balance charged
    for it (None: not charged live; bill tokens x price). ``live_applied``
    says whether the live balance already holds these debits.

    Idempotent: an event whose request id has a record already (a
    redelivery, or the same event queued twice) is skipped, so its debit is
    never taken twice. Two workers racing on one request id are settled by
    the unique constraint: the loser's transaction rolls back and retries.

    A batch costs the same few statements however many tenants it holds:
    the written check, the balances locked, the debits, the COPY, the rollups.
    """
    unique = {event.request_id: (event, charge) for event, charge in entries}
    if not unique:
        return []
    rows = [_record(event, charge) for event, charge in unique.values()]
    for _attempt in range(3):
        try:
            with transaction.atomic():
                existing = _written(list(unique), [row.created for row in rows])
                by_tenant: dict[int, list[Row]] = defaultdict(list)
                for row in rows:
                    if row.request_id not in existing:
                        by_tenant[row.tenant_id].append(row)
                balances = ledger.locked_balances(list(by_tenant))
                debits = []
                for tenant_id in sorted(by_tenant):
                    owed = _fit_to_balance(
                        tenant_id, by_tenant[tenant_id], balances.get(tenant_id, 0)
                    )
                    by_tenant[tenant_id] = owed
                    debits.append(
                        ledger.UsageDebit(
                            tenant_id=tenant_id,
                            amount_nanos=sum(r.cost_nanos for r in owed),
                            request_count=len(owed),
                            # A lone debit not yet live is keyed by its request
                            # (see billing.live.applied_key).
                            request_id=(
                                owed[0].request_id if not live_applied and len(owed) == 1 else ""
                            ),
                        )
                    )
                ledger.post_usage_debits(debits, live_applied=live_applied)
                new = [row for rows in by_tenant.values() for row in rows]
                _copy(new)
                roll_up(new)
                roll_up_channels([unique[row.request_id][0] for row in new])
                return new
        except IntegrityError as exc:
            if not _raced_on_request_id(exc):
                raise  # a bad event (say, its key was deleted): the caller sorts it out
            log.info("usage batch raced another writer; retrying")
    raise RuntimeError("usage batch kept conflicting with another writer")


def _raced_on_request_id(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    # PostgreSQL names the partition's own index (billing_usagerecord_2026_12_
    # request_id_created_key), not the partitioned table's constraint.
    return name == "usage_request_id_unique" or (
        name.startswith("billing_usagerecord_") and name.endswith("_request_id_created_key")
    )


_ROLL_UP = """
INSERT INTO billing_dailyusage
    (day, tenant_id, api_key_id, model, channel_id, requests, failed, tokens, cost_nanos)
VALUES %s
ON CONFLICT (day, tenant_id, api_key_id, model, channel_id) DO UPDATE SET
    requests = billing_dailyusage.requests + EXCLUDED.requests,
    failed = billing_dailyusage.failed + EXCLUDED.failed,
    tokens = billing_dailyusage.tokens + EXCLUDED.tokens,
    cost_nanos = billing_dailyusage.cost_nanos + EXCLUDED.cost_nanos
"""


def roll_up(records: list[Row]) -> None:
    """Add new records to the daily rollups (days in UTC), in the caller's
    transaction: a record is counted exactly when it is written."""
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in records:
        # created is in UTC already (_created).
        row = totals[(r.created.date(), r.tenant_id, r.api_key_id, r.model, r.channel_id)]
        row[0] += 1
        row[1] += r.status != UsageRecord.Status.SERVED
        row[2] += r.tokens if r.status == UsageRecord.Status.SERVED else 0
        row[3] += r.cost_nanos
    if not totals:
        return
    values = [(*group, *sums) for group, sums in sorted(totals.items(), key=lambda kv: str(kv[0]))]
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(_ROLL_UP % placeholders, [v for row in values for v in row])


_ROLL_UP_CHANNELS = """
INSERT INTO billing_channeldaily (day, channel_id, attempts, failures)
VALUES %s
ON CONFLICT (day, channel_id) DO UPDATE SET
    attempts = billing_channeldaily.attempts + EXCLUDED.attempts,
    failures = billing_channeldaily.failures + EXCLUDED.failures
"""


_EPOCH = dt.date(1970, 1, 1)


def roll_up_channels(events: list[UsageEvent]) -> None:
    """Count each event's upstream attempts per channel and UTC day."""
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for event in events:
        day = _EPOCH + dt.timedelta(days=event.created_ms // 86_400_000)
        for channel_id in event.failed_channel_ids:
            totals[(day, channel_id)][0] += 1
            totals[(day, channel_id)][1] += 1
        if event.channel_id is not None:
            totals[(day, event.channel_id)][0] += 1
    if not totals:
        return
    values = [(*key, *counts) for key, counts in sorted(totals.items())]
    placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(_ROLL_UP_CHANNELS % placeholders, [v for row in values for v in row])
