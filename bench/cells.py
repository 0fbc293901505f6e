"""The benchmark's matrix: what is sent (the bodies), at which concurrencies,
against which upstream delays, and what a correct answer to each is
(bench/run.py runs the cells in this order)."""

from __future__ import annotations

import os

import orjson

from bench.targets import MODEL, Route

UPSTREAMS = {"20ms": 20, "200ms": 200}
SENTENCES = [
    "The food was delicious and the waiter was friendly.",
    "A quick brown fox jumps over the lazy dog.",
    "Embeddings map text to vectors that capture meaning.",
    "The meeting has been moved to Thursday afternoon.",
    "Please keep the receipt for your records.",
    "Rain is expected later this evening in the north.",
    "She plays the cello in the city orchestra.",
    "Our servers are located in three regions.",
    "The invoice total includes tax and shipping.",
    "He forgot his umbrella on the train again.",
    "This library parses JSON without copying buffers.",
    "The museum opens at nine on weekdays.",
    "Customer support replied within an hour.",
    "The garden needs watering twice a week.",
    "A new version of the app is available.",
    "Turn left at the second traffic light.",
]
BODIES = {
    "one": {"model": MODEL, "input": SENTENCES[0]},
    "batch16": {"model": MODEL, "input": SENTENCES},
    "batch16-base64": {"model": MODEL, "input": SENTENCES, "encoding_format": "base64"},
}
CONCURRENCY = (1, 16, 64, 256, 1000)
# LiteLLM spends ~0.3 s of CPU on each 16-input float request and keeps
# working on requests whose client left: 256 or 1,000 of them in flight take
# minutes to drain after every run, which would stretch the benchmark far past
# 15 minutes for a figure that is ~0 rps anyway.
LITELLM_NOT_RUN = {("batch16", 256), ("batch16", 1000)}
# The cell of the latency target: its margin (3 ms) is about what the relay's
# p50 moves between two runs of the same code here (docs/benchmarks.md, "Run
# to run"), so it is measured in rounds, each target in turn, and judged on
# the median (bench/report.py).
LATENCY_CELL = ("20ms", "one", 16)


def matrix(quick: bool) -> list[tuple[str, str, int, int]]:
    """(upstream, body, connections, round) cells, in the order they run."""
    if quick:
        cells = [("20ms", body, c) for body in BODIES for c in (16, 64)]
    else:
        cells = [("20ms", body, c) for body in BODIES for c in CONCURRENCY] + [
            ("200ms", "one", c) for c in (256, 1000)
        ]
    bodies = os.environ.get("BENCH_BODIES")
    concurrency = os.environ.get("BENCH_CONCURRENCY")
    rounds = max(1, int(os.environ.get("BENCH_LATENCY_ROUNDS", "3")))
    return [
        (upstream, body, c, n)
        for upstream, body, c in cells
        if (not bodies or body in bodies.split(","))
        and (not concurrency or str(c) in concurrency.split(","))
        for n in range(1, (rounds if (upstream, body, c) == LATENCY_CELL else 1) + 1)
    ]


def body_for(name: str, route: Route) -> bytes:
    return orjson.dumps({**BODIES[name], "model": route.model})


def check_answer(name: str, status: int, answer: bytes) -> str | None:
    """Why one answer is not a correct embeddings response, or None."""
    if status != 200:
        return f"status {status}: {answer[:300]!r}"
    data = orjson.loads(answer)
    items = data.get("data") or []
    expected = 1 if name == "one" else len(SENTENCES)
    if len(items) != expected:
        return f"{len(items)} embeddings where {expected} were asked for"
    wanted = str if name.endswith("base64") else list
    if not all(isinstance(item.get("embedding"), wanted) for item in items):
        return f"embeddings are not {wanted.__name__}s"
    if not (data.get("usage") or {}).get("prompt_tokens"):
        return "no usage.prompt_tokens"
    return None
