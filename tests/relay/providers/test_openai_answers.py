"""Reading an OpenAI-shaped answer (relay/providers/openai.py): base64 vectors
are skimmed out of the body without a Python string each
(``vectors.skim_base64_answer``), and whatever the body looks like, what
comes out is what a plain JSON reading of it says: each row at its
``index``, the usage tokens, or UnreadableAnswer where that reading fails."""

from __future__ import annotations

import base64
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.contract import vectors
from relay.providers.base import UnreadableAnswer
from relay.providers.openai import parse_openai_answer
from tests.relay.providers.helpers import shard

# How an upstream may write its answer. The first is what OpenAI sends; the
# others are JSON that a server may send too, or answers that must fail.
SHAPES = (
    "compact",
    "indented",  # spaces after colons: "embedding": "..."
    "escaped slashes",  # "\/" inside the base64, as some JSON writers do
    "floats",
    "shuffled",  # items not in index order
    "embedding key outside data",
    "nested embedding key",
    "a second embedding key",
    "a row not base64",
    "rows of two lengths",
    "a row of 5 bytes",
    "an item without embedding",
    "cut short",
)


def _answer(rows: list[np.ndarray], shape: str, prompt_tokens: int) -> bytes:
    data = [
        {"object": "embedding", "index": n, "embedding": base64.b64encode(row.tobytes()).decode()}
        for n, row in enumerate(rows)
    ]
    answer: dict = {"object": "list", "data": data, "model": "m"}
    answer["usage"] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    if shape == "floats":
        for item, row in zip(data, rows, strict=True):
            item["embedding"] = row.tolist()
    elif shape == "shuffled":
        data.reverse()
    elif shape == "embedding key outside data":
        answer["embedding"] = data[0]["embedding"]
    elif shape == "nested embedding key":
        data[-1]["meta"] = {"embedding": data[0]["embedding"]}
    elif shape == "a row not base64":
        data[-1]["embedding"] = "AAAA!AAA"
    elif shape == "rows of two lengths":
        data[-1]["embedding"] = base64.b64encode(rows[-1].tobytes() + b"\0\0\0\0").decode()
    elif shape == "a row of 5 bytes":
        data[-1]["embedding"] = base64.b64encode(b"12345").decode()
    elif shape == "an item without embedding":
        del data[-1]["embedding"]
    if shape == "indented":
        return orjson.dumps(answer, option=orjson.OPT_INDENT_2)
    body = orjson.dumps(answer)
    if shape == "escaped slashes":
        return body.replace(b"/", b"\\/")
    if shape == "a second embedding key":
        # Duplicate keys: JSON readers keep the last one.
        first = body.index(b'"embedding":"')
        return body[:first] + b'"embedding":"AAAAAAAA",' + body[first:]
    if shape == "cut short":
        return body[: len(body) // 2]
    return body


def _plain_reading(body: bytes, items: int) -> tuple[list[list[float]], int]:
    """The answer as Python's own json and base64 read it: the oracle."""
    answer = json.loads(body)
    rows = []
    for item in sorted(answer["data"], key=lambda item: item["index"]):
        embedding = item["embedding"]
        if isinstance(embedding, str):
            raw = base64.b64decode(embedding, validate=True)
            if not raw or len(raw) % 4:
                raise ValueError("not float32")
            embedding = np.frombuffer(raw, dtype="<f4")
        rows.append(np.asarray(embedding, dtype="<f4").tolist())
    if len({len(row) for row in rows}) > 1 or len(rows) != items:
        raise ValueError("not one vector per item")
    return rows, answer["usage"]["prompt_tokens"]


floats = st.floats(-4, 4, width=32, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda dimensions: st.lists(
            st.lists(floats, min_size=dimensions, max_size=dimensions), min_size=1, max_size=20
        )
    ),
    st.sampled_from(SHAPES),
    st.integers(1, 10_000),
)
def test_every_shape_reads_as_plain_json_says(rows, shape, prompt_tokens):
    arrays = [np.asarray(row, dtype="<f4") for row in rows]
    body = _answer(arrays, shape, prompt_tokens)
    texts = [f"text {n}" for n in range(len(rows))]
    try:
        expected = _plain_reading(body, len(rows))
    except (ValueError, KeyError, TypeError):
        with pytest.raises(UnreadableAnswer):
            parse_openai_answer(body, shard("m", texts))
        return
    embedded = parse_openai_answer(body, shard("m", texts))
    assert (embedded.vectors.tolist(), embedded.tokens) == expected


def test_openai_s_own_shape_is_skimmed_and_others_read_whole():
    # -1.9999999 is ff ff ff bf: base64 "////vw==", which "escaped slashes" escapes.
    rows = [np.asarray([0.5, -2.0, 1e-7], "<f4"), np.asarray([-1.9999999, 0.0, -0.25], "<f4")]
    skimmed = vectors.skim_base64_answer(_answer(rows, "compact", 3))
    assert skimmed is not None
    answer, found = skimmed
    assert [item["embedding"] for item in answer["data"]] == ["", ""]
    assert found.tolist() == [row.tolist() for row in rows]
    for shape in ("indented", "escaped slashes", "floats", "nested embedding key"):
        assert vectors.skim_base64_answer(_answer(rows, shape, 3)) is None, shape
