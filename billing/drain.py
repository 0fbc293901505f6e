"""Draining the usage streams into PostgreSQL, one refused event never
holding up the others.

A batch is written in one transaction. When PostgreSQL refuses it for its
data (a DataError such as a NUL byte in a text, an IntegrityError such as a
key deleted before its last event was written), the batch is retried event
by event: each event refused again on its own goes to the dead-letter stream
with PostgreSQL's reason (billing/dead_letters.py), every other one is
written. An error that is not the data's (PostgreSQL down: OperationalError)
dead-letters nothing: the task fails, the batch stays pending and is claimed
again once PostgreSQL answers.
"""

from __future__ import annotations

import logging
import random
import time

import redis
from django.conf import settings
from django.db import DataError, IntegrityError

from billing import dead_letters, metrics, streams
from billing.usage import record_usage

log = logging.getLogger(__name__)

# Errors that say "this data cannot be stored", as opposed to "the database
# cannot store anything right now".
REFUSED = (DataError, IntegrityError)

Batch = list[streams.Entry]


def drain(*, budget_s: float) -> int:
    """Write the records of the events waiting in the usage stream, batch by
    batch, for at most about ``budget_s``; the number of records written.

    Each batch commits its records before its entries are acknowledged, so a
    worker killed in between leaves them pending, to be claimed again and
    skipped as already written.
    """
    conn = streams.client()
    names = streams.all_streams()
    # Each drain starts at a stream of its own: two workers on one stream at
    # once (the same tenants) wait on each other's balance and rollup rows.
    start = random.randrange(len(names))
    names = names[start:] + names[:start]
    for stream in names:
        streams.ensure_group(conn, stream)
    written = 0
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        drained = 0
        for stream in names:  # one batch from each shard's stream in turn
            claimed = streams.claim_batch(conn, stream, count=settings.USAGE_BATCH_SIZE)
            drained += len(claimed)
            for entry_id, fields, reason in claimed.undecodable:
                log.error(
                    "usage stream entry %s moved to the dead-letter stream: %s", entry_id, reason
                )
                dead_letters.bury_undecodable(conn, entry_id, fields, reason=reason, stream=stream)
                metrics.USAGE_DEAD_LETTERED.inc()
            batch = claimed.entries
            if not batch:
                continue
            written += write_batch(conn, stream, batch)
            streams.acknowledge(conn, stream, [entry_id for entry_id, _event, _charge in batch])
            now_ms = time.time() * 1000
            for _id, event, _charge in batch:
                metrics.USAGE_LAG.observe(max(now_ms - event.created_ms, 0) / 1000)
        if not drained:
            break
    return written


def write_batch(conn: redis.Redis, stream: str, batch: Batch) -> int:
    """Write a claimed batch; bury the events PostgreSQL refuses on their own.

    Debits from the stream were already taken from the live balance by the
    settle script that queued them (hence ``live_applied``).
    """
    try:
        written = len(record_usage([(e, c) for _id, e, c in batch], live_applied=True))
    except REFUSED as exc:
        log.warning(
            "usage batch of %s refused (%s); writing it event by event", len(batch), _reason(exc)
        )
    else:
        metrics.USAGE_WRITTEN.inc(written)
        return written
    written = 0
    for entry_id, event, charge in batch:
        try:
            new = len(record_usage([(event, charge)], live_applied=True))
        except REFUSED as exc:
            reason = _reason(exc)
            log.error(
                "usage event %s refused (%s); moved to the dead-letter stream",
                event.request_id,
                reason,
            )
            dead_letters.bury(conn, entry_id, event, charge, reason=reason, stream=stream)
            metrics.USAGE_DEAD_LETTERED.inc()
            continue
        metrics.USAGE_WRITTEN.inc(new)
        written += new
    return written


def _reason(exc: Exception) -> str:
    # psycopg's message (exc.__cause__) names the column and the rule; its
    # first line is enough, the rest repeats the offending values.
    return str(exc.__cause__ or exc).strip().splitlines()[0]
