"""Helpers shared by the tests of several packages (fixtures live in conftest.py).

Constants of the cast, the subprocesses the suite starts (the fake upstream,
the relay, a Celery worker), rows the tests create, a client's request, and
the helpers that tests of money, of the ASGI route and of upstream bodies
have in common.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from hypothesis import strategies as st

from accounts.models import ApiKey, Group, Tenant
from billing import ledger, live_sync
from billing.models import Balance, UsageRecord
from billing.pricing import cost_nanos
from billing.usage_events import UsageEvent
from relay.connections import pools
from relay.devtools.devstack import WEB_COMMAND
from relay.devtools.processes import free_port
from relay.models import Channel, ChannelModel

ROOT = Path(__file__).resolve().parent.parent
SMALL = "text-embedding-3-small"
LARGE = "text-embedding-3-large"
ADA = "text-embedding-ada-002"
SMALL_PRICE_NANOS = 20_000_000  # $0.02 per million tokens
STARTING_BALANCE_NANOS = 100 * 10**9  # $100: plenty, unless a test says otherwise

PROSE = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a "
    "brass lantern and a notebook in which he recorded the weather, the ships that passed, "
    "and the occasional whale that surfaced near the rocks. Over forty years he filled "
    "more than two hundred notebooks, and when the light was finally automated the "
    "harbour museum asked to keep them, because no other record described the coast so "
    "patiently or so well."
)
# Real text of more than 8192 cl100k tokens.
LONG_TEXT = " ".join([PROSE] * 120)


# --- processes ------------------------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout_s}s")


def relay_command(port: int, *options: str) -> list[str]:
    """The argv of one relay served by uvicorn, as gunicorn's workers serve it."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "relay.asgi:application",
        "--port",
        str(port),
        "--no-access-log",
        *options,
    ]


def web_command(port: int) -> list[str]:
    """The argv of gunicorn on ``port``, as devstack and compose start it."""
    return [sys.executable, "-m", *WEB_COMMAND, "--bind", f"127.0.0.1:{port}"]


@contextlib.contextmanager
def web_server(env: dict[str, str]) -> Iterator[tuple[int, psutil.Process]]:
    """gunicorn on a free port with ``env``: its port and master process, once
    all WEB_CONCURRENCY workers are forked."""
    port = free_port()
    process = subprocess.Popen(web_command(port), cwd=ROOT, env=env)
    try:
        wait_for_port(port, process)
        master = psutil.Process(process.pid)
        wait_until(lambda: len(master.children()) == int(env["WEB_CONCURRENCY"]))
        yield port, master
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def relay_nodes(env: dict[str, str], count: int = 2) -> Iterator[list[str]]:
    """``count`` relays, each its own gunicorn master with two workers, as on
    separate machines sharing one Redis and one PostgreSQL; their base URLs."""
    nodes, urls = [], []
    try:
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen(
                web_command(port),
                cwd=ROOT,
                env={"WEB_CONCURRENCY": "2", **env, "PORT": str(port)},
                stdout=subprocess.DEVNULL,
            )
            nodes.append(process)
            wait_for_port(port, process)
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for process in nodes:
            stop(process)


def wait_until(condition, timeout_s: float = 15, interval_s: float = 0.05):
    """Poll ``condition`` until it returns something truthy; fail on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last: {value!r})")
        time.sleep(interval_s)


@dataclass
class FakeUpstream:
    url: str

    def base_url(self, options: str = "") -> str:
        """A channel base URL; ``options`` as in relay/devtools/fake_upstream/."""
        return f"{self.url}/x/{options}/v1" if options else f"{self.url}/v1"

    def stats(self, options: str = "") -> dict:
        return httpx.get(f"{self.url}/_stats").json().get(options, {"requests": 0})

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset")


class CeleryWorker:
    started: list[CeleryWorker] = []  # every worker a test started, to know if one runs

    def __init__(self, env: dict[str, str], schedule: str | Path | None = None) -> None:
        self.env = env
        # Beat's schedule file: a worker started beside the session's one keeps its own.
        self.schedule = str(schedule or f"/tmp/celerybeat-test-{os.getpid()}")
        self.process: subprocess.Popen | None = None
        CeleryWorker.started.append(self)

    @classmethod
    def any_running(cls) -> bool:
        return any(w.process is not None and w.process.poll() is None for w in cls.started)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "relay",
                "worker",
                "--beat-thread",
                "--concurrency",
                "1",
                "--loglevel",
                "WARNING",
                "--schedule",
                self.schedule,
            ],
            cwd=ROOT,
            env=self.env,
            # As the relay runs it (relay/devtools/devstack.py): one process, tasks and
            # beat in threads. Its own process group, so kill() takes anything
            # it started down with it, as a crashed machine would.
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def uses_live_relay(test):
    """Marks a test that drives the live relay and worker: they only see
    committed rows, and the worker must be running."""
    test = pytest.mark.usefixtures("celery_worker")(test)
    return pytest.mark.django_db(transaction=True)(test)


# --- rows and requests --------------------------------------------------------------


def make_channel(
    group: Group,
    base_url: str,
    *,
    name: str = "main",
    priority: int = 0,
    weight: int = 1,
    models: dict[str, str] | None = None,
    credential: str = "sk-upstream-credential-0001",
) -> Channel:
    channel = Channel.objects.create(
        name=name, base_url=base_url, credential=credential, priority=priority, weight=weight
    )
    channel.groups.add(group)
    mapping = models or {SMALL: "", "text-embedding-3-large": "", "text-embedding-ada-002": ""}
    for model, upstream_model in mapping.items():
        ChannelModel.objects.create(channel=channel, model=model, upstream_model=upstream_model)
    return channel


def embed(client: httpx.Client, secret: str | None, body, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    if isinstance(body, dict | list):
        return client.post("/v1/embeddings", json=body, headers=headers, **kwargs)
    return client.post("/v1/embeddings", content=body, headers=headers, **kwargs)


def usage_event(
    api_key: ApiKey,
    *,
    tokens: int = 9,
    price: int = SMALL_PRICE_NANOS,
    status: str = UsageRecord.Status.SERVED,
    request_id: str | None = None,
) -> UsageEvent:
    """A usage event as the relay queues it for a served one-item request."""
    return UsageEvent(
        request_id=request_id or f"req_{uuid.uuid4().hex}",
        tenant_id=api_key.tenant_id,
        api_key_id=api_key.pk,
        group_id=api_key.group_id,
        channel_id=None,
        model=SMALL,
        served_model=SMALL,
        input_count=1,
        counted_tokens=tokens,
        tokens=tokens,
        token_source=UsageRecord.TokenSource.PROMPT_TOKENS,
        price_per_mtok_nanos=price,
        latency_ms=5,
        status=status,
        end_user="",
        created_ms=int(time.time() * 1000),
    )


def records(**filters) -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(**filters).order_by("created"))


def run(coroutine):
    """Run ``coroutine`` in a loop of its own, then close the Redis pool it opened there."""

    async def main():
        try:
            return await coroutine
        finally:
            await pools.redis().aclose()

    return asyncio.run(main())


# --- money on the request path ------------------------------------------------------

HELLO = "hello world"  # 2 cl100k tokens
HELLO_COST = cost_nanos(2, SMALL_PRICE_NANOS)  # 40 nanos
ENVELOPE_KEYS = {"message", "type", "param", "code"}
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
# The worker is a separate process on a shared two-core machine: generous, as a
# wait only ends early when the condition holds.
WORKER_TIMEOUT_S = 30


def eventually(condition):
    return wait_until(condition, timeout_s=WORKER_TIMEOUT_S)


def funded_key(group, *, requests: int, name: str = "funded", **key_fields):
    """A fresh tenant holding exactly ``requests`` HELLO requests' worth, and a key."""
    slug = f"{name}-{uuid.uuid4().hex[:8]}"
    tenant = Tenant.objects.create(slug=slug, name=slug)
    if requests:
        ledger.top_up(tenant=tenant, amount_nanos=requests * HELLO_COST, reason="test funds")
    api_key, secret = ApiKey.issue(tenant=tenant, group=group, name=name, **key_fields)
    return tenant, api_key, secret


def hello(relay, secret: str):
    return embed(relay, secret, {"model": SMALL, "input": HELLO})


def live_now(tenant_id: int) -> tuple[int, int] | None:
    return live_sync.live_balance(tenant_id)


def balance_row(tenant) -> int:
    return Balance.objects.get(tenant=tenant).balance_nanos


def assert_envelope(response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["type"] == error_type
    assert isinstance(error["message"], str) and error["message"]
    return error


# --- POST /v1/embeddings in process, as ASGI messages --------------------------------

BODY = b'{"model": "text-embedding-3-small", "input": "hi"}'


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    messages: list[dict]
    reads: int  # how many times the app asked for the request body


def body_messages(*chunks: bytes) -> list[dict]:
    return [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]


def scope(method: str, path: str, authorization: str | None) -> dict:
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def call_async(app, request_scope: dict, messages: list[dict], sent: list[dict]) -> int:
    pending = list(messages)
    reads = 0

    async def receive():
        nonlocal reads
        reads += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    try:
        await app(request_scope, receive, send)
    finally:
        # Each asyncio.run is a loop of its own, and so is its upstream pool.
        await pools.http().close()
    return reads


def call(app, method="POST", path="/v1/embeddings", authorization=None, messages=None) -> Answer:
    sent: list[dict] = []
    # In a thread of its own, as in a server: the event loop's thread never
    # holds a database connection (queries run in off_loop threads), and the
    # Django handler checks that thread's connection when a request ends.
    with ThreadPoolExecutor(1) as loop_thread:
        reads = loop_thread.submit(
            asyncio.run,
            call_async(
                app, scope(method, path, authorization), messages or body_messages(BODY), sent
            ),
        ).result()
    if not sent:
        return Answer(0, {}, b"", sent, reads)
    start, *bodies = sent
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    body = b"".join(message.get("body", b"") for message in bodies)
    return Answer(start["status"], headers, body, sent, reads)


# --- bodies an upstream may send ----------------------------------------------------

counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))
usages = st.one_of(
    st.just(...),
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": counts,
            "total_tokens": counts,
            "prompt_tokens_details": st.one_of(
                st.none(),
                st.dictionaries(
                    st.sampled_from(["cached_tokens", "text_tokens"]), st.integers(0, 100)
                ),
            ),
        },
    ),
)
floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
embeddings = st.one_of(
    st.lists(floats32, min_size=1, max_size=4),
    st.lists(floats32, min_size=1, max_size=4).map(
        lambda v: base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
    ),
)
