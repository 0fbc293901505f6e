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

``REDIS_URL`` may name a cluster or a Sentinel's primary (billing/redis_url.py).
In a cluster, a call goes to the node serving its first key's slot (every
script's keys share one, billing/shards.py), one pipelined connection per
node; a ``MOVED`` reply updates the slot map and the call is sent again to
the node named, an ``ASK`` is sent there once after ``ASKING``. Behind
Sentinel, the primary is asked of the Sentinels when connecting. A lost
connection (the node died) fails its calls as before; the next call asks
the cluster or the Sentinels afresh where its slot lives, so the client
follows a failover as soon as the replica is promoted.
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
from redis.crc import key_slot

from billing import redis_url
from relay.connections import redis_topology

# A call redirected more often than this fails: the slot map is not settling.
MAX_REDIRECTS = 5


class Script:
    """A Lua script, known to Redis by its SHA-1 once loaded."""

    def __init__(self, text: str) -> None:
        self.text = text.encode()
        self.sha = hashlib.sha1(self.text).hexdigest().encode()  # noqa: S324 (Redis's name for it)


class LuaClient:
    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float,
        reply_timeout_s: float,
        connection_class: type[Calls] | None = None,
    ) -> None:
        self._connection_class = connection_class or Connection
        self._target = redis_url.parse(url)
        self._options = parse_url(url) if self._target.kind == redis_url.STANDALONE else {}
        self._scheme_is_tls = url.startswith("rediss")
        self._connect_timeout_s = connect_timeout_s
        self._reply_timeout_s = reply_timeout_s
        # Open connections by address: one for a server or Sentinel's
        # primary, one per primary of a cluster.
        self._connections: dict[object, Calls] = {}
        # Scripts sent so far, loaded into each new connection's server
        # first: a replica promoted by a failover knows none of them, and a
        # NOSCRIPT would send the script again after a WAIT meant to cover it.
        self._scripts: dict[bytes, bytes] = {}
        self._connecting: dict[object, asyncio.Future] = {}
        self._discovering: asyncio.Future | None = None
        self._slots: list | None = None  # a cluster's node for each slot
        self._primary: object = (
            self._options.get("path")
            or (self._options.get("host", "localhost"), self._options.get("port", 6379))
            if self._target.kind == redis_url.STANDALONE
            else None
        )

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
        self._scripts[script.sha] = script.text
        return self._send(
            (b"EVALSHA", script.sha, len(keys), *keys, *args), keys, script.text, if_abandoned
        )

    def command(self, keys, *command) -> Awaitable:
        """A plain command (WAIT), sent where a script with ``keys`` goes and
        written, like ``send``, before this returns."""
        return self._send(command, keys, None, None)

    def _send(self, command, keys, script_text, if_abandoned) -> Awaitable:
        address = self._address_for(keys)
        connection = self._connections.get(address) if address is not None else None
        if connection is None or connection.closed:
            return self._connect_and_send(keys, command, script_text, if_abandoned)
        try:
            return connection.call(*command, script_text=script_text, if_abandoned=if_abandoned)
        except redis_errors.ConnectionError as error:
            return _raise(error)

    def _address_for(self, keys):
        if self._target.kind != redis_url.CLUSTER:
            return self._primary
        if self._slots is None:
            return None
        return self._slots[key_slot(_encode(keys[0]))] if keys else self._slots[0]

    async def _connect_and_send(self, keys, command, script_text, if_abandoned):
        if self._target.kind != redis_url.STANDALONE:
            # No connection to where this call goes: the node may have died
            # and another taken its place. Ask the cluster or the Sentinels.
            await self._discover()
        address = self._address_for(keys)
        if address is None:
            raise redis_errors.ConnectionError("no Redis node serves this key's slot")
        connection = await self._connect(address)
        return await connection.call(*command, script_text=script_text, if_abandoned=if_abandoned)

    async def aclose(self) -> None:
        for connection in list(self._connections.values()):
            connection.fail(redis_errors.ConnectionError("client closed"))

    async def _discover(self) -> None:
        # Calls arriving while the topology is being read share the answer.
        if self._discovering is None or self._discovering.done():
            self._discovering = asyncio.ensure_future(self._read_topology())
        await asyncio.shield(self._discovering)

    async def _read_topology(self) -> None:
        if self._target.kind == redis_url.CLUSTER:
            known = {a for a in (self._slots or ()) if a is not None}
            self._slots = await redis_topology.cluster_slots(
                self._ask, [*known, *self._target.nodes]
            )
        else:
            self._primary = await redis_topology.sentinel_primary(
                self._ask, list(self._target.nodes), self._target.service
            )

    async def _ask(self, address, command, *, sentinel: bool = False):
        """One command on a connection of its own (CLUSTER SLOTS, SENTINEL ...)."""
        password = self._target.sentinel_password if sentinel else self._target.password
        username = None if sentinel else self._target.username
        connection = await self._open(
            address,
            username=username,
            password=password,
            db=0,
            tls=self._scheme_is_tls and not sentinel,
        )
        try:
            return await connection.call(*command)
        finally:
            connection.fail(redis_errors.ConnectionError("done"))

    async def _connect(self, address) -> Calls:
        # Calls arriving while a connection is being made share it.
        opening = self._connecting.get(address)
        if opening is None or opening.done():
            opening = self._connecting[address] = asyncio.ensure_future(self._open_data(address))
        return await asyncio.shield(opening)

    async def _open_data(self, address) -> Calls:
        if self._target.kind == redis_url.STANDALONE:
            options = self._options
            connection = await self._open(
                address,
                username=options.get("username"),
                password=options.get("password"),
                db=options.get("db") or 0,
                tls=self._scheme_is_tls,
            )
        else:
            connection = await self._open(
                address,
                username=self._target.username,
                password=self._target.password,
                db=self._target.db,
                tls=self._target.tls,
            )
        loading = [connection.call(b"SCRIPT", b"LOAD", text) for text in self._scripts.values()]
        if loading:
            try:
                await asyncio.gather(*loading)
            except redis_errors.ResponseError as refused:
                connection.fail(redis_errors.ConnectionError(str(refused)))
                raise redis_errors.ConnectionError(
                    f"Redis refused SCRIPT LOAD: {refused}"
                ) from refused
        self._connections[address] = connection
        return connection

    async def _open(self, address, *, username, password, db, tls) -> Calls:
        loop = asyncio.get_running_loop()

        def protocol():
            return self._connection_class(self._reply_timeout_s, self._redirected)

        try:
            if isinstance(address, str):
                opening = loop.create_unix_connection(protocol, address)
            else:
                context = ssl.create_default_context() if tls else None
                opening = loop.create_connection(protocol, address[0], address[1], ssl=context)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a
            # cancellation that arrives as the connection completes (see
            # relay/catalog/invalidation.py), and with it the connection.
            async with asyncio.timeout(self._connect_timeout_s):
                _transport, connection = await opening
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc!r}") from exc
        setup = []
        if password:
            setup.append([b"AUTH", *(c for c in (username, password) if c)])
        if db:
            setup.append([b"SELECT", db])
        for command in setup:
            try:
                await connection.call(*command)
            except redis_errors.ResponseError as refused:
                connection.fail(redis_errors.ConnectionError(str(refused)))
                raise redis_errors.ConnectionError(
                    f"Redis refused {command[0].decode()}: {refused}"
                ) from refused
        return connection

    def _redirected(self, moved: bool, slot: int, address, call: tuple) -> None:
        """A cluster node answered MOVED or ASK: send the call on to the node
        it named, settling the same future."""
        if moved and self._slots is not None:
            self._slots[slot] = address
        asyncio.ensure_future(self._send_on(address, call, asking=not moved))

    async def _send_on(self, address, call: tuple, *, asking: bool) -> None:
        future, _timer, command, script_text, if_abandoned, hops = call
        if future.done():
            return
        try:
            connection = await self._connect(address)
            if asking:  # ASKING holds for the one command after it
                connection.call(b"ASKING").add_done_callback(_quietly)
            connection.write(future, command, script_text, if_abandoned, hops + 1)
        except redis_errors.RedisError as error:
            if not future.done():
                future.set_exception(error)


class Calls(asyncio.BaseProtocol):
    """One connection's calls; replies are matched to them in the order
    sent. How the replies are read is a subclass's: ``Connection`` here,
    relay/connections/bulk_replies.py for the embedding cache."""

    def __init__(self, reply_timeout_s: float, redirected=None) -> None:
        self._reply_timeout_s = reply_timeout_s
        self._redirected = redirected
        # (future, reply timer, command sent, the script's text for an
        # EVALSHA that may meet NOSCRIPT, if_abandoned, redirects so far)
        self._waiting: deque[tuple] = deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self._transport = transport

    def connection_lost(self, exc) -> None:
        self.fail(redis_errors.ConnectionError(f"Redis closed the connection ({exc!r})"))

    def answer(self, reply) -> None:
        """Settle the oldest call waiting with ``reply``."""
        call = self._waiting.popleft()
        future, timer, command, script_text, if_abandoned, hops = call
        timer.cancel()
        if isinstance(reply, hiredis.ReplyError):
            self._refused(call, str(reply))
        elif not future.done():
            future.set_result(reply)
        elif if_abandoned is not None:  # its caller was cancelled
            if_abandoned(reply)

    def _refused(self, call: tuple, error: str) -> None:
        future, _timer, command, script_text, if_abandoned, hops = call
        if script_text is not None and error.startswith("NOSCRIPT"):
            # The script in full, answered in its turn like any call.
            # EVALSHA sha n keys... args -> EVAL text n keys... args
            self.write(future, (b"EVAL", script_text, *command[2:]), None, if_abandoned, hops)
            return
        redirect = redis_topology.redirect(error)
        if redirect is not None and self._redirected is not None and hops < MAX_REDIRECTS:
            moved, slot, address = redirect
            self._redirected(moved, slot, address, call)
        elif error.startswith("READONLY"):
            # A primary demoted by a failover: the script did not run. Drop
            # the connection so the next call asks where the primary is now.
            if not future.done():
                future.set_exception(redis_errors.ConnectionError(error))
            self.fail(redis_errors.ConnectionError(error))
        elif not future.done():
            future.set_exception(redis_errors.ResponseError(error))

    def call(self, *args, script_text: bytes | None = None, if_abandoned=None) -> asyncio.Future:
        if self.closed:
            raise redis_errors.ConnectionError("the Redis connection is closed")
        future = asyncio.get_running_loop().create_future()
        self.write(future, args, script_text, if_abandoned)
        return future

    def write(self, future: asyncio.Future, args, script_text, if_abandoned, hops=0) -> None:
        if self.closed:
            raise redis_errors.ConnectionError("the Redis connection is closed")
        timer = future.get_loop().call_later(self._reply_timeout_s, self._timed_out)
        self._waiting.append((future, timer, args, script_text, if_abandoned, hops))
        self._transport.write(pack(args))

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


class Connection(Calls, asyncio.Protocol):
    """Replies parsed by hiredis."""

    def __init__(self, reply_timeout_s: float, redirected=None) -> None:
        super().__init__(reply_timeout_s, redirected)
        self._reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while self._waiting:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(redis_errors.ConnectionError(f"unreadable reply from Redis: {exc}"))
                return
            if reply is False:
                return
            self.answer(reply)


def _quietly(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # read, so asyncio does not log it as never retrieved


def _encode(key) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


async def _raise(error: Exception):
    raise error


def pack(args) -> bytes:
    """A command in RESP: an array of bulk strings (bytes as they are; str,
    int and anything else as text)."""
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
