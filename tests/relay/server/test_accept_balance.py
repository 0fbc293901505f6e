"""Web workers share connections evenly (relay/server/accept_balance.py): the board
alone, then gunicorn with the project's own config and two workers."""

from __future__ import annotations

import http.client
import os
import signal
import time

import psutil
import pytest

from relay.server import accept_balance
from tests.helpers import wait_until, web_server


def test_the_board_tells_each_worker_about_the_others():
    board = accept_balance.Board(4)
    first, second = board.reserve(set()), board.reserve({0})
    assert (first, second) == (0, 1)
    # Reserved, not yet serving: not counted as anyone's alternative.
    assert board.elsewhere(0) == (0, 0, 0)
    board.join(0, 1000)
    board.join(1, 1001)
    board.join(2, 1002)
    board.publish(0, 5)
    board.publish(1, 3)
    board.publish(2, 4)
    assert board.elsewhere(0) == (3, 7, 2)
    assert board.elsewhere(1) == (4, 9, 2)
    board.leave(1)  # shutting down: takes no more
    assert board.elsewhere(0) == (4, 4, 1)
    board.free(1)
    assert board.reserve({0, 2}) == 1


def holding(monkeypatch, mine: int, other: int) -> accept_balance.Connections:
    board = accept_balance.Board(2)
    board.join(0, 1000)
    board.join(1, 1001)
    here = accept_balance.Connections(board, 0)
    here.update(object() for _ in range(mine))
    here.publish()
    board.publish(1, other)
    monkeypatch.setattr(accept_balance, "here", here)
    return here


@pytest.mark.parametrize(
    ("mine", "other", "moved"),
    [
        (9, 8, 0),  # within one
        (10, 8, 1),  # 9/9 once the one moved has reconnected there
        (16, 0, 8),  # half, not all: the moved ones come back to the other
        (450, 400, 0),  # within an eighth
        (480, 400, 15),  # 465 here, 415 there: within an eighth
    ],
)
def test_a_worker_asks_as_many_clients_to_reconnect_as_the_difference(
    monkeypatch, mine, other, moved
):
    here = holding(monkeypatch, mine, other)

    asked = 0
    while accept_balance.reconnect_elsewhere():
        asked += 1
        assert asked <= mine
    assert asked == moved
    assert here.board.cells[1] == mine - moved  # the board counts them gone

    # Each closes: the count stays as it was with them gone.
    for connection in list(here)[:moved]:
        here.discard(connection)
    assert here.load() == mine - moved
    assert here.board.cells[1] == mine - moved


def test_outside_a_balanced_worker_nobody_is_asked_to_reconnect(monkeypatch):
    monkeypatch.setattr(accept_balance, "here", None)
    assert accept_balance.reconnect_elsewhere() is False


# gunicorn, as devstack and compose start it.


@pytest.fixture
def gunicorn(server_env, tmp_path):
    env = {
        **server_env,
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        # These tests hold connections that send nothing while they count
        # them; the edge would close those after its 10 s head deadline
        # (relay/server/edge.py, tested in test_edge.py).
        "RELAY_HEADER_TIMEOUT_S": "600",
    }
    with web_server(env) as (port, master):
        warm_up(port, master)
        yield port, master


def warm_up(port: int, master: psutil.Process) -> None:
    """Until both workers serve (a worker still starting takes no share:
    the other accepts everything meanwhile) and each has answered once (a
    first answer is slower); then the connections held before, no more."""
    before = per_worker(port, master)
    opened = []
    for _ in range(50):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ask(connection)
        opened.append(connection)
        if per_worker(port, master)[0] > 0:
            break
        time.sleep(0.05)
    for connection in opened:
        connection.close()
    wait_until(lambda: sorted(per_worker(port, master)) == before)


def per_worker(port: int, master: psutil.Process) -> list[int]:
    """Established connections to ``port`` each worker holds, fewest first."""
    return sorted(
        sum(
            1
            for c in worker.net_connections("tcp")
            if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
        )
        for worker in master.children()
    )


def ask(connection: http.client.HTTPConnection) -> str | None:
    """One request on the embeddings route (refused: no key); the answer's
    Connection header. http.client reconnects by itself after a close."""
    connection.request(
        "POST", "/v1/embeddings", body=b"{}", headers={"Content-Type": "application/json"}
    )
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 401
    return answer.getheader("Connection")


def test_connections_opened_one_after_another_are_split_evenly(gunicorn):
    port, master = gunicorn
    connections = []
    for opened in range(1, 17):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.connect()
        connections.append(connection)
        # Each accepted before the next arrives.
        wait_until(lambda opened=opened: sum(per_worker(port, master)) == opened)

    assert per_worker(port, master) == [8, 8]
    for connection in connections:
        connection.close()


def test_connections_piled_on_one_worker_are_moved_to_the_other(gunicorn):
    port, master = gunicorn
    stopped, running = master.children()
    stopped.suspend()
    try:
        # The stopped worker takes none; the other takes every one after
        # leaving each a moment to the stopped one, answers them all, and
        # asks none to reconnect (they would only come back).
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(16)]
        for connection in connections:
            assert ask(connection) is None
        assert per_worker(port, master) == [0, 16]
    finally:
        stopped.resume()

    # Once the other has been seen taking connections again (after
    # OTHERS_BUSY_S), the loaded one moves the difference over.
    closes, deadline = 0, time.monotonic() + 10
    while per_worker(port, master) != [8, 8] and time.monotonic() < deadline:
        closes += sum(ask(connection) == "close" for connection in connections)
        time.sleep(0.1)
    assert per_worker(port, master) == [8, 8]
    # The difference moved, not every connection: 8, or one or two more when
    # the other worker, busy answering, let a returning client wait past
    # DEFER_S and the loaded one took it back (the exact count for given
    # loads is test_a_worker_asks_as_many_clients_to_reconnect_as_the_difference).
    assert 8 <= closes <= 10
    for connection in connections:
        connection.close()


def test_a_worker_that_replaces_a_dead_one_gets_the_new_connections(gunicorn):
    port, master = gunicorn
    first = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(8)]
    for connection in first:
        ask(connection)
    dead = master.children()[0]
    os.kill(dead.pid, signal.SIGKILL)
    wait_until(
        lambda: (
            len(workers := master.children()) == 2
            and dead.pid not in {worker.pid for worker in workers}
        )
    )
    [none, kept] = per_worker(port, master)
    assert none == 0 and kept > 0
    warm_up(port, master)

    # The dead worker's slot went back to the board and to its successor,
    # which starts with none: the next connections go to it.
    more = []
    for opened in range(1, kept + 1):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.connect()
        more.append(connection)
        # Each accepted before the next arrives, as in the first test.
        wait_until(lambda opened=opened: sum(per_worker(port, master)) == kept + opened)
    assert per_worker(port, master) == [kept, kept]
    for connection in first + more:
        connection.close()
