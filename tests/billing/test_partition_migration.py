"""Migration billing 0008 on a table with rows: the plain usage table of 0007
becomes one partitioned by month, every row kept with its values and id and
put in its month's table, the id sequence carried on; and back again."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billing import partitions
from billing.usage import record_usage
from tests.helpers import funded_key, usage_event

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("billing", "0007_redemption_codes")
PARTITIONED = ("billing", "0008_usage_records_partitioned_by_month")
COLUMNS = "id, request_id, tenant_id, api_key_id, model, tokens, cost_nanos, end_user, created"


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def rows() -> dict[int, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM billing_usagerecord")  # noqa: S608 (constants)
        return {row[0]: row for row in cursor.fetchall()}


def kind_of_table() -> str:
    """'p' for a partitioned table, 'r' for a plain one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'billing_usagerecord'")
        return cursor.fetchone()[0]


def indexes() -> dict[str, str]:
    """The table's indexes: name and definition (ON ONLY, a partitioned one's, read as ON)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'billing_usagerecord'"
        )
        return {name: d.replace(" ON ONLY ", " ON ") for name, d in cursor.fetchall()}


def table_of(record_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM billing_usagerecord WHERE id = %s", [record_id]
        )
        return cursor.fetchone()[0]


@pytest.fixture
def at_0007():
    migrate(BEFORE)
    try:
        yield
    finally:
        # The session's other tests run on the latest schema.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_0008_keeps_every_row_in_its_months_table_and_goes_back(group, at_0007):
    assert kind_of_table() == "r"
    plain_indexes = indexes()
    _tenant, api_key, _secret = funded_key(group, requests=10)
    months = [dt.datetime(2026, m, 15, 12, tzinfo=dt.UTC) for m in (9, 10, 11)]
    with connection.cursor() as cursor:
        for n, created in enumerate(months * 2):
            cursor.execute(
                "INSERT INTO billing_usagerecord (request_id, tenant_id, api_key_id, group_id, "
                "model, served_model, input_count, counted_tokens, tokens, cached_items, "
                "cached_tokens, cached_price_per_mtok_nanos, token_source, "
                "price_per_mtok_nanos, cost_nanos, latency_ms, status, end_user, created) "
                "VALUES (%s, %s, %s, %s, 'text-embedding-3-small', '', 1, 9, %s, 0, 0, 0, "
                "'upstream', 20000000, %s, 12, 'served', %s, %s)",
                [
                    f"req_before_0008_{n}",
                    api_key.tenant_id,
                    api_key.pk,
                    api_key.group_id,
                    9 + n,
                    180 * (n + 1),
                    f"user {n}",
                    created,
                ],
            )
    before = rows()
    assert len(before) == 6

    migrate(PARTITIONED)

    assert kind_of_table() == "p"
    assert rows() == before  # every row, its id and its values
    # Every index but the two constraints' kept as it was (those take created).
    partitioned = indexes()
    assert partitioned.keys() == plain_indexes.keys()
    unique = {"billing_usagerecord_pkey", "usage_request_id_unique"}
    assert {k: v for k, v in partitioned.items() if k not in unique} == {
        k: v for k, v in plain_indexes.items() if k not in unique
    }
    for record_id, row in before.items():
        assert table_of(record_id) == partitions.name_of(partitions.month_of(row[-1]))
    # The identity goes on from the copied ids.
    [new] = record_usage([(usage_event(api_key), None)], live_applied=True)
    [(new_id,)] = [(record_id,) for record_id, row in rows().items() if row[1] == new.request_id]
    assert new_id > max(before)

    migrate(BEFORE)

    assert kind_of_table() == "r"
    assert indexes() == plain_indexes
    after = rows()
    assert {k: v for k, v in after.items() if k in before} == before
    assert new_id in after
    assert not partitions.partitions()  # the monthly tables went with it
