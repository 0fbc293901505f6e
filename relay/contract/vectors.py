"""Vectors as OpenAI's wire carries them, and the answer built from them.

A vector is a row of little-endian float32 numbers (numpy): what a base64
embedding decodes to, what the cache keeps, and what a JSON float array is
rounded to (OpenAI's own floats are float32 values). The answer is written
item by item from those rows, so that a 2,048-item answer costs one pass.
"""

from __future__ import annotations

import binascii
import functools

import numpy as np
import orjson
import pybase64

FLOAT32 = np.dtype("<f4")


class NotAVector(ValueError):
    """An embedding that is neither a list of numbers nor base64 float32."""


def from_json(value: object) -> np.ndarray:
    """One embedding as an upstream sent it: a list of numbers, or a base64
    string of little-endian float32."""
    if isinstance(value, str):
        return np.frombuffer(_base64_row(value), dtype=FLOAT32)
    if isinstance(value, list) and value:
        try:
            return np.asarray(value, dtype=FLOAT32)
        except (TypeError, ValueError) as exc:
            raise NotAVector("not a list of numbers") from exc
    raise NotAVector("neither a list of numbers nor base64")


def from_json_rows(values: list) -> np.ndarray:
    """An answer's embeddings, each as ``from_json`` reads it, as one (items,
    dimensions) array. Base64 rows are decoded into one buffer: 2,048 rows
    in 2.8 ms, where an array a row stacked by numpy took 5.5 ms."""
    if not values:
        return np.empty((0, 0), dtype=FLOAT32)
    if all(isinstance(value, str) for value in values):
        return _joined([_base64_row(value) for value in values])
    return stack([from_json(value) for value in values])


def _joined(raws: list[bytes]) -> np.ndarray:
    """Decoded rows of one length as one (items, dimensions) array."""
    if len({len(raw) for raw in raws}) > 1:
        raise NotAVector("vectors of different lengths in one answer")
    return np.frombuffer(b"".join(raws), dtype=FLOAT32).reshape(len(raws), -1)


_BASE64_EMBEDDING = b'"embedding":"'


def skim_base64_answer(body: bytes) -> tuple[dict, np.ndarray] | None:
    """An OpenAI-shaped answer whose embeddings are base64, read without
    making a Python string of each: its ``data`` items (their ``embedding``
    emptied) and its rows in the order the items come. None where the body
    is anything else (floats, spaces or escapes around a vector, a key
    ``embedding`` outside ``data``, a row that is not base64 float32): the
    caller then reads it whole, and that reading is the one that decides.

    A ``"embedding":"`` in valid JSON can only be that key with a string
    value, and a vector that is valid base64 holds no quote or backslash: so
    cutting the vectors out leaves JSON that parses exactly as the body
    does, less them. An answer of 96 rows of 1,024 numbers: 0.18 ms instead
    of 0.32 (the split row's 22 answers, docs/benchmarks.md, session 8)."""
    cut, raws = [], []
    view = memoryview(body)
    find = body.find
    at = 0
    while (start := find(_BASE64_EMBEDDING, at)) >= 0:
        start += len(_BASE64_EMBEDDING)
        end = find(b'"', start)
        if end < 0:
            return None
        try:
            raws.append(_base64_row(view[start:end]))
        except NotAVector:
            return None
        cut.append(view[at:start])
        at = end
    if not raws:
        return None
    cut.append(view[at:])
    try:
        rows = _joined(raws)
        answer = orjson.loads(b"".join(cut))
        data = answer["data"]
        # As many items as vectors cut, each emptied: one vector an item,
        # in the order both come.
        if len(data) != len(raws) or any(item.get("embedding") != "" for item in data):
            return None
    except (NotAVector, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    return answer, rows


def _base64_row(value: str | memoryview) -> bytes:
    try:
        # pybase64: SIMD, ~10x binascii on a 2,048-row answer, and as strict
        # (no stray characters, right padding).
        raw = pybase64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotAVector("not base64") from exc
    if not raw or len(raw) % 4:
        raise NotAVector("not a whole number of float32 values")
    return raw


def stack(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of one length as one (items, dimensions) array."""
    if len({len(row) for row in rows}) > 1:
        raise NotAVector("vectors of different lengths in one answer")
    return np.concatenate(rows).astype(FLOAT32, copy=False).reshape(len(rows), -1)


def truncated(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """Matryoshka truncation: the first ``dimensions`` numbers of each row,
    scaled back to unit length (as OpenAI's own `dimensions` does)."""
    cut = vectors[:, :dimensions].astype(np.float64)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (cut / norms).astype(FLOAT32)


def answer(
    vectors: list[np.ndarray | memoryview], *, model: str, tokens: int, as_base64: bool
) -> bytearray:
    """OpenAI's answer: ``data[i]`` is ``vectors[i]`` at index ``i`` (float32
    rows, as arrays or as their bytes).

    Written into one growing buffer, each row's text dropped as soon as it is
    copied in: a 2,048-item answer is megabytes, and holding every row's text
    to join them at the end touched twice the fresh memory (page faults):
    2.6 ms instead of 15.6 ms for 2,048 rows of 1,024 numbers in base64."""
    heads = _heads(len(vectors), opening=b'"' if as_base64 else b"")
    out = bytearray(b'{"object":"list","data":[')
    if as_base64:
        encode = pybase64.b64encode
        for head, row in zip(heads, vectors, strict=True):
            # Straight from the row's memory, and the text appended as it is
            # (formatting it between its quotes copied each row once more).
            # (numpy's stubs do not declare the buffer protocol it reads.)
            out += head
            out += encode(row)  # type: ignore[arg-type]
            out += b'"}'
    else:
        for head, row in zip(heads, vectors, strict=True):
            if not isinstance(row, np.ndarray):
                row = np.frombuffer(row, dtype=FLOAT32)
            out += head
            out += orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY)
            out += b"}"
    out += b'],"model":%s,"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (
        orjson.dumps(model),
        tokens,
        tokens,
    )
    return out


@functools.cache
def _row_heads(opening: bytes) -> list[bytes]:
    return [_row_head(index, opening) for index in range(_HEADS_KEPT)]


def _row_head(index: int, opening: bytes) -> bytes:
    return b'%s{"object":"embedding","index":%d,"embedding":%s' % (
        b"," if index else b"",
        index,
        opening,
    )


# Each row's text before its vector, formatted once for the first
# _HEADS_KEPT indexes (OpenAI takes at most 2,048 inputs): a 2,048-row base64
# answer took 1.3 ms instead of 1.6 ms alone.
_HEADS_KEPT = 2048


def _heads(count: int, *, opening: bytes) -> list[bytes]:
    kept = _row_heads(opening)
    if count <= _HEADS_KEPT:
        return kept[:count]
    return kept + [_row_head(index, opening) for index in range(_HEADS_KEPT, count)]
