"""billing_usagerecord becomes a table partitioned by month of ``created``
(billing/partitions.py), keeping its app label, table name, columns, ids and
rows. The request id is unique together with ``created`` from now on (a
partitioned table's unique constraints include its partition key).

The rows are copied in one transaction: on a big table, run it in a
maintenance window (docs/scaling.md, "PostgreSQL"). Reversible the same way
(``unpartition``), unless two months hold one request id, which a plain
table's unique request id refuses (tests/billing/test_partition_migration.py).
"""

import datetime as dt

from django.db import migrations, models

TABLE = "billing_usagerecord"
OLD = "billing_usagerecord_unpartitioned"
NEW = "billing_usagerecord_partitioned"


def partition(apps, schema_editor):
    from billing import partitions

    with schema_editor.connection.cursor() as cursor:
        # The indexes to rebuild on the new table, as Django named them.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)", [TABLE]
        )
        indexes = cursor.fetchall()
        cursor.execute(
            f"CREATE TABLE {NEW} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING IDENTITY) "
            "PARTITION BY RANGE (created)"
        )
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        cursor.execute(f"ALTER TABLE {NEW} RENAME TO {TABLE}")
        for constraint in ("usage_request_id_unique", f"{TABLE}_pkey"):
            cursor.execute(f"ALTER INDEX IF EXISTS {constraint} RENAME TO {constraint}_old")
        cursor.execute(
            f"""
            ALTER TABLE {TABLE}
              ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created),
              ADD CONSTRAINT usage_request_id_unique UNIQUE (request_id, created),
              ADD CONSTRAINT usage_cost_not_negative CHECK (cost_nanos >= 0),
              ADD CONSTRAINT usage_tenant_fk FOREIGN KEY (tenant_id)
                REFERENCES accounts_tenant (id) DEFERRABLE INITIALLY DEFERRED,
              ADD CONSTRAINT usage_api_key_fk FOREIGN KEY (api_key_id)
                REFERENCES accounts_apikey (id) DEFERRABLE INITIALLY DEFERRED,
              ADD CONSTRAINT usage_group_fk FOREIGN KEY (group_id)
                REFERENCES accounts_group (id) DEFERRABLE INITIALLY DEFERRED
            """
        )
        cursor.execute(f"CREATE TABLE {partitions.DEFAULT} PARTITION OF {TABLE} DEFAULT")
        cursor.execute(f"SELECT min(created) FROM {OLD}")
        oldest = cursor.fetchone()[0]
    today = dt.datetime.now(dt.UTC).date()
    month = partitions.month_of(oldest or today)
    while month <= partitions.month_of(today):
        partitions.create_month(month)
        month = partitions.next_month(month)
    partitions.ensure_ahead(today)
    with schema_editor.connection.cursor() as cursor:
        # Checked row by row now: deferred foreign-key checks left pending
        # would forbid the CREATE INDEX below in this transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        cursor.execute(f"DROP TABLE {OLD}")
        for _name, definition in indexes:
            # Partitioned indexes: each partition gets its own.
            cursor.execute(definition.replace(f" ON public.{TABLE} ", f" ON {TABLE} "))
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), "
            f"coalesce((SELECT max(id) FROM {TABLE}), 0) + 1, false)"
        )


def unpartition(apps, schema_editor):
    """Back to one plain table, as 0007 left it: rows, ids and indexes kept;
    the request id unique on its own again (refused if two months share one)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)", [TABLE]
        )
        indexes = cursor.fetchall()
        cursor.execute(
            f"CREATE TABLE {OLD} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {NEW}")
        cursor.execute(f"ALTER TABLE {OLD} RENAME TO {TABLE}")
        for constraint in ("usage_request_id_unique", f"{TABLE}_pkey"):
            cursor.execute(f"ALTER INDEX IF EXISTS {constraint} RENAME TO {constraint}_old")
        cursor.execute(
            f"""
            ALTER TABLE {TABLE}
              ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id),
              ADD CONSTRAINT usage_request_id_unique UNIQUE (request_id),
              ADD CONSTRAINT usage_cost_not_negative CHECK (cost_nanos >= 0),
              ADD CONSTRAINT usage_tenant_fk FOREIGN KEY (tenant_id)
                REFERENCES accounts_tenant (id) DEFERRABLE INITIALLY DEFERRED,
              ADD CONSTRAINT usage_api_key_fk FOREIGN KEY (api_key_id)
                REFERENCES accounts_apikey (id) DEFERRABLE INITIALLY DEFERRED,
              ADD CONSTRAINT usage_group_fk FOREIGN KEY (group_id)
                REFERENCES accounts_group (id) DEFERRABLE INITIALLY DEFERRED
            """
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # as in partition()
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {NEW}")
        cursor.execute(f"DROP TABLE {NEW}")  # and its partitions
        for _name, definition in indexes:
            # A partitioned table's indexes read "ON ONLY"; a plain one's do not.
            cursor.execute(definition.replace(f" ON ONLY public.{TABLE} ", f" ON {TABLE} "))
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), "
            f"coalesce((SELECT max(id) FROM {TABLE}), 0) + 1, false)"
        )


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("billing", "0007_redemption_codes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="usagerecord",
                                            name="usage_request_id_unique"),
                migrations.AddConstraint(
                    model_name="usagerecord",
                    constraint=models.UniqueConstraint(
                        fields=("request_id", "created"), name="usage_request_id_unique"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(partition, unpartition)],
        ),
    ]
