"""The request path's Lua scripts, run over one pipelined Redis connection
per event loop.

Why not redis-py here: its asyncio client spends 65 to 95 µs of CPU per
``EVALSHA`` (a pool checkout, a retry wrapper and a timeout context per
command), and every request makes two (relay/pipeline/gate.py). Redis answers the
commands of one connection in order, so all the requests in flight can
share it: each call writes its command and waits for its turn in a queue of
futures, and hiredis parses the replies. Measured alone, 12 to 19 µs per
call (docs/benchmarks.md). Everything else keeps using redis-py.

Failures are redis-py's exceptions (``ConnectionError``, ``TimeoutError``,
``ResponseError``), so callers handle both clients alike. A reply that does
not come within ``RELAY_REDIS_REPLY_TIMEOUT_S`` breaks the connection (any
reply after it would be matched to the wrong call): every call waiting on
it fails, and the next call connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio.connection import parse_url


class Script:
    """A Lua script, known to Redis by its SHA-1 once loaded."""

    def __init__(self, text: str) -> None:
        self.text = text.encode()
        self.sha = hashlib.sha1(self.text).hexdigest().encode()  # noqa: S324 (Redis's name for it)


class LuaClient:
    def __init__(self, url: str, *, connect_timeout_s: float, reply_timeout_s: float) -> None:
        self._options = parse_url(url)
        self._scheme_is_tls = url.startswith("rediss://")
        self._connect_timeout_s = connect_timeout_s
        self._reply_timeout_s = reply_timeout_s
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future | None = None

    async def run(self, script: Script, keys, args):
        """EVALSHA, or EVAL when Redis does not know the script yet (after a
        restart or SCRIPT FLUSH); EVAL loads it for the next calls."""
        return await self.send(script, keys, args)

    def send(
        self, script: Script, keys, args, *, if_abandoned: Callable[[object], None] | None = None
    ) -> Awaitable:
        """``run``, with the command written before this returns when the
        connection is open: Redis will run it before any command sent after
        it, even one sent by another process once it has heard of this one
        (relay/pipeline/gate.py relies on that to answer before the settle's reply).

        What this returns is then the very future the reply settles, so the
        caller resumes on the loop's next pass after the reply is read: each
        task or future put in between (a shield, a task per call) costs the
        request one more pass, which under load means waiting behind other
        requests' work (docs/benchmarks.md, session 4: 1.17 → 0.58 ms p50 at c=16).

        ``if_abandoned`` gets the reply of a call whose caller was cancelled
        before it came: what the script took can then be given back."""
        connection = self._connection
        if connection is None or connection.closed:
            return self._connect_and_send(script, keys, args, if_abandoned)
        try:
            return connection.call(
                b"EVALSHA", script.sha, len(keys), *keys, *args,
                script_text=script.text,
                if_abandoned=if_abandoned,
            )
        except redis_errors.ConnectionError as error:
            return _raise(error)

    async def _connect_and_send(self, script: Script, keys, args, if_abandoned):
        await self._connect()
        return await self.send(script, keys, args, if_abandoned=if_abandoned)

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.fail(redis_errors.ConnectionError("client closed"))

    async def _connect(self) -> _Connection:
        # Calls arriving while a connection is being made share it.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        options = self._options

        def protocol():
            return _Connection(self._reply_timeout_s)

        try:
            if "path" in options:
                opening = loop.create_unix_connection(protocol, options["path"])
            else:
                context = ssl.create_default_context() if self._scheme_is_tls else None
                opening = loop.create_connection(
                    protocol, options.get("host", "localhost"), options.get("port", 6379),
                    ssl=context,
                )
            _transport, connection = await asyncio.wait_for(opening, self._connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc!r}") from exc
        setup = []
        if options.get("password"):
            credentials = [options.get("username"), options["password"]]
            setup.append([b"AUTH", *(c for c in credentials if c)])
        if options.get("db"):
            setup.append([b"SELECT", options["db"]])
        for command in setup:
            try:
                await connection.call(*command)
            except redis_errors.ResponseError as refused:
                connection.fail(redis_errors.ConnectionError(str(refused)))
                raise redis_errors.ConnectionError(
                    f"Redis refused {command[0].decode()}: {refused}"
                ) from refused
        self._connection = connection
        return connection


class _Connection(asyncio.Protocol):
    """One connection; replies are matched to calls in the order sent."""

    def __init__(self, reply_timeout_s: float) -> None:
        self._reply_timeout_s = reply_timeout_s
        self._reader = hiredis.Reader()
        # (future, reply timer, command sent, the script's text for an
        # EVALSHA that may meet NOSCRIPT, if_abandoned)
        self._waiting: deque[tuple] = deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self._transport = transport

    def connection_lost(self, exc) -> None:
        self.fail(redis_errors.ConnectionError(f"Redis closed the connection ({exc!r})"))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(redis_errors.ConnectionError(f"unreadable reply from Redis: {exc}"))
                return
            if reply is False:
                return
            future, timer, command, script_text, if_abandoned = self._waiting.popleft()
            timer.cancel()
            if isinstance(reply, hiredis.ReplyError):
                if script_text is not None and str(reply).startswith("NOSCRIPT"):
                    # The script in full, answered in its turn like any call.
                    # EVALSHA sha n keys... args -> EVAL text n keys... args
                    self._write(future, (b"EVAL", script_text, *command[2:]), None,
                                if_abandoned)
                elif not future.done():
                    future.set_exception(redis_errors.ResponseError(str(reply)))
            elif not future.done():
                future.set_result(reply)
            elif if_abandoned is not None:  # its caller was cancelled
                if_abandoned(reply)

    def call(
        self, *args, script_text: bytes | None = None, if_abandoned=None
    ) -> asyncio.Future:
        if self.closed:
            raise redis_errors.ConnectionError("the Redis connection is closed")
        future = asyncio.get_running_loop().create_future()
        self._write(future, args, script_text, if_abandoned)
        return future

    def _write(self, future: asyncio.Future, args, script_text, if_abandoned) -> None:
        timer = future.get_loop().call_later(self._reply_timeout_s, self._timed_out)
        self._waiting.append((future, timer, args, script_text, if_abandoned))
        self._transport.write(_pack(args))

    def _timed_out(self) -> None:
        waited = self._reply_timeout_s
        self.fail(redis_errors.TimeoutError(f"no reply from Redis within {waited} s"))

    def fail(self, error: Exception) -> None:
        """Close, and fail every call still waiting (their replies are lost)."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        while self._waiting:
            future, timer, *_rest = self._waiting.popleft()
            timer.cancel()
            if not future.done():
                future.set_exception(type(error)(*error.args))


async def _raise(error: Exception):
    raise error


def _pack(args) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
