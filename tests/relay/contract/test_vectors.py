"""Vectors on OpenAI's wire (relay/contract/vectors.py): an upstream's base64
is checked as strictly as Python's own ``b64decode(validate=True)``, and the
answer carries each row at its index, exactly."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from relay.contract import vectors

ROWS = [np.asarray([0.5, -2.0, 1e-7], dtype="<f4"), np.asarray([3.0, 0.0, -0.25], dtype="<f4")]


def test_base64_float32_is_read_exactly():
    raw = base64.b64encode(ROWS[0].tobytes()).decode()
    assert vectors.from_json(raw).tolist() == ROWS[0].tolist()


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        "AAAA AAAA",  # a space
        "AAAAAAA=\n",  # a newline
        "AAAAAAA",  # no padding
        "AA=AAAAA",  # padding inside
        "ÄAAAAAAA",  # not ASCII
        "AAAAAAA=",  # 5 bytes: not a whole number of float32 values
        "",
    ],
)
def test_what_is_not_strict_base64_of_float32_is_not_a_vector(value):
    with pytest.raises(vectors.NotAVector):
        vectors.from_json(value)


@pytest.mark.parametrize("as_base64", [True, False])
@pytest.mark.parametrize("count", [2, 2049], ids=["two", "past the heads kept"])
def test_the_answer_carries_each_row_at_its_index(as_base64, count):
    # Rows as arrays and as their bytes (a cached vector is a view of a reply).
    rows = [ROWS[n % 2] + n if n % 3 else memoryview((ROWS[1] + n).tobytes()) for n in range(count)]
    body = vectors.answer(rows, model="m", tokens=7, as_base64=as_base64)
    answer = orjson.loads(body)
    assert [item["index"] for item in answer["data"]] == list(range(count))
    for item, row in zip(answer["data"], rows, strict=True):
        row = np.frombuffer(row, dtype="<f4")
        embedding = item["embedding"]
        if as_base64:
            embedding = np.frombuffer(base64.b64decode(embedding), dtype="<f4").tolist()
        assert np.asarray(embedding, dtype="<f4").tolist() == row.tolist()
    assert answer["model"] == "m"
    assert answer["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
