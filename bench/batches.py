"""The batch engine's rows of ``make bench``: 2,048 inputs to a channel that
takes 96 a call (the 20 ms fake; an OpenAI-compatible server answering
base64), uncached, fully cached and half cached; and the same batch to
Cohere's dialect, which answers JSON floats (its row shows what reading
44 MB of JSON numbers costs; it has no target).

One request at a time (c=1): the figures are a request's wall time, in
upstream round trips (its p50 over the upstream's 20 ms; sent one call
after another, the 22 calls would take 22), and the relay's CPU per request
(web and worker processes, as the main rows count it).
"""

from __future__ import annotations

import statistics
import time

import orjson

from bench import floor
from bench.meter import Meter, quiet
from bench.targets import Relay, post

MODEL = "bge-large-en-v1.5"  # as relay/management/commands/seed_bench.py seeds it
COHERE_MODEL = "embed-english-v3.0"
DIMENSIONS = 1024
ITEMS = 2048
UPSTREAM_MS = 20
# 20 requests a row (40 for the fast cached one): over 5, the p50 of one row
# moved by a round trip between runs, and psutil's 10 ms ticks weighed ±2 ms
# a request.
REQUESTS = 20
CACHED_REQUESTS = 40
# Round trips of wall time for 2,048 inputs to a 96-item provider (issue 14),
# and the relay's CPU for the same batch answered from the cache.
ROUND_TRIPS_TARGET = 4
CACHED_CPU_TARGET_MS = 10.0


def texts(prefix: str, count: int = ITEMS) -> list[str]:
    return [f"{prefix} {n}: the quarterly report lists revenue by region" for n in range(count)]


def body(inputs: list[str], model: str = MODEL) -> bytes:
    fields = {"model": model, "input": inputs, "encoding_format": "base64"}
    if model == MODEL:
        fields["dimensions"] = DIMENSIONS  # Cohere's v3 models have 1,024 themselves
    return orjson.dumps(fields)


def measure(
    name: str,
    url: str,
    key: str,
    bodies: list[bytes],
    *,
    groups: dict[str, list[int]],
    warmup: bytes | None = None,
) -> dict:
    """Send each body once, in turn; wall times and the relay's CPU. First
    one request not counted (``warmup``, else the first body: the upstream
    connections and the first call's costs, as the other rows measure after
    a warm-up), then a wait until the relay and the upstream are quiet (the
    usage records of the c=64 rows are still being written when these start)."""
    post(url, bodies[0] if warmup is None else warmup, f"Bearer {key}", timeout_s=120)
    quiet([pid for group in ("web", "worker", "upstream") for pid in groups.get(group, [])])
    meter = Meter(groups)
    meter.start()
    walls, errors = [], 0
    for payload in bodies:
        started = time.perf_counter()
        status, answer = post(url, payload, f"Bearer {key}", timeout_s=120)
        walls.append((time.perf_counter() - started) * 1000)
        if status != 200 or len(orjson.loads(answer)["data"]) != ITEMS:
            errors += 1
    figures = meter.stop()
    web_s, worker_s = (figures["cpu_s"].get(group, 0.0) for group in ("web", "worker"))
    cpu_s = web_s + worker_s
    p50 = statistics.median(walls)
    return {
        "target": "relay",
        "upstream": f"{UPSTREAM_MS}ms",
        "body": name,
        "connections": 1,
        "requests": len(bodies),
        "errors": errors,
        "p50_ms": round(p50, 1),
        "round_trips": round(p50 / UPSTREAM_MS, 2),
        "cpu_ms_per_request": round(1000 * cpu_s / len(bodies), 2),
        "web_cpu_ms_per_request": round(1000 * web_s / len(bodies), 2),
        "worker_cpu_ms_per_request": round(1000 * worker_s / len(bodies), 2),
    }


def run(relay: Relay, *, groups: dict[str, list[int]]) -> list[dict]:
    url, keys = relay.url, relay.keys
    uncached, cached = keys["split96"], keys["split96-cached"]
    rows = [
        measure("batch2048-96", url, uncached, [body(texts("plain"))] * REQUESTS, groups=groups)
    ]
    whole = body(texts("whole"))
    post(url, whole, f"Bearer {cached}", timeout_s=120)  # fills the cache
    time.sleep(1)  # the cache's writes follow the answer
    rows.append(measure("batch2048-cached", url, cached, [whole] * CACHED_REQUESTS, groups=groups))
    rows.append(
        floor.measure(
            relay.cache_redis_url, texts("whole"), dimensions=DIMENSIONS, requests=CACHED_REQUESTS
        )
    )
    warm = texts("half")[::2]
    post(url, body(warm), f"Bearer {cached}", timeout_s=120)
    time.sleep(1)
    # Each request half cached: the warmed half, and half never sent before
    # (the warm-up request's new half too).
    halves = [
        body(
            [
                text
                for pair in zip(warm, texts(f"new {n}", ITEMS // 2), strict=True)
                for text in pair
            ]
        )
        for n in range(REQUESTS + 1)
    ]
    rows.append(measure("batch2048-half", url, cached, halves[1:], groups=groups, warmup=halves[0]))
    rows.append(
        measure(
            "batch2048-cohere",
            url,
            keys["cohere"],
            [body(texts("floats"), COHERE_MODEL)] * REQUESTS,
            groups=groups,
        )
    )
    return rows


def describe(row: dict) -> str:
    if row["target"] == "floor":
        return floor.describe(row)
    return (
        f"relay    {row['upstream']:>6} {row['body']:<17} c=1  p50 {row['p50_ms']:.1f} ms "
        f"= {row['round_trips']:.1f} upstream round trips  cpu {row['cpu_ms_per_request']:.1f}"
        f" ms/req (web {row['web_cpu_ms_per_request']:.1f} + worker "
        f"{row['worker_cpu_ms_per_request']:.1f})  errors {row['errors']}/{row['requests']}"
    )


def _floors(cached: dict, found: dict[str, dict]) -> str:
    row = found.get(floor.BODY)
    if row is None:
        return ""
    bare = row["bare_cpu_ms_per_request"]
    return (
        f" (its floor here: {row['kernel_cpu_ms_per_request']:.1f} ms of socket reads and "
        f"writes alone, {bare:.1f} ms with the relay's keys and answer; the relay at "
        f"{cached['cpu_ms_per_request'] / bare:.1f}x the latter)"
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def verdicts(rows: list[dict]) -> list[dict]:
    found = {row["body"]: row for row in rows}
    verdicts = []
    split = found.get("batch2048-96")
    if split:
        verdicts.append(
            {
                "target": f"2,048 inputs to a 96-item provider at {UPSTREAM_MS} ms: under "
                f"{ROUND_TRIPS_TARGET} upstream round trips of wall time",
                "verdict": _verdict(
                    split["round_trips"] < ROUND_TRIPS_TARGET and not split["errors"]
                ),
                "measured": f"{split['round_trips']:.1f} ({split['p50_ms']:.0f} ms p50)",
            }
        )
    cached = found.get("batch2048-cached")
    if cached:
        verdicts.append(
            {
                "target": "the same batch fully cached: relay CPU under "
                f"{CACHED_CPU_TARGET_MS:.0f} ms a request",
                "verdict": _verdict(
                    cached["cpu_ms_per_request"] < CACHED_CPU_TARGET_MS and not cached["errors"]
                ),
                "measured": f"{cached['cpu_ms_per_request']:.1f} ms" + _floors(cached, found),
            }
        )
    return verdicts
