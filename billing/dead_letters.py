"""Usage events PostgreSQL refused, and stream entries that hold no usage
event, kept for an operator.

An event goes here only when it was refused on its own (billing/drain.py
retries a refused batch in halves, down to single events), with the reason PostgreSQL
gave; an entry the drain cannot decode (not JSON, a field missing, a value of
the wrong type) goes here at once, with what was wrong, as it was queued.
The live balance already charged it, so it is money taken but not yet in the
books: ``manage.py reconcile`` names every one and exits 1 until an
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
    event: UsageEvent | None  # None: the entry held no usage event (see reason)
    charged_live_nanos: int  # what the live balance charged for it (0: nothing)
    reason: str
    # The usage stream entry's own fields, as queued: what a requeue puts back.
    fields: dict[bytes, bytes]

    @property
    def request_id(self) -> str:
        return self.event.request_id if self.event else "(undecodable)"

    @property
    def tenant_id(self) -> int | None:
        return self.event.tenant_id if self.event else None


def bury(
    conn: redis.Redis,
    entry_id: bytes,
    event: UsageEvent,
    charge: int | None,
    *,
    reason: str,
    stream: str,
) -> None:
    """Move one usage-stream entry PostgreSQL refused to the dead-letter stream."""
    fields: dict[Any, Any] = {FIELD: event.encode()}
    if charge is not None:
        fields[FIELD_CHARGE] = charge
    bury_entry(conn, entry_id, fields, reason=reason, stream=stream)


def bury_entry(
    conn: redis.Redis, entry_id: bytes, fields: dict[Any, Any], *, reason: str, stream: str
) -> None:
    """Move one usage-stream entry to the dead-letter stream with these
    fields (an entry that holds no usage event, streams.Claimed: its fields
    as they were).

    The copy, the acknowledgement and the deletion are one MULTI: a worker
    killed in between leaves the event either pending (claimed again, tried
    again) or buried, never both, so it is never buried twice."""
    pipe = conn.pipeline(transaction=True)
    pipe.xadd(
        streams.dead_letter_stream(stream),
        {**fields, REASON: reason[:REASON_MAX_CHARS], ENTRY: entry_id},
    )
    pipe.xack(stream, CONSUMER_GROUP, entry_id)
    pipe.xdel(stream, entry_id)
    pipe.execute()


def _decoded(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    queued = {k: v for k, v in fields.items() if k not in (REASON.encode(), ENTRY.encode())}
    try:
        event: UsageEvent | None = streams.event_of(fields)
    except ValueError:
        event = None
    charge = fields.get(FIELD_CHARGE.encode())
    return DeadLetter(
        entry_id=entry_id.decode(),
        stream=stream,
        event=event,
        charged_live_nanos=int(charge) if charge is not None and charge.isdigit() else 0,
        reason=fields.get(REASON.encode(), b"").decode(errors="replace"),
        fields=queued,
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
        pipe = conn.pipeline(transaction=True)  # one MULTI: requeued once, or not at all
        pipe.xadd(streams.source_stream(letter.stream), cast(dict[Any, Any], letter.fields))
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
