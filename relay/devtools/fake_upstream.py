"""An OpenAI-compatible fake embeddings server for tests, benchmarks and the demo.

Deterministic unit vectors (the same text always gives the same vector),
real cl100k_base token counts, and behaviour chosen per channel through the
URL, so one server can stand in for many upstreams:

    /v1/embeddings                                  a healthy upstream
    /x/status=503/v1/embeddings                     always fails with 503
    /x/latency=200,usage=none/v1/embeddings         slow, and omits usage
    /x/usage=total/v1/...   only total_tokens       /x/usage=zero/v1/...  zeros
    /x/usage=123/v1/...     reports 123 prompt tokens
    /x/floats/v1/...        ignores encoding_format (floats only)
    /x/name=foo/v1/...      reports model "foo"
    /x/key=sk-x/v1/...      requires this credential (401 otherwise)
    /x/lead/v1/...          puts model and usage before data (as Jina does)
    /x/cut=1000/v1/...      hangs up after 1,000 bytes of its answer

``GET /_stats`` returns per-route counters (requests, peak concurrency, the
last body and Authorization seen); ``POST /_reset`` clears them.

Run: ``python -m relay.devtools.fake_upstream --port 9100 --latency-ms 20 --processes 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import hashlib
import multiprocessing
import os
import random
import signal
import struct
import sys
from functools import lru_cache

import orjson
from aiohttp import web

from relay.contract.tokens import count_text

NATIVE_DIMENSIONS = {"text-embedding-3-large": 3072}
DEFAULT_DIMENSIONS = 1536


@lru_cache(maxsize=4096)
def vector(item: str, dimensions: int) -> tuple[float, ...]:
    seed = int.from_bytes(hashlib.sha256(item.encode()).digest()[:8], "little")
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = sum(x * x for x in raw) ** 0.5
    # Rounded through float32, so base64 and float answers carry the same values.
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in raw))
    return struct.unpack(f"<{dimensions}f", packed)


@lru_cache(maxsize=4096)
def encoded(item: str, dimensions: int, as_base64: bool) -> bytes:
    values = vector(item, dimensions)
    if as_base64:
        return orjson.dumps(base64.b64encode(struct.pack(f"<{dimensions}f", *values)).decode())
    return orjson.dumps(values)


def parse_options(raw: str) -> dict[str, str]:
    options = {}
    for part in filter(None, raw.split(",")):
        name, _, value = part.partition("=")
        options[name] = value
    return options


def error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class FakeUpstream:
    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.stats: dict[str, dict] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/x/{options}/v1/embeddings", self.embeddings)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)
        app.router.add_get("/_stats", self.get_stats)
        app.router.add_post("/_reset", self.reset)
        return app

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats), content_type="application/json")

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.clear()
        return web.Response(body=b"{}", content_type="application/json")

    async def embeddings(self, request: web.Request) -> web.Response:
        route = request.match_info.get("options", "")
        options = parse_options(route)
        stats = self.stats.setdefault(
            route, {"requests": 0, "in_flight": 0, "peak_in_flight": 0}
        )
        stats["requests"] += 1
        stats["in_flight"] += 1
        stats["peak_in_flight"] = max(stats["peak_in_flight"], stats["in_flight"])
        try:
            body = await request.read()
            stats["last_authorization"] = request.headers.get(
                "Authorization", request.headers.get("api-key", "")
            )
            latency_ms = float(options.get("latency", self.latency_ms))
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            response = self.answer(body, options, stats, request)
            if "cut" in options and response.status == 200:
                return await self.cut_short(request, response.body, int(options["cut"]))
            return response
        finally:
            stats["in_flight"] -= 1

    async def cut_short(self, request: web.Request, answer: bytes, sent: int) -> web.Response:
        """Promise the whole answer, send its first ``sent`` bytes, hang up."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(answer)
        await response.prepare(request)
        await response.write(answer[:sent])
        request.transport.close()
        return response

    def answer(self, body: bytes, options: dict, stats: dict, request: web.Request) -> web.Response:
        if "status" in options:
            status = int(options["status"])
            return error(status, f"fake upstream failure {status}", "server_error")
        required_key = options.get("key")
        sent = stats["last_authorization"].removeprefix("Bearer ")
        if required_key and sent != required_key or not sent:
            return error(401, "Incorrect API key provided.")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return error(400, "We could not parse the JSON body of your request.")
        stats["last_body"] = payload
        model = request.match_info.get("deployment") or payload.get("model", "")
        items = payload.get("input")
        one_token_list = isinstance(items, list) and items and isinstance(items[0], int)
        if isinstance(items, str) or one_token_list:
            items = [items]
        if not isinstance(items, list) or not items:
            return error(400, "'$.input' is invalid.")
        dimensions = payload.get("dimensions") or NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
        as_base64 = payload.get("encoding_format") == "base64" and "floats" not in options
        texts = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]
        prompt_tokens = sum(
            count_text(item) if isinstance(item, str) else len(item) for item in items
        )
        data = b",".join(
            b'{"object":"embedding","index":%d,"embedding":%s}'
            % (index, encoded(text, dimensions, as_base64))
            for index, text in enumerate(texts)
        )
        fields = b'"model":' + orjson.dumps(options.get("name", model))
        usage = options.get("usage")
        if usage == "none":
            pass
        elif usage == "total":
            fields += b',"usage":{"total_tokens":%d}' % prompt_tokens
        elif usage == "zero":
            fields += b',"usage":{"prompt_tokens":0,"total_tokens":0}'
        else:
            reported_tokens = int(usage) if usage else prompt_tokens
            fields += b',"usage":{"prompt_tokens":%d,"total_tokens":%d}' % (
                reported_tokens,
                reported_tokens,
            )
        if "lead" in options:
            out = b'{' + fields + b',"object":"list","data":[' + data + b"]}"
        else:
            out = b'{"object":"list","data":[' + data + b"]," + fields + b"}"
        return web.Response(body=out, content_type="application/json")


def serve(port: int, latency_ms: float, host: str = "127.0.0.1") -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        FakeUpstream(latency_ms=latency_ms).app(),
        host=host,
        port=port,
        reuse_port=True,
        access_log=None,
        print=None,
    )


def _serve_child(port: int, latency_ms: float, host: str, parent_pid: int) -> None:
    # A child gets SIGTERM when the parent dies, even by kill -9: without it
    # the children of a killed server go on holding the port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        return  # the parent died before the line above took effect
    serve(port, latency_ms, host)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes == 1:
        serve(args.port, args.latency_ms, args.host)
        return
    # Several processes share the port (SO_REUSEPORT) so the fake is never the
    # bottleneck of a benchmark. Per-route stats are then per process.
    workers = [
        multiprocessing.Process(
            target=_serve_child, args=(args.port, args.latency_ms, args.host, os.getpid())
        )
        for _ in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    # SIGTERM to the parent stops the children too (the default action would
    # kill the parent alone).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for worker in workers:
            worker.join()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(5)


if __name__ == "__main__":
    main()
