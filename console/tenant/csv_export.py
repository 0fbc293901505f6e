"""Usage records as CSV, streamed: rows are read in chunks from a server-side
cursor and written as they are produced, so an export of millions of rows
never sits in memory."""

from __future__ import annotations

import csv
import itertools
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.utils.translation import pgettext_lazy

from billing.models import UsageRecord
from console.formatting import units

CHUNK_ROWS = 2000
COLUMNS = (
    "created",
    "request_id",
    "key",
    "model",
    "served_model",
    "status",
    "input_count",
    "tokens",
    "token_source",
    "price_per_mtok_nanos",
    "cost_nanos",
    "cost",
    "latency_ms",
    "end_user",
    "cached_items",
    "cached_tokens",
    "cached_price_per_mtok_nanos",
)
# The header row in the reader's language: the column names above in
# English, e.g. 请求 ID in Chinese (every column needs one; a test checks).
HEADERS = {
    "created": pgettext_lazy("usage csv", "created"),
    "request_id": pgettext_lazy("usage csv", "request_id"),
    "key": pgettext_lazy("usage csv", "key"),
    "model": pgettext_lazy("usage csv", "model"),
    "served_model": pgettext_lazy("usage csv", "served_model"),
    "status": pgettext_lazy("usage csv", "status"),
    "input_count": pgettext_lazy("usage csv", "input_count"),
    "tokens": pgettext_lazy("usage csv", "tokens"),
    "token_source": pgettext_lazy("usage csv", "token_source"),
    "price_per_mtok_nanos": pgettext_lazy("usage csv", "price_per_mtok_nanos"),
    "cost_nanos": pgettext_lazy("usage csv", "cost_nanos"),
    "cost": pgettext_lazy("usage csv", "cost"),
    "latency_ms": pgettext_lazy("usage csv", "latency_ms"),
    "end_user": pgettext_lazy("usage csv", "end_user"),
    "cached_items": pgettext_lazy("usage csv", "cached_items"),
    "cached_tokens": pgettext_lazy("usage csv", "cached_tokens"),
    "cached_price_per_mtok_nanos": pgettext_lazy("usage csv", "cached_price_per_mtok_nanos"),
}
# A cell starting with one of these is a formula to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Echo:
    """A file-like object whose write() hands the line back to the caller."""

    def write(self, value: str) -> str:
        return value


def _text(value: str) -> str:
    # end_user is whatever the API client sent: keep it from running as a
    # formula when the export is opened in a spreadsheet (OWASP's advice).
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def row(record: UsageRecord) -> list:
    return [
        record.created.isoformat(),
        record.request_id,
        record.api_key.masked,
        record.model,
        record.served_model,
        record.status,
        record.input_count,
        record.tokens,
        record.token_source,
        record.price_per_mtok_nanos,
        record.cost_nanos,
        f"{units(record.cost_nanos):f}",  # 0.000000000, not 0E-9
        record.latency_ms,
        _text(record.end_user),
        record.cached_items,
        record.cached_tokens,
        record.cached_price_per_mtok_nanos,
    ]


def header() -> list[str]:
    """The header row in the active language."""
    return [str(HEADERS.get(name, name)) for name in COLUMNS]


def lines(records: QuerySet[UsageRecord], *, names: list[str] | None = None) -> Iterator[str]:
    writer = csv.writer(Echo())
    yield writer.writerow(names or header())
    for record in records.iterator(chunk_size=CHUNK_ROWS):
        yield writer.writerow(row(record))


async def _in_batches(source: Iterator[str]) -> AsyncIterator[str]:
    # Each batch is read in the request's sync thread (thread_sensitive), the
    # one whose connection holds the server-side cursor.
    take = sync_to_async(
        lambda: "".join(itertools.islice(source, CHUNK_ROWS)), thread_sensitive=True
    )
    while batch := await take():
        yield batch


def body(records: QuerySet[UsageRecord], request) -> Iterator[str] | AsyncIterator[str]:
    """The CSV, as an iterator the server in front can stream.

    Under ASGI (how the console is deployed) Django would read a synchronous
    iterator to the end into a list before sending a byte; an asynchronous
    one is streamed. Under WSGI (and the test client) the plain generator is.
    """
    # The header is named now, in the request's language: the rows are
    # written later, wherever the server runs the iterator.
    source = lines(records, names=header())
    return _in_batches(source) if isinstance(request, ASGIRequest) else source
