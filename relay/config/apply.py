"""Applying a loaded config file to the database, in one transaction."""

from __future__ import annotations

from django.db import connection, transaction

from relay.config import channels, groups, keys, tenants
from relay.config.loader import Config

# Any constant will do; it only has to be the same for every apply_config run.
_APPLY_LOCK_ID = 7_265_108_097_121


def apply_config(*, config: Config) -> list[str]:
    """Create what is missing and update what differs; one report line per object.

    Runs in one transaction: a ConfigError raised halfway (a channel naming a
    group that exists nowhere) rolls back everything already written. Nothing
    absent from the file is deleted, except a group's or channel's model rows,
    which the file lists in full.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Two deploy jobs applying at once would both see "missing" and both
            # insert; the second would die on a unique constraint mid-way.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPLY_LOCK_ID])
        lines = [
            groups.apply_base_price(model, nanos) for model, nanos in config.base_prices.items()
        ]
        lines += [groups.apply(spec) for spec in config.groups]
        lines += [channels.apply(spec) for spec in config.channels]
        lines += [tenants.apply(spec) for spec in config.tenants]
        lines += [keys.apply(spec) for spec in config.keys]
    return lines
