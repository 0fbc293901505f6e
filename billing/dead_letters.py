"""Usage events PostgreSQL refused, kept for an operator.

An event goes here only when it was refused on its own (billing/drain.py
retries a refused batch event by event first), with the reason PostgreSQL
gave. The live balance already charged it, so it is money taken but not yet
in the books: ``manage.py reconcile`` names every one and exits 1 until an
operator requeues it (after fixing its cause) or discards it
(``manage.py dead_letters``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from billing import streams
from billing.usage_events import CONSUMER_GROUP, FIELD, FIELD_CHARGE, UsageEvent

REASON = "reason"
# The usage stream's entry the event came from (and so when it was queued).
ENTRY = "entry"
REASON_MAX_CHARS = 500


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str  # its id in the dead-letter stream
    stream: str  # that dead-letter stream (one per usage stream)
    event: UsageEvent
    charge_nanos: int | None
    reason: str

    @property
    def charged_live_nanos(self) -> int:
        return self.charge_nanos or 0


def bury(
    conn: redis.Redis,
    entry_id: bytes,
    event: UsageEvent,
    charge: int | None,
    *,
    reason: str,
    stream: str,
) -> None:
    """Move one usage-stream entry to the dead-letter stream.

    The copy, the acknowledgement and the deletion are one MULTI: a worker
    killed in between leaves the event either pending (claimed again, tried
    again) or buried, never both, so it is never buried twice.
    """
    fields: dict[Any, Any] = {
        FIELD: event.encode(),
        REASON: reason[:REASON_MAX_CHARS],
        ENTRY: entry_id,
    }
    if charge is not None:
        fields[FIELD_CHARGE] = charge
    pipe = conn.pipeline(transaction=True)
    pipe.xadd(streams.dead_letter_stream(stream), fields)
    pipe.xack(stream, CONSUMER_GROUP, entry_id)
    pipe.xdel(stream, entry_id)
    pipe.execute()


def _decoded(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    charge = fields.get(FIELD_CHARGE.encode())
    return DeadLetter(
        entry_id=entry_id.decode(),
        stream=stream,
        event=UsageEvent.decode(fields[FIELD.encode()]),
        charge_nanos=int(charge) if charge is not None else None,
        reason=fields.get(REASON.encode(), b"").decode(errors="replace"),
    )


def buried(conn: redis.Redis) -> list[DeadLetter]:
    """Every dead letter of every usage stream, oldest first."""
    letters = []
    for stream in streams.all_streams():
        dead = streams.dead_letter_stream(stream)
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], conn.xrange(dead))
        letters += [_decoded(dead, entry_id, fields) for entry_id, fields in entries]
    return sorted(letters, key=lambda letter: _queued(letter.entry_id))


def _queued(entry_id: str) -> tuple[int, int]:
    milliseconds, _dash, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def count(conn: redis.Redis) -> int:
    """How many dead letters wait, over every usage stream."""
    return sum(conn.xlen(streams.dead_letter_stream(s)) for s in streams.all_streams())


def _select(conn: redis.Redis, entry_ids: list[str] | None) -> list[DeadLetter]:
    letters = buried(conn)
    if entry_ids is None:
        return letters
    wanted = set(entry_ids)
    unknown = wanted - {letter.entry_id for letter in letters}
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    return [letter for letter in letters if letter.entry_id in wanted]


def requeue(conn: redis.Redis, entry_ids: list[str] | None = None) -> list[DeadLetter]:
    """Put dead letters (all, or those named) back on the usage stream, as
    they were queued, for the drain to try again. Writing is idempotent by
    request id, so requeueing an event that was written meanwhile is harmless."""
    letters = _select(conn, entry_ids)
    for letter in letters:
        fields: dict[Any, Any] = {FIELD: letter.event.encode()}
        if letter.charge_nanos is not None:
            fields[FIELD_CHARGE] = letter.charge_nanos
        pipe = conn.pipeline(transaction=True)  # one MULTI: requeued once, or not at all
        pipe.xadd(streams.source_stream(letter.stream), fields)
        pipe.xdel(letter.stream, letter.entry_id)
        pipe.execute()
    return letters


def discard(conn: redis.Redis, entry_ids: list[str]) -> list[DeadLetter]:
    """Drop dead letters an operator settled by hand (a refund, a manual
    ledger entry). Only named ones: there is no "discard all"."""
    letters = _select(conn, entry_ids)
    for letter in letters:
        conn.xdel(letter.stream, letter.entry_id)
    return letters
