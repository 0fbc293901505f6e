"""Redis replies read into one buffer: the embedding cache's lookups.

An ``MGET`` of a 2,048-item batch answers 2,048 entries of ~4 KB. Read as
the other connections read (relay/connections/lua_client.py), uvloop made a
bytes object of each 256 KB read, hiredis copied those into its own buffer
and then made a bytes object of each entry: 8 MiB copied three times, and a
malloc and a free for each of the 2,048 (~1 ms of a fully cached request's
~16 ms of CPU, docs/benchmarks.md). Here the socket is read straight into one buffer
(``asyncio.BufferedProtocol``) and an array of bulk strings is answered as
``Bulks``: that buffer, and where each element lies in it. A run of elements
of one length (every hit of one model and ``dimensions``) is checked in one
numpy pass rather than element by element.

Replies other than arrays (``+OK`` to AUTH, an error) are read as hiredis
reads them. RESP2 only, and arrays of bulk strings only: what the cache's
connection is sent (MGET, AUTH, SELECT) answers nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import hiredis
import numpy as np
from redis import exceptions as redis_errors

from relay.connections.lua_client import Calls

# Room for one read of the socket at least; uvloop reads up to 256 KiB.
READ_ROOM = 256 * 1024
# A run of equal elements shorter than this is read one by one.
_RUN = 4
_CRLF = b"\r\n"


class ProtocolError(Exception):
    """Bytes that are not a reply this reader knows."""


@dataclass(frozen=True)
class Bulks:
    """An array of bulk strings: element ``i`` is ``lengths[i]`` bytes of
    ``data`` from ``offsets[i]`` (a length of -1: nil)."""

    data: memoryview
    offsets: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> bytes | None:
        length = int(self.lengths[index])
        if length < 0:
            return None
        start = int(self.offsets[index])
        return bytes(self.data[start : start + length])


class _Array:
    """An array reply being read: where its elements read so far lie (from
    the reply's start), in pieces: runs of one length as ranges, the
    elements read one by one as lists."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.last_length: int | None = None
        self.expected_size = 0  # of the whole reply, once its first element is known
        self._offsets: list = []
        self._lengths: list = []
        self._one_offsets: list[int] = []
        self._one_lengths: list[int] = []

    def one(self, offset: int, length: int) -> None:
        self._one_offsets.append(offset)
        self._one_lengths.append(length)
        self.left -= 1
        self.last_length = length if length >= 0 else None

    def run(self, offset: int, count: int, stride: int, length: int) -> None:
        self._ones_done()
        self._offsets.append(np.arange(offset, offset + count * stride, stride, dtype=np.int64))
        self._lengths.append(np.full(count, length, dtype=np.int64))
        self.left -= count

    def _ones_done(self) -> None:
        if self._one_offsets:
            self._offsets.append(np.array(self._one_offsets, dtype=np.int64))
            self._lengths.append(np.array(self._one_lengths, dtype=np.int64))
            self._one_offsets, self._one_lengths = [], []

    def bulks(self, data: memoryview) -> Bulks:
        self._ones_done()
        if not self._offsets:
            return Bulks(data, np.empty(0, np.int64), np.empty(0, np.int64))
        return Bulks(data, np.concatenate(self._offsets), np.concatenate(self._lengths))


class Replies:
    """Replies read, in order, from what the socket put into ``room()``."""

    def __init__(self) -> None:
        self._buffer = bytearray(READ_ROOM)
        self._start = 0  # the reply being read begins here
        self._pos = 0  # read up to here
        self._end = 0  # filled up to here
        self._array: _Array | None = None

    def room(self) -> memoryview:
        """Where the next read goes: room for the rest of the array being
        read when its size is foreseen (one buffer, grown once), else for a
        read at least."""
        needed = READ_ROOM
        if self._array is not None and self._array.expected_size:
            rest = self._array.expected_size - (self._end - self._start)
            needed = rest if rest > 0 else READ_ROOM  # foreseen short: room for a read
        if len(self._buffer) - self._end < needed:
            self._move(needed)
        return memoryview(self._buffer)[self._end :]

    def _move(self, needed: int) -> None:
        """The reply being read into a buffer of its own, at its start: at
        least twice what it has taken (a reply bigger than foreseen, or not
        foreseen, is copied a few times, not once a read)."""
        unread = self._end - self._start
        size = max(unread + needed, 2 * unread)
        moved = bytearray(size)
        moved[:unread] = memoryview(self._buffer)[self._start : self._end]
        self._buffer = moved
        self._pos -= self._start
        self._end = unread
        self._start = 0

    def filled(self, count: int) -> list:
        """``count`` more bytes were read into ``room()``: the replies now whole."""
        self._end += count
        replies = []
        while self._pos < self._end:
            reply = self._next()
            if reply is _PARTIAL:
                break
            replies.append(reply)
            self._start = self._pos
        if self._start == self._end and self._start:
            # Everything read was answered: read again from the buffer's start.
            self._start = self._pos = self._end = 0
        return replies

    def _next(self):
        if self._array is not None:
            return self._array_rest()
        buffer, pos = self._buffer, self._pos
        line_end = buffer.find(_CRLF, pos, self._end)
        if line_end < 0:
            return _PARTIAL
        kind, line = buffer[pos], bytes(buffer[pos + 1 : line_end])
        after = line_end + 2
        if kind == ord("*"):
            count = _length(line)
            self._pos = after
            if count < 0:
                return None
            self._array = _Array(count)
            return self._array_rest()
        if kind == ord("$"):
            element = self._element()
            if element is _PARTIAL:
                return _PARTIAL
            offset, length = element
            start = self._start + offset
            return None if length < 0 else bytes(buffer[start : start + length])
        self._pos = after
        if kind == ord("+"):
            return line
        if kind == ord("-"):
            return hiredis.ReplyError(line.decode(errors="replace"))
        if kind == ord(":"):
            return _length(line)
        raise ProtocolError(f"unexpected reply type {chr(kind)!r}")

    def _array_rest(self):
        """Read on in the array being read; the array when it is whole."""
        array = self._array
        while array.left:
            if array.last_length is not None and self._run_of(array, array.last_length):
                continue
            element = self._element()
            if element is _PARTIAL:
                return _PARTIAL
            offset, length = element
            array.one(offset, length)
            if not array.expected_size and length >= 0:
                # The rest foreseen as elements of this one's length.
                array.expected_size = (self._pos - self._start) + array.left * (
                    len(b"$%d\r\n" % length) + length + 2
                )
        self._array = None
        size = self._pos - self._start
        if size < READ_ROOM // 4:  # a small reply: copied out, the buffer kept
            return array.bulks(memoryview(self._buffer[self._start : self._pos]))
        # A big reply keeps the buffer; the connection reads on into a new one.
        data = memoryview(self._buffer)[self._start : self._pos]
        leftover = memoryview(self._buffer)[self._pos : self._end]
        self._buffer = bytearray(max(READ_ROOM, len(leftover)))
        self._buffer[: len(leftover)] = leftover
        self._end -= self._pos
        self._start = self._pos = 0
        return array.bulks(data)

    def _element(self):
        """One bulk string of an array: (offset from the reply's start,
        length), or _PARTIAL."""
        buffer, pos = self._buffer, self._pos
        line_end = buffer.find(_CRLF, pos, self._end)
        if line_end < 0:
            return _PARTIAL
        if buffer[pos] != ord("$"):
            raise ProtocolError("an array element that is not a bulk string")
        length = _length(bytes(buffer[pos + 1 : line_end]))
        after = line_end + 2
        if length < 0:
            self._pos = after
            return after - self._start, -1
        if after + length + 2 > self._end:
            return _PARTIAL
        if buffer[after + length : after + length + 2] != _CRLF:
            raise ProtocolError("a bulk string longer than it said")
        self._pos = after + length + 2
        return after - self._start, length

    def _run_of(self, array: _Array, length: int) -> bool:
        """Take as many elements of ``length`` bytes as are read, in one pass
        (when _RUN or more are read); whether it took any."""
        header = b"$%d\r\n" % length
        stride = len(header) + length + 2
        whole = min(array.left, (self._end - self._pos) // stride)
        buffer, pos = self._buffer, self._pos
        if whole < _RUN or not (
            buffer.startswith(header, pos) and buffer.startswith(header, pos + stride)
        ):
            return False  # cheaply: elements of mixed lengths are read one by one
        rows = np.frombuffer(buffer, np.uint8, whole * stride, pos).reshape(whole, stride)
        framed = (rows[:, : len(header)] == np.frombuffer(header, np.uint8)).all(axis=1)
        framed &= (rows[:, -2] == 13) & (rows[:, -1] == 10)
        taken = whole if framed.all() else int(np.argmin(framed))
        if taken:
            offset = pos - self._start + len(header)
            array.run(offset, taken, stride, length)
            self._pos += taken * stride
        return taken > 0


def _length(line: bytes) -> int:
    try:
        return int(line)
    except ValueError as exc:
        raise ProtocolError(f"not a length: {line[:20]!r}") from exc


_PARTIAL = object()


class BulkConnection(Calls, asyncio.BufferedProtocol):
    """A pipelined connection (relay/connections/lua_client.py) whose replies
    are read by ``Replies``: arrays come back as ``Bulks``. Not an
    ``asyncio.Protocol`` as well: uvloop would then call ``data_received``."""

    def __init__(self, reply_timeout_s: float, redirected=None) -> None:
        super().__init__(reply_timeout_s, redirected)
        self._replies = Replies()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._replies.room()

    def buffer_updated(self, nbytes: int) -> None:
        try:
            replies = self._replies.filled(nbytes)
        except ProtocolError as exc:
            self.fail(redis_errors.ConnectionError(f"unreadable reply from Redis: {exc}"))
            return
        for reply in replies:
            if not self._waiting:  # a reply nobody asked for: out of step
                self.fail(redis_errors.ConnectionError("a reply from Redis nobody waited for"))
                return
            self.answer(reply)
