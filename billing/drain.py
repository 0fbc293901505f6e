"""Draining the usage streams into PostgreSQL, one refused event never
holding up the others.

A batch is written in one transaction. When PostgreSQL refuses it for its
data (a DataError such as a NUL byte in a text, an IntegrityError such as a
key deleted before its last event was written), the batch is retried in
halves, down to single events: each event refused on its own goes to the
dead-letter stream with PostgreSQL's reason (billing/dead_letters.py), every
other one is written. An entry that holds no usage event at all goes there
as soon as it is claimed. An error that is not the data's (PostgreSQL down:
OperationalError) dead-letters nothing: the task fails, the batch stays
pending and is claimed again once PostgreSQL answers.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from django.conf import settings
from django.db import DataError, IntegrityError

from billing import dead_letters, metrics, streams
from billing.usage import record_usage

log = logging.getLogger(__name__)

# Errors that say "this data cannot be stored", as opposed to "the database
# cannot store anything right now".
REFUSED = (DataError, IntegrityError)


def drain(*, budget_s: float) -> int:
    """Write the records of the events waiting in the usage streams, round by
    round, for at most about ``budget_s``; the number of records written.

    A round claims up to USAGE_BATCH_SIZE events from each stream and writes
    them in one transaction: the fixed costs of a batch (its commit, the
    balances locked, the round trips) are paid once for every stream's
    events rather than for each stream's. The next round is claimed while
    one is written, so Redis's and PostgreSQL's waits overlap.

    Each round commits its records before its entries are acknowledged, so
    a worker killed in between leaves them pending, to be claimed again and
    skipped as already written.
    """
    conn = streams.client()
    names = streams.all_streams()
    for stream in names:
        streams.ensure_group(conn, stream)
    count = settings.USAGE_BATCH_SIZE
    written = 0
    deadline = time.monotonic() + budget_s
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-claim") as ahead:
        claimed = streams.claim(conn, names, count=count)
        while claimed:
            upcoming = (
                ahead.submit(streams.claim, conn, names, count=count)
                if time.monotonic() < deadline
                else None
            )
            written += write_round(conn, claimed)
            claimed = upcoming.result() if upcoming else streams.Claimed()
    return written


def write_round(conn: redis.Redis, claimed: streams.Claimed) -> int:
    """Write one round's events, set aside its undecodable entries, and
    acknowledge it."""
    for stream, entry_id, fields, reason in claimed.undecodable:
        log.error("usage stream entry %s moved to the dead-letter stream: %s", entry_id, reason)
        dead_letters.bury_entry(conn, entry_id, fields, reason=reason, stream=stream)
        metrics.USAGE_DEAD_LETTERED.inc()
    batch = claimed.entries
    if not batch:
        return 0
    written = write_batch(conn, batch)
    streams.acknowledge(conn, batch)
    # Once a round, not once an event: in multiprocess mode each observation
    # costs a tenth of writing the record.
    oldest_ms = min(entry.event.created_ms for entry in batch)
    metrics.USAGE_LAG.observe(max(time.time() * 1000 - oldest_ms, 0) / 1000)
    return written


def write_batch(conn: redis.Redis, batch: list[streams.Entry]) -> int:
    """Write a claimed batch; bury the events PostgreSQL refuses on their own.

    A refused batch is split in halves, each written again (a refused half
    split again) down to single events: one bad event among a round's
    thousands costs some twenty transactions, not one per event.

    Debits from the stream were already taken from the live balance by the
    settle script that queued them (hence ``live_applied``).
    """
    try:
        written = len(record_usage([(e.event, e.charge) for e in batch], live_applied=True))
    except REFUSED as exc:
        reason = _reason(exc)
        if len(batch) > 1:
            log.warning("usage batch of %s refused (%s); splitting it", len(batch), reason)
            half = len(batch) // 2
            return write_batch(conn, batch[:half]) + write_batch(conn, batch[half:])
        [(stream, entry_id, event, charge)] = batch
        log.error(
            "usage event %s refused (%s); moved to the dead-letter stream",
            event.request_id,
            reason,
        )
        dead_letters.bury(conn, entry_id, event, charge, reason=reason, stream=stream)
        metrics.USAGE_DEAD_LETTERED.inc()
        return 0
    metrics.USAGE_WRITTEN.inc(written)
    return written


def _reason(exc: Exception) -> str:
    # psycopg's message (exc.__cause__) names the column and the rule; its
    # first line is enough, the rest repeats the offending values.
    return str(exc.__cause__ or exc).strip().splitlines()[0]
