"""The connection edge: how long a client may take to send a request, and how
many connections one web process holds.

uvicorn bounds only the idle time between two requests (gunicorn's
``keepalive``). A client that connects and sends nothing, sends its head a
byte at a time, or sends its body a byte a second would hold a connection,
its file descriptor and, for the body, a request task for as long as it
likes. So each connection here has one deadline at a time:

- from the moment it is made, or the first byte of its next request, until
  the request's head is complete: ``RELAY_HEADER_TIMEOUT_S``;
- from then until its body is complete: ``RELAY_BODY_TIMEOUT_S``;

past either, the client gets OpenAI's envelope with 408 (if no answer was
started) and the connection is closed. And a process holds at most
``RELAY_MAX_CONNECTIONS_PER_PROCESS`` connections: past it, a new connection
closes the one idle the longest between two requests to make room, and when
none is idle, it is itself answered 503 and closed. docs/deploy.md, "The
connection edge".
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relay.contract.errors import RelayError, RequestTimeout, ServiceUnavailable

log = logging.getLogger(__name__)


def _raw_answer(error: RelayError) -> bytes:
    body = error.content()
    head = (
        f"HTTP/1.1 {error.status} {_REASONS[error.status]}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}
_HEAD_TOO_SLOW = _raw_answer(
    RequestTimeout("The request's headers did not arrive in time; send them at once.")
)
_BODY_TOO_SLOW = _raw_answer(
    RequestTimeout("The request's body did not arrive in time; send it at once.")
)
_FULL = _raw_answer(
    ServiceUnavailable("This server holds as many connections as it may; retry shortly.")
)


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on reading each request
    and a cap on the connections of its process."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._idle_since = self.loop.time()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(settings.RELAY_HEADER_TIMEOUT_S, _HEAD_TOO_SLOW)
        if len(self.connections) > settings.RELAY_MAX_CONNECTIONS_PER_PROCESS:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first bytes of a request: its head is due
            self._arm(settings.RELAY_HEADER_TIMEOUT_S, _HEAD_TOO_SLOW)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(settings.RELAY_BODY_TIMEOUT_S, _BODY_TOO_SLOW)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # --- deadlines ---------------------------------------------------------------------------

    def _arm(self, timeout_s: float, answer: bytes) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(timeout_s, self._too_slow, answer)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, answer: bytes) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info("closing a connection from %s: request not sent in time", self.client)
        self._close_with(answer)

    def _close_with(self, answer: bytes) -> None:
        # Only where no answer was started: bytes of our own in the middle of
        # the application's would corrupt it.
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            self.transport.write(answer)
        self.transport.close()

    # --- the cap -----------------------------------------------------------------------------

    def _idle(self) -> bool:
        """Between two requests, waiting on a keep-alive connection."""
        return self.timeout_keep_alive_task is not None and self._deadline is None

    def _make_room(self) -> None:
        idle = [c for c in self.connections if isinstance(c, EdgeProtocol) and c._idle()]
        if idle:
            oldest = min(idle, key=lambda c: c._idle_since)
            oldest.transport.close()
            return
        log.warning(
            "connection refused: this process holds RELAY_MAX_CONNECTIONS_PER_PROCESS=%s",
            settings.RELAY_MAX_CONNECTIONS_PER_PROCESS,
        )
        self._disarm()
        self._close_with(_FULL)
