"""What every dialect of the fake shares: the deterministic vectors, the
route options, and one call as a dialect sees it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import orjson
import pybase64
from aiohttp import web

from relay.contract.tokens import count_text


@lru_cache(maxsize=16384)
def raw_vector(item: str, dimensions: int) -> bytes:
    """A unit vector that is a function of ``item`` alone, as little-endian
    float32 bytes: SHAKE-256 of it, read as numbers in [-0.5, 0.5). Cheap
    (2,048 new 1,024-number vectors in tens of ms, where Python's random took
    a second and decided the benchmark); any vector direction serves, it need
    not be Gaussian. Kept as bytes (4 KiB at 1,024 dimensions, 64 MiB for the
    whole cache) so that a benchmark's repeated batches cost the fake next to
    nothing, as a remote server's work costs the relay's machine nothing."""
    stream = hashlib.shake_256(item.encode()).digest(4 * dimensions)
    raw = np.frombuffer(stream, dtype="<u4") / 2.0**32 - 0.5
    return (raw / np.linalg.norm(raw)).astype("<f4").tobytes()


@lru_cache(maxsize=4096)
def vector(item: str, dimensions: int) -> tuple[float, ...]:
    """``raw_vector`` as numbers (float32 values, so base64 and float answers
    carry the same values)."""
    return tuple(np.frombuffer(raw_vector(item, dimensions), dtype="<f4").tolist())


@lru_cache(maxsize=4096)
def encoded(item: str, dimensions: int, as_base64: bool) -> bytes:
    """The vector as a JSON value: a base64 string, or an array of numbers
    (kept: a float array costs ~30 µs to write, and the benchmark's
    16-input float batches repeat)."""
    if as_base64:
        return b'"%s"' % pybase64.b64encode(raw_vector(item, dimensions))
    return orjson.dumps(vector(item, dimensions))


def base64_vector(item: str, dimensions: int) -> str:
    """``vector`` as base64 of little-endian float32, as a JSON value."""
    return pybase64.b64encode_as_string(raw_vector(item, dimensions))


@lru_cache(maxsize=16384)
def tokens(text: str) -> int:
    """cl100k_base tokens of a text (the same texts come again in a benchmark)."""
    return count_text(text)


def parse_options(raw: str) -> dict[str, str]:
    options = {}
    for part in filter(None, raw.split(",")):
        name, _, value = part.partition("=")
        options[name] = value
    return options


def error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def respond(value: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(value), content_type="application/json", headers=headers
    )


class NotJson(ValueError):
    pass


@dataclass
class Call:
    """One request to a dialect's route, with the route's options and stats."""

    request: web.Request
    body: bytes
    options: dict[str, str]
    stats: dict

    def payload(self) -> dict:
        """The JSON body as an object (recorded as ``last_body``); NotJson otherwise."""
        try:
            payload = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise NotJson("not JSON") from exc
        if not isinstance(payload, dict):
            raise NotJson("not a JSON object")
        self.stats["last_body"] = payload
        return payload

    def credential(self, header: str = "Authorization", prefix: str = "Bearer ") -> str:
        sent = self.request.headers.get(header, "")
        self.stats["last_authorization"] = sent
        return sent.removeprefix(prefix) if sent.startswith(prefix) else ""

    def key_refused(self, sent: str) -> bool:
        """No credential, or not the one the ``key=`` option requires."""
        required = self.options.get("key")
        return not sent or bool(required) and sent != required

    def cap(self, name: str, default: int) -> int:
        """A per-call limit, or the smaller one the route's option sets."""
        return int(self.options.get(name, default))

    def counted(self, texts: list[str]) -> int:
        """Tokens (cl100k_base) of the texts; recorded with the call's size."""
        self.stats["max_items"] = max(self.stats.get("max_items", 0), len(texts))
        self.stats["items"] = self.stats.get("items", 0) + len(texts)
        return sum(tokens(text) for text in texts)

    def reported(self, tokens: int) -> int | None:
        """The tokens to report: none with ``usage=none``, N with ``usage=N``."""
        usage = self.options.get("usage")
        if usage == "none":
            return None
        return int(usage) if usage and usage.isdigit() else tokens
