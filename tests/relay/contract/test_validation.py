"""Unit tests of request validation (relay/contract/validation.py): the body, the
model, the input's shapes, counts and limits, and the options.

No server and no database: these call the validation directly.
"""

from __future__ import annotations

import asyncio

import pytest

from relay.contract import tokens, validation
from relay.contract.errors import InvalidRequest
from tests.helpers import ADA, LARGE, LONG_TEXT, PROSE, SMALL


def refusal(call, *args) -> dict:
    """The error envelope of an InvalidRequest raised by ``call(*args)``."""
    with pytest.raises(InvalidRequest) as raised:
        result = call(*args)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    assert raised.value.status == 400
    error = raised.value.body()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return error


def read_input(value) -> tuple:
    return asyncio.run(validation.read_input({"input": value}))


def read_options(model: str, **options) -> tuple:
    return validation.read_options(options, model)


# --- the body ----------------------------------------------------------------


def test_a_json_object_body_is_parsed():
    assert validation.parse_body(b'{"model": "m", "input": "hi"}') == {"model": "m", "input": "hi"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"model": "m",',
        b"\xff\xfe{}",
        b"[]",
        b'"text"',
        b"42",
        b"null",
        b'[{"model": "m", "input": "hi"}]',
    ],
    ids=[
        "empty",
        "text",
        "truncated",
        "not-utf8",
        "array",
        "string",
        "number",
        "null",
        "array-of-object",
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(body):
    error = refusal(validation.parse_body, body)
    assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert error["param"] is None
    assert error["code"] is None


# --- model -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [{}, {"model": None}, {"model": ""}], ids=["absent", "null", "empty"]
)
def test_a_missing_model_is_refused(data):
    error = refusal(validation.read_model, data)
    assert error["message"] == "you must provide a model parameter"


@pytest.mark.parametrize("model", [123, ["text-embedding-3-small"], {"id": "x"}, True])
def test_a_model_that_is_not_a_string_is_refused(model):
    error = refusal(validation.read_model, {"model": model})
    assert error["message"].startswith("'$.model' is invalid.")
    assert error["param"] == "model"


def test_a_model_name_is_read_as_given():
    assert validation.read_model({"model": "BAAI/bge-m3"}) == "BAAI/bge-m3"


# --- input: shapes and counts -------------------------------------------------


def test_a_string_is_one_input_counted_with_cl100k():
    value, counts = read_input("hello world")
    assert value == "hello world"
    assert counts == [tokens.count_text("hello world")] == [2]


def test_a_list_of_strings_is_counted_item_by_item():
    texts = ["hello world", PROSE, "a"]
    _value, counts = read_input(texts)
    assert counts == [tokens.count_text(text) for text in texts]


def test_many_strings_are_counted_as_one_by_one():
    texts = [f"item number {i} of the batch" for i in range(50)]
    _value, counts = read_input(texts)
    assert counts == [tokens.count_text(text) for text in texts]


def test_texts_too_long_to_count_on_the_event_loop_are_counted_exactly():
    texts = [" ".join([PROSE] * 40), " ".join([PROSE] * 41), " ".join([PROSE] * 42)]
    assert sum(len(text) for text in texts) > 50_000
    _value, counts = read_input(texts)
    assert counts == [tokens.count_text(text) for text in texts]


def test_a_big_body_counted_in_parts_keeps_each_count_at_its_item(monkeypatch):
    # Texts of different lengths, so a count out of place shows; five
    # threads' worth of characters, cut in parts by position.
    monkeypatch.setattr(validation.os, "cpu_count", lambda: 5)
    texts = [f"{n} " + "word " * (n % 7) + PROSE for n in range(2048)]
    assert sum(len(text) for text in texts) > 5 * 50_000
    parts = []
    monkeypatch.setattr(
        tokens,
        "count_texts",
        lambda part: parts.append(len(part)) or list(map(tokens.count_text, part)),
    )
    _value, counts = read_input(texts)
    assert counts == [tokens.count_text(text) for text in texts]
    assert len(parts) == 5 and sum(parts) == 2048


def test_counts_the_cache_knows_are_taken_and_only_the_rest_counted(monkeypatch):
    """The embedding cache keeps each item's tokens (relay/pipeline/cache.py):
    a fully cached request needs no tokenizer pass."""
    texts = ["hello world", "counted here", "and known"]
    counted: list[list[str]] = []
    real = tokens.count_texts
    monkeypatch.setattr(tokens, "count_texts", lambda some: counted.append(some) or real(some))
    counts = asyncio.run(validation.count_input(texts, {0: 7, 2: 9}))
    assert counts == [7, tokens.count_text("counted here"), 9]
    assert counted == [["counted here"]]
    counted.clear()
    assert asyncio.run(validation.count_input(texts, {0: 1, 1: 2, 2: 3})) == [1, 2, 3]
    assert counted == []


def test_known_counts_are_held_to_the_same_limits():
    error = refusal(validation.count_input, ["a", "b"], {1: 8193})
    assert error["param"] == "input[1]"


def test_a_token_array_is_one_input_counted_as_its_length():
    _value, counts = read_input([1, 2, 3, 4, 5])
    assert counts == [5]


def test_a_list_of_token_arrays_is_counted_as_their_lengths():
    _value, counts = read_input([[1, 2], [3], [4, 5, 6]])
    assert counts == [2, 1, 3]


def test_endoftext_in_user_text_is_counted_as_ordinary_text():
    text = "before <|endoftext|> after"
    _value, counts = read_input(text)
    assert counts == [len(tokens.encoding().encode_ordinary(text))]
    assert counts[0] > 3  # the special token would have been one


# --- input: refusals ----------------------------------------------------------


@pytest.mark.parametrize("data", [{}, {"input": None}], ids=["absent", "null"])
def test_a_missing_input_is_refused(data):
    error = refusal(validation.read_input, data)
    assert error["message"] == "Missing required parameter: 'input'."
    assert error["param"] == "input"
    assert error["code"] == "missing_required_parameter"


INVALID_INPUTS = {
    "empty-string": "",
    "empty-list": [],
    "number": 42,
    "float": 1.5,
    "object": {"text": "hi"},
    "boolean": True,
    "false": False,
    "strings-then-number": ["a", 1],
    "number-then-string": [1, "a"],
    "empty-string-in-list": ["a", ""],
    "only-empty-string": [""],
    "null-in-list": ["a", None],
    "empty-token-array-in-list": [[1, 2], []],
    "only-empty-token-array": [[]],
    "list-of-lists-of-strings": [["a"]],
    "token-arrays-then-number": [[1, 2], 3],
    "booleans": [True, False],
    "boolean-in-token-array": [[1, True]],
    "negative-token": [-1],
    "float-token": [1.5],
    "nested-too-deep": [[[1]]],
}


@pytest.mark.parametrize("value", list(INVALID_INPUTS.values()), ids=list(INVALID_INPUTS))
def test_an_invalid_input_is_refused(value):
    error = refusal(read_input, value)
    assert error["message"].startswith("'$.input' is invalid.")
    assert error["param"] == "input"


def test_2048_inputs_are_accepted():
    _value, counts = read_input(["a"] * 2048)
    assert counts == [1] * 2048


def test_2049_inputs_are_refused():
    error = refusal(read_input, ["a"] * 2049)
    assert error["message"].startswith("'$.input' is invalid.")


def test_2049_token_arrays_are_refused():
    error = refusal(read_input, [[1]] * 2049)
    assert error["message"].startswith("'$.input' is invalid.")


def test_a_single_token_array_longer_than_2048_tokens_is_one_input():
    # One int[] is one input of len() tokens (the OpenAI cookbook embeds
    # 8191-token arrays this way); the 2048 limit counts inputs, not tokens.
    _value, counts = read_input([100] * 5000)
    assert counts == [5000]


def test_a_single_token_array_of_8192_tokens_is_accepted():
    _value, counts = read_input([100] * 8192)
    assert counts == [8192]


def test_a_single_token_array_of_8193_tokens_is_refused():
    error = refusal(read_input, [100] * 8193)
    assert error["message"] == "Invalid 'input': maximum input length is 8192 tokens."
    assert error["param"] == "input"


def test_a_single_text_over_8192_tokens_is_refused():
    assert tokens.count_text(LONG_TEXT) > 8192
    error = refusal(read_input, LONG_TEXT)
    assert error["message"] == "Invalid 'input': maximum input length is 8192 tokens."
    assert error["param"] == "input"


def test_a_text_item_over_8192_tokens_is_refused_by_its_index():
    error = refusal(read_input, ["one", "two", "three", LONG_TEXT, "five"])
    assert error["message"] == "Invalid 'input[3]': maximum input length is 8192 tokens."
    assert error["param"] == "input[3]"


def test_a_token_array_item_over_8192_tokens_is_refused_by_its_index():
    error = refusal(read_input, [[1], [2], [3], [4] * 8193])
    assert error["message"] == "Invalid 'input[3]': maximum input length is 8192 tokens."
    assert error["param"] == "input[3]"


def test_an_item_of_exactly_8192_tokens_is_accepted():
    _value, counts = read_input([[1] * 8192, [2] * 3])
    assert counts == [8192, 3]


def test_over_300000_tokens_in_all_are_refused_with_the_count():
    error = refusal(read_input, [[7] * 8000] * 40)
    assert error["message"] == "Requested 320000 tokens, max 300000 tokens per request"
    assert error["code"] == "max_tokens_per_request"


def test_exactly_300000_tokens_are_accepted():
    _value, counts = read_input([[7] * 8000] * 37 + [[7] * 4000])
    assert sum(counts) == 300_000


def test_300001_tokens_are_refused():
    error = refusal(read_input, [[7] * 8000] * 37 + [[7] * 4001])
    assert error["message"] == "Requested 300001 tokens, max 300000 tokens per request"
    assert error["code"] == "max_tokens_per_request"


def test_texts_over_300000_tokens_in_all_are_refused_with_their_count():
    item = " ".join([PROSE] * 95)
    per_item = tokens.count_text(item)
    assert 7000 < per_item <= 8192
    error = refusal(read_input, [item] * 40)
    assert error["message"] == (f"Requested {40 * per_item} tokens, max 300000 tokens per request")


# --- options ------------------------------------------------------------------


@pytest.mark.parametrize("encoding_format", [None, "float", "base64"])
def test_the_two_encoding_formats_are_accepted(encoding_format):
    assert read_options(SMALL, encoding_format=encoding_format)[0] == encoding_format


@pytest.mark.parametrize("encoding_format", ["json", "FLOAT", "", 1, ["float"]])
def test_a_bad_encoding_format_is_refused_naming_the_allowed_values(encoding_format):
    error = refusal(lambda: read_options(SMALL, encoding_format=encoding_format))
    assert error["param"] == "encoding_format"
    assert "'encoding_format'" in error["message"]
    assert "'float'" in error["message"] and "'base64'" in error["message"]


def test_dimensions_on_ada_002_are_refused():
    error = refusal(lambda: read_options(ADA, dimensions=256))
    assert error["message"] == "This model does not support specifying dimensions."
    assert error["param"] == "dimensions"


@pytest.mark.parametrize("dimensions", [0, -1, "8", 1.5, True, 1537, [8]])
def test_a_bad_dimensions_value_is_refused_naming_the_allowed_range(dimensions):
    error = refusal(lambda: read_options(SMALL, dimensions=dimensions))
    assert error["param"] == "dimensions"
    assert "'dimensions'" in error["message"]
    assert "between 1 and 1536" in error["message"]


@pytest.mark.parametrize(
    ("model", "dimensions"), [(SMALL, 1), (SMALL, 256), (SMALL, 1536), (LARGE, 3072)]
)
def test_dimensions_up_to_the_native_size_are_accepted(model, dimensions):
    assert read_options(model, dimensions=dimensions)[1] == dimensions


def test_dimensions_above_3072_on_3_large_are_refused():
    error = refusal(lambda: read_options(LARGE, dimensions=3073))
    assert "between 1 and 3072" in error["message"]


def test_dimensions_on_an_operators_own_model_pass_through_when_positive():
    assert read_options("bge-m3", dimensions=4096)[1] == 4096
    refusal(lambda: read_options("bge-m3", dimensions=0))


def test_a_user_that_is_not_a_string_is_refused():
    assert refusal(lambda: read_options(SMALL, user=42))["param"] == "user"


@pytest.mark.parametrize("user", ["a\x00b", "\x00", "end-user\x00"])
def test_a_user_with_a_nul_character_is_refused_as_postgresql_cannot_store_it(user):
    error = refusal(lambda: read_options(SMALL, user=user))
    assert error["param"] == "user"
    assert error["code"] == "invalid_value"
    assert "NUL" in error["message"]


def test_a_user_with_any_other_unicode_is_accepted():
    assert read_options(SMALL, user="用户-7 \u200b\t")[2] == "用户-7 \u200b\t"


def test_a_whole_request_is_read_into_one_object():
    data = {
        "model": SMALL,
        "input": ["hello world", "a"],
        "encoding_format": "base64",
        "dimensions": 256,
        "user": "end-user-7",
    }
    request = asyncio.run(validation.read_request(data, SMALL))
    assert request.model == SMALL
    assert request.input == ["hello world", "a"]
    assert request.input_count == 2
    assert request.token_counts == [2, 1]
    assert request.total_tokens == 3
    assert request.wants_base64
    assert request.dimensions == 256
    assert request.user == "end-user-7"


def test_a_single_token_array_is_one_input_of_a_request():
    request = asyncio.run(validation.read_request({"input": [1, 2, 3]}, SMALL))
    assert request.input_count == 1
    assert request.total_tokens == 3
    assert not request.wants_base64
