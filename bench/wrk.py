"""Running wrk with bench/embeddings.lua and reading the line its ``done`` hook prints."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT_TEMPLATE = Path(__file__).resolve().parent / "embeddings.lua"
MARKER = "BENCH_JSON "
# Long enough that only a stuck request counts as a timeout.
TIMEOUT_S = 30


@dataclass
class WrkResult:
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    bytes_read: int
    errors: dict[str, int]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict:
        return {**asdict(self), "error_count": self.error_count}


def executable() -> str | None:
    return shutil.which("wrk")


def render_script(workdir: Path, *, body: bytes, authorization: str) -> Path:
    """bench/embeddings.lua with this body and Authorization header filled in."""
    text = body.decode()
    for value in (text, authorization):
        if "]==]" in value:  # would end the Lua long string early
            raise ValueError("a body or header may not contain ']==]'")
    script = (
        SCRIPT_TEMPLATE.read_text()
        .replace("{{BODY}}", text)
        .replace("{{AUTHORIZATION}}", authorization)
    )
    name = hashlib.sha256(script.encode()).hexdigest()[:16]
    path = workdir / f"wrk-{name}.lua"
    if not path.exists():
        path.write_text(script)
    return path


def run(url: str, script: Path, *, connections: int, duration_s: int) -> WrkResult:
    """One closed-loop run: ``connections`` connections, each sending its next
    request as soon as the previous answer has arrived."""
    if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"the benchmark only sends traffic to 127.0.0.1, not {url}")
    threads = min(2, connections)  # wrk needs at least one connection per thread
    completed = subprocess.run(
        [
            executable() or "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--timeout",
            f"{TIMEOUT_S}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration_s + TIMEOUT_S + 60,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            break
    else:
        raise RuntimeError(
            f"wrk exited {completed.returncode} without a result line:\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        )
    duration = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    return WrkResult(
        connections=connections,
        duration_s=round(duration, 3),
        requests=raw["requests"],
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        mean_ms=round(latency["mean"] / 1000, 3),
        bytes_read=raw["bytes"],
        errors=raw["errors"],
    )
