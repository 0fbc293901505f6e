"""Work on an upstream's OpenAI-shaped response body without re-serialising
its vectors.

A 16-input batch of 1536-dim floats is ~300 KB of JSON; decoding and
re-encoding it would cost more CPU than everything else the relay does. The
top-level ``usage`` and ``model`` keys cannot occur inside ``data`` (its
items hold only ``object``, ``index`` and ``embedding``, and base64 strings
hold no quotes), so they are found from the end of the body with ``rfind``.
A match counts only where it is a key (a colon follows): ``"object":
"embedding"`` and a model named ``"usage"`` are values, not keys.
"""

from __future__ import annotations

import struct

import orjson
import pybase64

_USAGE = b'"usage"'
_MODEL = b'"model"'
_WHITESPACE = b" \t\r\n"


def _key_colon(body: bytes, key: bytes, *, last: bool = True) -> int:
    """The colon after the last (or first) ``key`` used as an object key, or -1."""
    at = body.rfind(key) if last else body.find(key)
    while at >= 0:
        colon = at + len(key)
        while colon < len(body) and body[colon] in _WHITESPACE:
            colon += 1
        if body.startswith(b":", colon):
            return colon
        at = body.rfind(key, 0, at) if last else body.find(key, at + 1)
    return -1


def _string_end(body: bytes, start: int) -> int | None:
    """The index after the JSON string opening at ``start`` (escapes honoured)."""
    at = start + 1
    while True:
        quote = body.find(b'"', at)
        if quote < 0:
            return None
        backslashes = 0
        while body[quote - 1 - backslashes] == 0x5C:  # "\"
            backslashes += 1
        if backslashes % 2 == 0:
            return quote + 1
        at = quote + 1


def _object_end(body: bytes, start: int) -> int | None:
    """The index after the JSON object opening at ``start``; usage may nest
    ``*_tokens_details`` objects."""
    depth = 0
    at = start
    while at < len(body):
        char = body[at]
        if char == 0x22:  # '"'
            end = _string_end(body, at)
            if end is None:
                return None
            at = end
            continue
        if char == 0x7B:  # "{"
            depth += 1
        elif char == 0x7D:  # "}"
            depth -= 1
            if depth == 0:
                return at + 1
        at += 1
    return None


def _value_span(body: bytes, key: bytes) -> tuple[int, int] | None:
    """Start and end of the JSON value after the last top-level ``key``."""
    colon = _key_colon(body, key)
    if colon < 0:
        return None
    start = colon + 1
    while start < len(body) and body[start] in _WHITESPACE:
        start += 1
    if body.startswith(b"{", start):
        end = _object_end(body, start)
    elif body.startswith(b'"', start):
        end = _string_end(body, start)
    elif body.startswith(b"null", start):
        end = start + 4
    else:
        return None
    return (start, end) if end is not None else None


def read_usage(body: bytes) -> tuple[int | None, int | None]:
    """``(prompt_tokens, total_tokens)`` as the upstream reported them, or Nones."""
    span = _value_span(body, _USAGE)
    if span is None:
        return None, None
    try:
        usage = orjson.loads(body[span[0] : span[1]])
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(usage, dict):
        return None, None
    return _as_count(usage.get("prompt_tokens")), _as_count(usage.get("total_tokens"))


def _as_count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def read_model(body: bytes) -> str | None:
    span = _value_span(body, _MODEL)
    if span is None or not body.startswith(b'"', span[0]):
        return None
    try:
        return orjson.loads(body[span[0] : span[1]])
    except orjson.JSONDecodeError:
        return None


def with_usage(body: bytes, *, prompt_tokens: int, total_tokens: int) -> bytes:
    """The body with ``usage`` set, replacing a null or partial one."""
    usage = orjson.dumps({"prompt_tokens": prompt_tokens, "total_tokens": total_tokens})
    span = _value_span(body, _USAGE)
    if span is not None:
        return body[: span[0]] + usage + body[span[1] :]
    end = body.rstrip().rfind(b"}")
    return body[:end] + b',"usage":' + usage + body[end:]


def with_model(body: bytes, model: str) -> bytes:
    """The body naming ``model``, the name the client asked for."""
    value = orjson.dumps(model)
    span = _value_span(body, _MODEL)
    if span is not None:
        return body[: span[0]] + value + body[span[1] :]
    end = body.rstrip().rfind(b"}")
    return body[:end] + b',"model":' + value + body[end:]


def streamable(first: bytes, *, wants_base64: bool) -> bool:
    """Whether an answer that starts with ``first`` may be passed on before
    its end arrives: only the fields after its vectors may need reading or
    rewriting (OpenAI's order: ``data``, then ``model`` and ``usage``; some
    providers lead with ``model`` and ``usage``), and its vectors are
    already in the client's encoding."""
    colon = _key_colon(first, b'"data"', last=False)
    if colon < 0 or not first[colon + 1 : colon + 64].lstrip().startswith(b"["):
        return False
    head = first[:colon]
    if _key_colon(head, _MODEL, last=False) >= 0 or _key_colon(head, _USAGE, last=False) >= 0:
        return False
    # The first vector must be seen to be base64 already (a string).
    return not wants_base64 or _first_embedding(first).startswith(b'"')


def is_float_encoded(body: bytes) -> bool:
    """Whether the first embedding is a JSON array (not a base64 string)."""
    return _first_embedding(body).startswith(b"[")


def _first_embedding(body: bytes) -> bytes:
    """The start of the first embedding's value; b"" when there is none."""
    colon = _key_colon(body, b'"embedding"', last=False)
    return body[colon + 1 : colon + 64].lstrip() if colon >= 0 else b""


def to_base64(body: bytes) -> bytes:
    """Re-encode float embeddings as base64 little-endian float32, as OpenAI does.

    Only for providers that ignore ``encoding_format``: the official SDKs ask
    for base64 and the Node SDK decodes it blindly.
    """
    data = orjson.loads(body)
    for item in data.get("data", []):
        vector = item.get("embedding")
        if isinstance(vector, list):
            packed = struct.pack(f"<{len(vector)}f", *vector)
            item["embedding"] = pybase64.b64encode_as_string(packed)
    return orjson.dumps(data)
