"""Unit tests of the pass-through body surgery (relay/contract/passthrough.py):
usage and model read from and written into an upstream's body, float and
base64 embeddings, and any body an upstream may send.

No server and no database: these call the module directly, with the bodies an
OpenAI-compatible upstream really sends.
"""

from __future__ import annotations

import base64
import struct

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relay.contract import passthrough
from tests.helpers import SMALL, embeddings, usages

# --- passthrough: usage and model in an upstream body --------------------------


def body(usage=..., model="text-embedding-3-small", embedding=(0.25, -0.5)) -> bytes:
    payload: dict = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": list(embedding)}],
    }
    if model is not ...:
        payload["model"] = model
    if usage is not ...:
        payload["usage"] = usage
    return orjson.dumps(payload)


def test_usage_is_read_from_an_upstream_body():
    assert passthrough.read_usage(body({"prompt_tokens": 8, "total_tokens": 9})) == (8, 9)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (..., (None, None)),
        (None, (None, None)),
        ({"total_tokens": 5}, (None, 5)),
        ({"prompt_tokens": 0, "total_tokens": 0}, (0, 0)),
        ({"prompt_tokens": -3, "total_tokens": True}, (None, None)),
        ({"prompt_tokens": "8", "total_tokens": 8.5}, (None, None)),
    ],
    ids=["absent", "null", "only-total", "zeros", "negative-and-bool", "string-and-float"],
)
def test_missing_or_unusable_usage_reads_as_none(usage, expected):
    assert passthrough.read_usage(body(usage)) == expected


def test_usage_with_nested_token_details_is_read():
    # Several OpenAI-compatible providers add *_tokens_details objects.
    upstream = body(
        {
            "prompt_tokens": 8,
            "total_tokens": 8,
            "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": 8},
        }
    )
    assert passthrough.read_usage(upstream) == (8, 8)


def test_a_pretty_printed_body_is_read():
    upstream = orjson.dumps(
        orjson.loads(body({"prompt_tokens": 3, "total_tokens": 3})), option=orjson.OPT_INDENT_2
    )
    assert passthrough.read_usage(upstream) == (3, 3)
    assert passthrough.read_model(upstream) == SMALL
    assert passthrough.is_float_encoded(upstream)


@pytest.mark.parametrize(
    "usage",
    [
        ...,
        None,
        {"total_tokens": 0},
        {"prompt_tokens": 0, "total_tokens": 0, "prompt_tokens_details": {"cached_tokens": 0}},
    ],
    ids=["absent", "null", "partial", "nested-details"],
)
def test_usage_filled_in_by_the_relay_leaves_a_valid_body(usage):
    upstream = body(usage)
    filled = passthrough.with_usage(upstream, prompt_tokens=12, total_tokens=12)
    parsed = orjson.loads(filled)
    assert parsed["usage"] == {"prompt_tokens": 12, "total_tokens": 12}
    assert parsed["data"] == orjson.loads(upstream)["data"]
    assert parsed["model"] == SMALL


def test_the_model_is_read_from_an_upstream_body():
    assert passthrough.read_model(body(model="bge-m3")) == "bge-m3"
    assert passthrough.read_model(body(model=...)) is None
    assert passthrough.read_model(body(model=None)) is None


@pytest.mark.parametrize("model", ["upstream-name", None, ...], ids=["other", "null", "absent"])
def test_the_model_is_renamed_to_the_one_asked_for(model):
    upstream = body({"prompt_tokens": 1, "total_tokens": 1}, model=model)
    renamed = orjson.loads(passthrough.with_model(upstream, SMALL))
    assert renamed["model"] == SMALL
    assert renamed["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
    assert renamed["data"] == orjson.loads(upstream)["data"]


# --- passthrough: float and base64 embeddings ----------------------------------


def test_a_float_embedding_is_recognised_and_a_base64_one_is_not():
    assert passthrough.is_float_encoded(body())
    as_base64 = base64.b64encode(struct.pack("<2f", 0.25, -0.5)).decode()
    assert not passthrough.is_float_encoded(
        orjson.dumps(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": as_base64}],
            }
        )
    )
    assert not passthrough.is_float_encoded(b'{"object":"list","data":[]}')


def test_floats_are_encoded_as_little_endian_float32_base64():
    values = [0.1, -0.2, 0.30000001192092896, 1e-8]
    upstream = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": values},
                {"object": "embedding", "index": 1, "embedding": values[::-1]},
            ],
            "model": SMALL,
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
    )
    converted = orjson.loads(passthrough.to_base64(upstream))
    for item, expected in zip(converted["data"], [values, values[::-1]], strict=True):
        raw = base64.b64decode(item["embedding"])
        assert len(raw) == 4 * len(expected)
        decoded = struct.unpack(f"<{len(expected)}f", raw)
        assert decoded == struct.unpack(
            f"<{len(expected)}f", struct.pack(f"<{len(expected)}f", *expected)
        )
    assert [item["index"] for item in converted["data"]] == [0, 1]
    assert converted["model"] == SMALL
    assert converted["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert not passthrough.is_float_encoded(passthrough.to_base64(upstream))


# --- passthrough: any body an upstream may send ---------------------------------


@st.composite
def upstream_bodies(draw) -> tuple[bytes, dict]:
    items = draw(st.lists(embeddings, min_size=1, max_size=3))
    fields = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(items)],
        "model": draw(st.one_of(st.just(...), st.none(), st.text(max_size=30))),
        "usage": draw(usages),
    }
    order = draw(st.permutations(list(fields)))
    payload = {name: fields[name] for name in order if fields[name] is not ...}
    option = orjson.OPT_INDENT_2 if draw(st.booleans()) else None
    return orjson.dumps(payload, option=option), payload


def known(payload: dict) -> tuple[bytes, dict]:
    """A body that once broke the pass-through, as ``upstream_bodies`` draws them."""
    return orjson.dumps(payload), payload


NESTED_USAGE = known(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "model": "m",
        "usage": {"prompt_tokens": 4, "prompt_tokens_details": {"cached_tokens": 0}},
    }
)
QUOTED_MODEL = known(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "model": 'say "model',
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
)
# No example database written into the repository.
no_database = settings(database=None)


@no_database
@given(upstream_bodies(), st.integers(1, 10**6))
@example(NESTED_USAGE, 7)
def test_any_upstream_body_keeps_valid_json_when_usage_is_filled_in(case, tokens_count):
    upstream, payload = case
    filled = orjson.loads(
        passthrough.with_usage(upstream, prompt_tokens=tokens_count, total_tokens=tokens_count)
    )
    assert filled == {
        **payload,
        "usage": {"prompt_tokens": tokens_count, "total_tokens": tokens_count},
    }


@no_database
@given(upstream_bodies())
@example(NESTED_USAGE)
def test_any_upstream_bodys_usage_is_read_as_sent(case):
    upstream, payload = case
    usage = payload.get("usage")
    expected = (usage.get("prompt_tokens"), usage.get("total_tokens")) if usage else (None, None)
    assert passthrough.read_usage(upstream) == expected


@no_database
@given(upstream_bodies(), st.text(max_size=30))
@example(QUOTED_MODEL, 'the "new" model')
@example(NESTED_USAGE, "usage")
def test_any_upstream_body_keeps_valid_json_when_the_model_is_renamed(case, model):
    upstream, payload = case
    assert passthrough.read_model(upstream) == payload.get("model")
    assert orjson.loads(passthrough.with_model(upstream, model)) == {**payload, "model": model}
