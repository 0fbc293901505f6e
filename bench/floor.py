"""The floor under the fully cached row: what this machine charges one thread
for the parts of a fully cached 2,048-item request that no relay can leave
out, measured in the same run as the row (issue 14 asks for under 10 ms of
the relay's CPU a request).

- ``kernel``: the entries read from the cache's Redis over a socket (one
  ``MGET``, 8 MiB read into one buffer) and an answer of the relay's size
  (11 MB) written to a client over loopback, and nothing else. A relay that
  keeps the vectors in Redis pays this here, in any language.
- ``bare``: the same with the relay's own per-item steps: its cache keys
  (relay/pipeline/cache.py) and its answer from the entries where they lie
  (relay/contract/vectors.py); none of the rest (HTTP, authentication,
  limits, hold and settle, usage record, log line).

The CPU is the measuring thread's (``RUSAGE_THREAD``, user and system); the
client that reads the answer is another thread, as the benchmark's client is
another process. On loopback the kernel runs the client's receive path in
the writer's ``send``, for the floor as for the relay.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator

import numpy as np
import redis

from relay.connections.lua_client import pack
from relay.contract import vectors
from relay.pipeline import cache

BODY = "batch2048-cached-floor"
WARMUP = 5
SCOPE = b"bench-floor"  # the floor's own keys, deleted after
TOKENS = 12  # each entry's token count (any: only its 4 bytes matter)
_COUNT_SIZE = len(cache.encode(0, np.zeros(0, np.float32)))  # each entry's token count


def measure(cache_url: str, texts: list[str], *, dimensions: int, requests: int) -> dict:
    """Each floor's CPU per request, over ``requests`` after a warm-up."""
    parts = urllib.parse.urlsplit(cache_url)
    if parts.hostname != "127.0.0.1":
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {cache_url}")
    keys = cache.item_keys(texts, SCOPE)
    rows = np.random.default_rng(0).random((len(keys), dimensions), dtype=np.float32)
    with redis.Redis.from_url(cache_url) as client:
        client.mset({key: cache.encode(TOKENS, row) for key, row in zip(keys, rows, strict=True)})
        try:
            length = len(cache.encode(TOKENS, rows[0]))
            with _entries_reader(parts, keys, length) as read_entries, _client() as send:
                if bytes(read_entries()[-1]) != rows[-1].tobytes():
                    raise RuntimeError("the floor's entries were not read where they lie")
                size = len(_answer(read_entries()))
                written = bytes(size)

                def kernel() -> None:
                    read_entries()
                    send(written)

                def bare() -> None:
                    cache.item_keys(texts, SCOPE)
                    send(_answer(read_entries()))

                figures = {"kernel": _cpu_ms(kernel, requests), "bare": _cpu_ms(bare, requests)}
        finally:
            client.delete(*keys)
    return {
        "target": "floor",
        "body": BODY,
        "requests": requests,
        "kernel_cpu_ms_per_request": round(figures["kernel"], 2),
        "bare_cpu_ms_per_request": round(figures["bare"], 2),
        "answer_bytes": size,
    }


def describe(row: dict) -> str:
    return (
        f"floor    batch2048-cached  c=1  kernel {row['kernel_cpu_ms_per_request']:.1f}"
        f" ms/req (socket reads and writes alone), bare {row['bare_cpu_ms_per_request']:.1f}"
        " ms/req (with the relay's keys and answer)"
    )


def _answer(rows: list[memoryview]) -> bytearray:
    return vectors.answer(rows, model="bench", tokens=TOKENS * len(rows), as_base64=True)


def _cpu_ms(step: Callable[[], None], requests: int) -> float:
    for _ in range(WARMUP):
        step()
    before = resource.getrusage(resource.RUSAGE_THREAD)
    for _ in range(requests):
        step()
    after = resource.getrusage(resource.RUSAGE_THREAD)
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 1000 * spent / requests


@contextlib.contextmanager
def _entries_reader(
    parts: urllib.parse.SplitResult, keys: list[str], length: int
) -> Iterator[Callable[[], list[memoryview]]]:
    """A function that sends the ``MGET`` of ``keys`` (entries of ``length``
    bytes each) and reads its reply into one buffer: each entry's vector,
    where it lies."""
    header = b"$%d\r\n" % length
    stride = len(header) + length + 2
    opening = len(b"*%d\r\n" % len(keys))
    size = opening + stride * len(keys)
    view = memoryview(bytearray(size))
    first = opening + len(header) + _COUNT_SIZE
    vector = length - _COUNT_SIZE
    rows = [view[at : at + vector] for at in range(first, size, stride)]
    command = pack((b"MGET", *keys))
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=30) as connection:
        _sign_in(connection, parts)

        def read_entries() -> list[memoryview]:
            connection.sendall(command)
            got = 0
            while got < size:
                got += connection.recv_into(view[got:])
            return rows

        yield read_entries


def _sign_in(connection: socket.socket, parts: urllib.parse.SplitResult) -> None:
    """AUTH and SELECT as the URL asks, each answered ``+OK``."""
    commands = []
    if parts.password:
        user = [parts.username] if parts.username else []
        commands.append(pack((b"AUTH", *user, parts.password)))
    database = parts.path.strip("/")
    if database and database != "0":
        commands.append(pack((b"SELECT", database)))
    for command in commands:
        connection.sendall(command)
        if not connection.recv(256).startswith(b"+OK"):
            raise RuntimeError("the floor could not sign in to the cache's Redis")


@contextlib.contextmanager
def _client() -> Iterator[Callable[[bytes | bytearray], None]]:
    """A loopback TCP connection whose other end a thread reads and drops."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        reader = socket.create_connection(server.getsockname())
        writer, _address = server.accept()

    def drain() -> None:
        buffer = bytearray(1 << 20)
        with reader:
            while reader.recv_into(buffer):
                pass

    thread = threading.Thread(target=drain, name="floor-client", daemon=True)
    thread.start()
    try:
        yield writer.sendall
    finally:
        writer.close()
        thread.join(timeout=10)
