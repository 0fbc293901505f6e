"""Replies read into one buffer (relay/connections/bulk_replies.py): the same
answers hiredis reads, however the socket cuts the bytes; and MGET through
a real Redis."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis
import uvloop
from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import exceptions as redis_errors

from relay.connections.bulk_replies import READ_ROOM, BulkConnection, Bulks, Replies
from relay.connections.lua_client import LuaClient


def resp(reply) -> bytes:
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, list):
        return b"*%d\r\n" % len(reply) + b"".join(resp(element) for element in reply)
    return b"$%d\r\n%s\r\n" % (len(reply), reply)


def read(stream: bytes, cuts=(), *, buffers: list | None = None) -> list:
    """What ``Replies`` answers when the socket delivers ``stream`` cut at
    ``cuts``, a read at most READ_ROOM bytes; ``buffers`` collects each
    buffer it was read into."""
    replies, answers, start = Replies(), [], 0
    for end in [*sorted(cuts), len(stream)]:
        while start < end:
            room = replies.room()
            if buffers is not None and not any(room.obj is b for b in buffers):
                buffers.append(room.obj)
            piece = stream[start : min(end, start + len(room), start + READ_ROOM)]
            room[: len(piece)] = piece
            answers += replies.filled(len(piece))
            start += len(piece)
    return answers


def listed(answers: list) -> list:
    return [list(a) if isinstance(a, Bulks) else a for a in answers]


# Elements as an MGET of cache entries answers them: runs of one length
# (hits of one model), other lengths, nils (misses), bytes that look like RESP.
element = st.one_of(
    st.none(),
    st.sampled_from([b"", b"\r\n", b"$5\r\nabc\r\n", b"*1\r\n"]),
    st.binary(max_size=40),
    st.integers(0, 255).map(lambda n: bytes([n]) * 4100),
)
arrays = st.lists(
    st.one_of(
        st.lists(element, max_size=30),
        st.tuples(st.integers(1, 300), element).map(lambda run: [run[1]] * run[0]),
    ),
    min_size=1,
    max_size=4,
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(arrays=arrays, seed=st.integers(0, 2**32))
def test_arrays_read_as_hiredis_reads_them_however_the_bytes_are_cut(arrays, seed):
    stream = b"".join(resp(array) for array in arrays)
    cuts = random.Random(seed).sample(range(len(stream)), min(len(stream), 12))

    assert listed(read(stream, cuts)) == arrays


def test_other_replies_are_read_as_hiredis_reads_them():
    stream = b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*0\r\n-ERR no\r\n"
    for cut in range(len(stream)):
        answers = listed(read(stream, [cut]))
        error = answers.pop()
        assert answers == [b"OK", 42, b"abc", None, None, []]
        assert str(error) == "ERR no"


def test_a_big_reply_is_read_into_one_buffer_grown_once():
    entries = [bytes([n % 256]) * 4100 for n in range(2048)]
    stream = resp(entries) + b"+OK\r\n"
    buffers: list = []
    answers = read(stream, buffers=buffers)

    bulks, ok = answers
    assert ok == b"OK" and list(bulks) == entries
    assert len(bulks.data) == len(resp(entries))
    # Its first read, then the buffer it was foreseen to need (not one grown
    # again and again), handed over with the reply, not copied; then the next.
    assert len(buffers) == 3 and bulks.data.obj is buffers[1]
    assert len(resp(entries)) <= len(bulks.data.obj) <= len(resp(entries)) + READ_ROOM


def test_a_big_reply_of_unforeseen_size_takes_few_buffers():
    value = bytes(range(256)) * 16_384  # a 4 MiB bulk string (GET), read 256 KiB at a time
    stream = b"$%d\r\n%s\r\n" % (len(value), value)
    buffers: list = []
    answers = read(stream, buffers=buffers)

    assert answers == [value]
    assert len(buffers) <= 6  # doubled each time: 256 KiB to 8 MiB


@pytest.mark.parametrize(
    "stream",
    [b"%1\r\n", b"*1\r\n:1\r\n", b"$abc\r\n", b"*1\r\n$3\r\nabcd\r\n"],
    ids=["resp3 map", "not a bulk element", "bad length", "longer than said"],
)
def test_bytes_that_are_no_reply_it_knows_fail_the_read(stream):
    with pytest.raises(Exception, match="unexpected|not a bulk|not a length|longer"):
        read(stream, [])


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_mget_through_a_real_redis_answers_every_key_in_order(run):
    keys = [f"bulk-test:{n}" for n in range(3000)]
    values = {key: bytes([n % 256]) * (4100 if n % 3 else 17) for n, key in enumerate(keys)}
    store = redis.Redis.from_url(settings.REDIS_URL)
    store.mset({key: value for n, (key, value) in enumerate(values.items()) if n % 5})

    async def scenario():
        client = LuaClient(
            settings.REDIS_URL,
            connect_timeout_s=1.0,
            reply_timeout_s=5.0,
            connection_class=BulkConnection,
        )
        try:
            found = await asyncio.gather(
                client.command(keys, b"MGET", *keys),
                client.command(keys[:10], b"MGET", *keys[:10]),
                client.command(["x"], b"GET", "bulk-test:0"),
            )
            with pytest.raises(redis_errors.ResponseError):
                await client.command(["x"], b"INCR", "bulk-test:1")
            return found, await client.command(keys[:1], b"MGET", keys[1])
        finally:
            await client.aclose()

    try:
        (whole, first, single), after_error = run(scenario())
    finally:
        store.delete(*keys)

    expected = [values[key] if n % 5 else None for n, key in enumerate(keys)]
    # Read in place by both loops (uvloop reads a protocol that is also an
    # asyncio.Protocol with data_received, whatever else it offers).
    assert isinstance(whole, Bulks) and isinstance(after_error, Bulks)
    assert list(whole) == expected
    assert list(first) == expected[:10]
    assert single is None
    assert list(after_error) == [values[keys[1]]]
