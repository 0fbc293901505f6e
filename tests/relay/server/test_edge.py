"""The connection edge under gunicorn, as deployed (relay/server/edge.py): a
client sending its request slowly is cut off with OpenAI's 408, and
thousands of idle connections neither hold the worker nor its descriptors.
Each test is bounded: a socket read that waits past its bound fails it."""

from __future__ import annotations

import socket
import threading
import time

import orjson
import pytest

from tests.helpers import web_server

HEADER_TIMEOUT_S = 1
BODY_TIMEOUT_S = 2
CAP = 100
BOUND_S = 15  # the longest any read below may wait


@pytest.fixture(scope="module")
def edge(server_env, tmp_path_factory):
    """One gunicorn worker with short deadlines and a small cap."""
    env = {
        **server_env,
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")),
        "RELAY_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "RELAY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "RELAY_MAX_CONNECTIONS_PER_PROCESS": str(CAP),
    }
    with web_server(env) as (port, master):
        [worker] = master.children()
        yield port, worker


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND_S)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer (status, headers, body); fails if it takes past BOUND_S."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    if headers.get("transfer-encoding") == "chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
    else:
        while len(body) < int(headers.get("content-length", 0)):
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def healthz(port: int) -> int:
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        return read_answer(sock)[0]


def test_a_body_sent_a_byte_a_second_is_cut_off_with_openais_408(edge):
    port, _worker = edge
    sock = connect(port)
    sock.sendall(
        b"POST /v1/embeddings HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer sk-x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    stopped = threading.Event()

    def trickle() -> None:
        while not stopped.wait(1):
            try:
                sock.sendall(b" ")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    try:
        # Meanwhile the worker serves others.
        assert healthz(port) == 200
        status, headers, body = read_answer(sock)
        waited_s = time.monotonic() - started
    finally:
        stopped.set()
    assert status == 408
    assert headers["connection"] == "close"
    error = orjson.loads(body)["error"]
    assert error["code"] == "request_timeout" and error["type"] == "invalid_request_error"
    assert waited_s < BOUND_S  # cut at RELAY_BODY_TIMEOUT_S, not when the client is done
    assert closed_by_server(sock)
    sock.close()


def test_a_head_sent_slowly_is_cut_off_with_408(edge):
    port, _worker = edge
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for n in range(3):
            time.sleep(HEADER_TIMEOUT_S / 2)
            try:
                sock.sendall(b"X-Slow-%d: yes\r\n" % n)
            except OSError:
                break
        status, _headers, _body = read_answer(sock)
        assert status == 408
        assert closed_by_server(sock)


def test_a_connection_that_never_sends_a_byte_is_closed(edge):
    port, _worker = edge
    with connect(port) as sock:
        status, _headers, _body = read_answer(sock)
        assert status == 408
        assert closed_by_server(sock)


def test_a_keep_alive_connection_may_idle_between_requests_past_the_header_deadline(edge):
    port, _worker = edge
    with connect(port) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
            assert read_answer(sock)[0] == 200
            time.sleep(HEADER_TIMEOUT_S * 1.5)  # idle, not sending a head slowly


def test_thousands_of_idle_keep_alive_connections_hold_neither_the_worker_nor_its_descriptors(
    edge,
):
    port, worker = edge
    fds_before = worker.num_fds()
    held = []
    try:
        for _ in range(2000):
            sock = connect(port)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
            assert read_answer(sock)[0] == 200  # each one served, then left idle
            held.append(sock)

        # The worker holds at most its cap: the idle ones longest idle were closed.
        assert worker.num_fds() <= fds_before + CAP + 5
        open_here = [sock for sock in held[-CAP // 2 :] if not _closed_now(sock)]
        assert len(open_here) == CAP // 2  # the most recent are kept
        assert sum(not _closed_now(sock) for sock in held) <= CAP
        # And a newcomer is served at once.
        assert healthz(port) == 200
    finally:
        for sock in held:
            sock.close()


def _closed_now(sock: socket.socket) -> bool:
    """Whether the server has closed it (read past anything left unread)."""
    sock.setblocking(False)
    try:
        while True:
            if sock.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(BOUND_S)
