"""Reading reports from a PostgreSQL replica (``DATABASE_REPLICA_URL``).

Reports (the consoles' dashboards and usage pages, the operator's reports)
read rollups and usage records that a replica has a moment later; they ask
for ``reports_db()`` explicitly. Everything else, and above all the money
path (balances, ledger, usage writes, reconcile), reads and writes the
primary: the router below never sends an implicit read to the replica, so
a read-your-write of money can never see a lagging copy.
"""

from __future__ import annotations

from django.conf import settings

REPLICA = "replica"


def reports_db() -> str:
    """The database alias reports read from: the replica when there is one."""
    return REPLICA if REPLICA in settings.DATABASES else "default"


class PrimaryUnlessAskedRouter:
    """Every read and write goes to the primary unless the code names the
    replica (``.using(reports_db())``); migrations run on the primary only."""

    def db_for_read(self, model, **hints) -> str:
        return "default"

    def db_for_write(self, model, **hints) -> str:
        return "default"

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replica is a copy of the same database

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == "default"
