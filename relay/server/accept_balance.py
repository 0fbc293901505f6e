"""Web workers share connections evenly: new ones go to the worker holding
the fewest, and a worker holding clearly more moves some away.

All gunicorn workers accept from one listening socket, and the event loop
accepts every connection waiting whenever its socket turns readable, so the
first worker to wake takes them all. Clients that keep their connections
(every SDK, wrk, a reverse proxy's upstream pool) stay where they landed:
16 keep-alive connections split 14/2 in the benchmark, and the loaded worker
answered 3 ms slower at the median than at 8/8 (docs/benchmarks.md).

Here each worker publishes its load (open connections) on a ``Board``, in
memory the master shares with every worker it forks. A worker accepts a
waiting connection at once while that keeps it within the ``tolerance`` of
the least loaded other; otherwise it leaves the connection to the others
for ``DEFER_S`` and then takes it anyway, so a busy or stopped worker never
strands a client.

Accepting evenly cannot move connections already open: a burst can arrive
while one worker is still closing the last burst's connections and so looks
loaded, and keep-alive clients then stay skewed for as long as they run. So
a worker past the tolerance and above the average answers with
``Connection: close`` (``reconnect_elsewhere``, relay/api/embeddings_route.py):
the client finishes that request and opens a new connection for its next
one, which the rule above places on a lighter worker. Every HTTP/1.1 client
does this without an error; it costs that one request a new TCP connection.

Outside gunicorn (uvicorn alone, the tests' in-process server) nothing here
runs.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import socket
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

# How long a worker with more connections than another leaves a new
# connection to the others before taking it itself: a few times what the
# other loop takes to come round when it is busy (2 ms was often too short
# for a worker finishing an answer), and small beside a TCP handshake with
# a client across a network.
DEFER_S = 0.005
# A connection left to the others that none of them took within DEFER_S
# says they are busy or stopped (a worker stopped in a debugger, one stuck
# past gunicorn's timeout): moving clients to them would only bring them
# back. This long without asking any to reconnect.
OTHERS_BUSY_S = 1.0
# How long a client asked to reconnect is taken to be on its way to another
# worker (an idle pooled connection reconnects only for its next request).
MOVED_S = 1.0
# Out of file descriptors (EMFILE, ENFILE) or memory: stop accepting for a
# while, as asyncio does, rather than spin on a socket that stays readable.
ACCEPT_RETRY_S = 1.0

# A slot: [pid, open connections]. pid 0: free; -1: reserved for a worker
# being forked, or one that has stopped accepting (both ignored).
FREE, IDLE = 0, -1


class Board:
    """Open connections per worker, in anonymous shared memory made by the
    master before it forks (the mapping is inherited). Aligned 8-byte
    cells: a reader sees a whole count, never half of one."""

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, slots * 16)
        self.cells = memoryview(self._memory).cast("q")
        self.slots = slots

    # In the master (relay/server/gunicorn_conf.py's pre_fork and child_exit).
    def reserve(self, taken: set[int]) -> int | None:
        for slot in range(self.slots):
            if slot not in taken:
                self.cells[2 * slot], self.cells[2 * slot + 1] = IDLE, 0
                return slot
        return None

    def free(self, slot: int) -> None:
        self.cells[2 * slot], self.cells[2 * slot + 1] = FREE, 0

    # In a worker.
    def join(self, slot: int, pid: int) -> None:
        self.cells[2 * slot + 1], self.cells[2 * slot] = 0, pid

    def leave(self, slot: int) -> None:
        self.cells[2 * slot] = IDLE

    def publish(self, slot: int, connections: int) -> None:
        self.cells[2 * slot + 1] = connections

    def elsewhere(self, slot: int) -> tuple[int, int, int]:
        """The fewest connections a worker other than ``slot`` holds, the
        total they hold, and how many they are (0, 0, 0: no other)."""
        cells, fewest, total, others = self.cells, None, 0, 0
        for other in range(self.slots):
            if other != slot and cells[2 * other] > 0:
                count = cells[2 * other + 1]
                total += count
                others += 1
                if fewest is None or count < fewest:
                    fewest = count
        return (fewest or 0), total, others


# This worker's connections, when it serves with a board (relay/server/web_worker.py).
here: Connections | None = None


def reconnect_elsewhere() -> bool:
    """Whether the answer being sent should ask its client to reconnect:
    this worker holds more than the least loaded other by more than the
    ``tolerance``, and more than the average, and the others have been
    taking the connections left to them. Clients asked in the last
    ``MOVED_S`` count as already on the least loaded worker, so that
    answers sent before they come back do not move more than the
    difference. Always False outside a balanced gunicorn worker."""
    connections = here
    if connections is None:
        return False
    now = time.monotonic()
    if connections.others_busy_until > now:
        return False
    fewest, total, others = connections.board.elsewhere(connections.slot)
    if not others:
        return False
    moved = connections.moved_since(now - MOVED_S)
    load, fewest = connections.load(), fewest + moved
    average = (total + load + moved) / (others + 1)
    if load - fewest > tolerance(fewest) and load > average:
        connections.moving(now)
        return True
    return False


def tolerance(fewest: int) -> int:
    """How many more connections than the least loaded other a worker may
    hold: one, or an eighth more (a few connections' difference among
    hundreds is not worth a reconnection, and a burst of hundreds is
    accepted in a few passes of the loop rather than one at a time)."""
    return max(1, fewest // 8)


class Connections(set):
    """uvicorn's set of a worker's open connections (``ServerState``), which
    publishes its load to the board whenever it changes: the connections
    open, plus those accepted and not yet set up, less those asked to
    reconnect elsewhere and not yet closed."""

    def __init__(self, board: Board, slot: int) -> None:
        super().__init__()
        self.board, self.slot = board, slot
        self.accepting = self.leaving = 0
        self.others_busy_until = 0.0
        self._moved: deque[float] = deque()  # when clients were asked to move

    def add(self, connection) -> None:
        super().add(connection)
        self.publish()

    def discard(self, connection) -> None:
        if connection in self:
            super().discard(connection)
            # Taken to be one that was asked to leave: it closes right
            # after its answer, before most others close.
            self.leaving = max(0, self.leaving - 1)
            self.publish()

    def publish(self) -> None:
        self.board.publish(self.slot, self.load())

    def load(self) -> int:
        return len(self) + self.accepting - self.leaving

    def moving(self, now: float) -> None:
        """One client is asked to reconnect elsewhere."""
        self.leaving += 1
        self._moved.append(now)
        self.publish()

    def moved_since(self, since: float) -> int:
        while self._moved and self._moved[0] < since:
            self._moved.popleft()
        return len(self._moved)


class Acceptor:
    """Accepts from one listening socket for one worker, by the rule above;
    stands in for the asyncio server uvicorn would have made (``close``,
    ``wait_closed``)."""

    def __init__(
        self,
        listener: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        connections: Connections,
        *,
        ssl=None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.listener = listener
        self.protocol_factory = protocol_factory
        self.connections = connections
        self.ssl = ssl
        self.board = connections.board
        self.slot = connections.slot
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task] = set()
        self.closed = False
        listener.setblocking(False)
        self.board.join(self.slot, os.getpid())
        self.loop.add_reader(listener.fileno(), self._readable)

    def _readable(self) -> None:
        fewest, _total, others = self.board.elsewhere(self.slot)
        while not others or self.connections.load() + 1 - fewest <= tolerance(fewest):
            if not self._accept():
                return
        # More here than elsewhere: leave this one to the others a moment.
        self.loop.remove_reader(self.listener.fileno())
        self.timer = self.loop.call_later(DEFER_S, self._deferred)

    def _deferred(self) -> None:
        self.timer = None
        if self.closed:
            return
        # Still waiting after DEFER_S: the others are busy (or stopped).
        if self._accept():
            self.connections.others_busy_until = time.monotonic() + OTHERS_BUSY_S
        if self.timer is None:  # not paused by a failed accept
            self.loop.add_reader(self.listener.fileno(), self._readable)

    def _accept(self) -> bool:
        """Accept one connection; False when none was waiting or accepting
        must pause."""
        try:
            connection, _address = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as failure:
            # Out of descriptors or memory: the connection stays queued.
            log.error("accept failed (%s): pausing accepts for %.0f s", failure, ACCEPT_RETRY_S)
            self.loop.remove_reader(self.listener.fileno())
            self.timer = self.loop.call_later(ACCEPT_RETRY_S, self._resume)
            return False
        connection.setblocking(False)
        self.connections.accepting += 1
        self.connections.publish()
        task = self.loop.create_task(self._set_up(connection))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    def _resume(self) -> None:
        self.timer = None
        if not self.closed:
            self.loop.add_reader(self.listener.fileno(), self._readable)

    async def _set_up(self, connection: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory, connection, ssl=self.ssl)
        except Exception as failure:  # a TLS handshake that failed, a reset
            log.debug("connection not set up: %s", failure)
            connection.close()
        finally:
            # connection_made has added it to the set by now, if it got there.
            self.connections.accepting -= 1
            self.connections.publish()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.loop.remove_reader(self.listener.fileno())
        # Shutting down: the others stop leaving connections to this one.
        self.board.leave(self.slot)

    async def wait_closed(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks))
