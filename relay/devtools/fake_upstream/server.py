"""The fake's HTTP server: the routes of every dialect, ``/_stats`` and
``/_reset``, and the command line (several processes on one port)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from types import ModuleType

import orjson
from aiohttp import web

from relay.contract.tokens import count_text
from relay.devtools.fake_upstream import (
    bedrock,
    cohere,
    gemini,
    jina,
    mistral,
    ollama,
    openai,
    voyage,
)
from relay.devtools.fake_upstream.common import Call, NotJson, parse_options

DIALECTS: tuple[ModuleType, ...] = (gemini, cohere, voyage, jina, mistral, ollama, bedrock)


class FakeUpstream:
    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.stats: dict[str, dict] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/x/{options}/v1/embeddings", self.embeddings)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)
        for dialect in DIALECTS:
            handler = self.dialect(dialect)
            for path in dialect.PATHS:
                app.router.add_post(f"/{dialect.NAME}{path}", handler)
                app.router.add_post(f"/x/{{options}}/{dialect.NAME}{path}", handler)
        app.router.add_get("/_stats", self.get_stats)
        app.router.add_post("/_reset", self.reset)
        return app

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats), content_type="application/json")

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.clear()
        return web.Response(body=b"{}", content_type="application/json")

    def route_stats(self, route: str) -> dict:
        stats = self.stats.setdefault(route, {"requests": 0, "in_flight": 0, "peak_in_flight": 0})
        stats["requests"] += 1
        stats["in_flight"] += 1
        stats["peak_in_flight"] = max(stats["peak_in_flight"], stats["in_flight"])
        return stats

    async def embeddings(self, request: web.Request) -> web.Response:
        route = request.match_info.get("options", "")
        options = parse_options(route)
        stats = self.route_stats(route)
        try:
            body = await request.read()
            stats["last_authorization"] = request.headers.get(
                "Authorization", request.headers.get("api-key", "")
            )
            latency_ms = float(options.get("latency", self.latency_ms))
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            if openai.slow(body, options):
                await asyncio.sleep(openai.SLOW_IF_S)
            response = openai.answer(body, options, stats, request)
            if "cut" in options and response.status == 200:
                return await self.cut_short(request, response.body, int(options["cut"]))
            return response
        finally:
            stats["in_flight"] -= 1

    def dialect(self, dialect: ModuleType):
        """One dialect's handler; its stats are keyed ``NAME:options``."""

        async def handle(request: web.Request) -> web.Response:
            raw = request.match_info.get("options", "")
            options = parse_options(raw)
            stats = self.route_stats(f"{dialect.NAME}:{raw}")
            try:
                body = await request.read()
                latency_ms = float(options.get("latency", self.latency_ms))
                if latency_ms:
                    await asyncio.sleep(latency_ms / 1000)
                if "status" in options:
                    status = int(options["status"])
                    return dialect.error(status, f"fake upstream failure {status}")
                if "quota" in options:
                    return dialect.out_of_quota()
                call = Call(request, body, options, stats)
                try:
                    return dialect.answer(call)
                except NotJson as exc:
                    return dialect.error(400, f"the body is {exc}")
            finally:
                stats["in_flight"] -= 1

        return handle

    async def cut_short(self, request: web.Request, answer: bytes, sent: int) -> web.Response:
        """Promise the whole answer, send its first ``sent`` bytes, hang up."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(answer)
        await response.prepare(request)
        await response.write(answer[:sent])
        request.transport.close()
        return response


def serve(port: int, latency_ms: float, host: str = "127.0.0.1") -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # Load the encoding before the port opens: loaded on the first request,
    # it took past a test relay's 2 s read timeout on a busy machine.
    count_text("warm up")
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
    parser = argparse.ArgumentParser(description="A fake embeddings upstream of many dialects.")
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
