"""Usage records in monthly partitions (PostgreSQL declarative partitioning).

``billing_usagerecord`` is partitioned by range of ``created``: one table per
UTC month (``billing_usagerecord_2026_12``) and a default partition that only
catches what falls outside them (it should stay empty). A worker task creates
the months ahead (``ensure_ahead``, daily), so inserts never wait on DDL, and
``python manage.py usage_partitions --keep-months N`` drops the months past
retention, after writing each to a gzipped CSV first if asked. The daily
rollups (DailyUsage, ChannelDaily) are other tables: reports over dropped
months still add up.

A record's request id is unique together with ``created`` (a partitioned
table's unique constraints must include its partition key). Every writer
takes ``created`` from the usage event, so a redelivered event has the same
pair and is refused as before.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import re
from pathlib import Path

from django.db import connection, transaction

log = logging.getLogger(__name__)

TABLE = "billing_usagerecord"
DEFAULT = f"{TABLE}_default"
MONTHS_AHEAD = 3
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def month_of(day: dt.date | dt.datetime) -> dt.date:
    return dt.date(day.year, day.month, 1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def name_of(month: dt.date) -> str:
    return f"{TABLE}_{month:%Y_%m}"


def partitions() -> list[tuple[str, dt.date, dt.date]]:
    """(table, first day, first day after) of every monthly partition, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
            FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname = %s
            """,
            [TABLE],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        match = _BOUNDS.search(bound or "")
        if match:  # the default partition has no bounds
            lower, upper = (dt.date.fromisoformat(value[:10]) for value in match.groups())
            found.append((name, lower, upper))
    return sorted(found, key=lambda row: row[1])


def create_month(month: dt.date) -> bool:
    """Create the month's partition unless it exists; True when created.

    Any rows of that month already in the default partition are moved into
    it in the same transaction (attaching a range the default holds rows of
    is refused otherwise)."""
    name, lower, upper = name_of(month), month.isoformat(), next_month(month).isoformat()
    if any(existing == name for existing, _lower, _upper in partitions()):
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        # A lock first, so that two workers creating the same month queue up.
        cursor.execute(f"LOCK TABLE {TABLE} IN SHARE UPDATE EXCLUSIVE MODE")
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return False
        # The parent's CHECK constraints too: ATTACH refuses a table without them.
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            # Our own table names and dates, never input.
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE created >= %s AND created < %s "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [lower, upper],
        )
        if cursor.rowcount:
            log.warning(
                "moved %s usage records of %s out of the default partition", cursor.rowcount, month
            )
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
        )
    return True


def ensure_ahead(today: dt.date | None = None, *, months: int = MONTHS_AHEAD) -> list[str]:
    """This month's partition and the next ``months``; the names created."""
    month = month_of(today or dt.datetime.now(dt.UTC).date())
    created = []
    for _ in range(months + 1):
        if create_month(month):
            created.append(name_of(month))
        month = next_month(month)
    return created


def drop_before(
    cutoff: dt.date, *, archive_dir: Path | None = None, dry_run: bool = False
) -> list[str]:
    """Drop every monthly partition that ends on or before ``cutoff``
    (a first of month), archiving each to ``archive_dir`` first when given."""
    dropped = []
    for name, _lower, upper in partitions():
        if upper > cutoff:
            continue
        if not dry_run:
            if archive_dir is not None:
                archive(name, archive_dir / f"{name}.csv.gz")
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
                cursor.execute(f"DROP TABLE {name}")
        dropped.append(name)
    return dropped


def archive(name: str, path: Path) -> int:
    """The partition as gzipped CSV with a header (PostgreSQL's COPY)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with gzip.open(path, "wb") as out, connection.cursor() as cursor:
        # cursor.cursor: psycopg's own, which streams COPY.
        with cursor.cursor.copy(f"COPY {name} TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                out.write(chunk)
                written += len(chunk)
    return written
