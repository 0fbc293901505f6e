"""Parse and validate an embeddings request body exactly as OpenAI does,
before anything is sent upstream."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import orjson

from relay.contract import tokens
from relay.contract.errors import API_REFERENCE, InvalidRequest

MAX_ITEMS = 2048
MAX_ITEM_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
ENCODING_FORMATS = ("float", "base64")
# Fields beside OpenAI's that a client may send for providers that take them.
EXTENSIONS = ("input_type", "task")
# Bodies with more characters than this are counted off the event loop.
_COUNT_IN_THREAD_CHARS = 50_000


@dataclass(frozen=True)
class ModelSpec:
    native_dimensions: int | None
    supports_dimensions: bool


# What the relay knows of OpenAI's own models. A model not listed here (an
# operator's custom model) passes `dimensions` through to its upstream.
KNOWN_MODELS = {
    "text-embedding-3-small": ModelSpec(1536, True),
    "text-embedding-3-large": ModelSpec(3072, True),
    "text-embedding-ada-002": ModelSpec(1536, False),
}


@dataclass
class EmbeddingRequest:
    model: str
    input: str | list
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None
    token_counts: list[int] = field(default_factory=list)
    # Extension fields for providers that take them (relay/providers/base.py).
    options: dict[str, str] = field(default_factory=dict)

    @property
    def input_count(self) -> int:
        # A string or one token array is one input; a list of either, one each.
        if isinstance(self.input, str) or (self.input and _is_token(self.input[0])):
            return 1
        return len(self.input)

    @property
    def items(self) -> tuple[str | tuple[int, ...], ...]:
        """Each input on its own: a text, or a token array as a tuple."""
        value = self.input
        if isinstance(value, str):
            return (value,)
        if _is_token(value[0]):
            return (tuple(value),)
        return tuple(item if isinstance(item, str) else tuple(item) for item in value)

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)

    @property
    def wants_base64(self) -> bool:
        return self.encoding_format == "base64"


def _invalid_input() -> InvalidRequest:
    return InvalidRequest(
        f"'$.input' is invalid. Please check the API reference: {API_REFERENCE}.",
        param="input",
    )


def parse_body(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
            "this, please contact the relay's operator.)"
        )
    return data


def read_model(data: dict) -> str:
    model = data.get("model")
    if model is None or model == "":
        raise InvalidRequest("you must provide a model parameter")
    if not isinstance(model, str):
        raise InvalidRequest(
            f"'$.model' is invalid. Please check the API reference: {API_REFERENCE}.",
            param="model",
        )
    return model


def _is_token(value: object) -> bool:
    # bool is an int in Python, not in JSON.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _item_kind(items: list) -> str:
    """Classify a list input: 'texts', 'tokens' (one token array) or 'token_lists'."""
    first = items[0]
    if isinstance(first, str):
        if all(isinstance(item, str) and item for item in items):
            return "texts"
    elif _is_token(first):
        if all(_is_token(item) for item in items):
            return "tokens"
    elif isinstance(first, list):
        if all(
            isinstance(item, list) and item and all(_is_token(t) for t in item) for item in items
        ):
            return "token_lists"
    raise _invalid_input()


async def _count(texts: list[str], known: dict[int, int]) -> list[int]:
    """Each text's tokens: ``known`` ones (by position) as given, the rest
    counted."""
    if known:
        unknown = [text for position, text in enumerate(texts) if position not in known]
        counted = iter(await _count(unknown, {}) if unknown else [])
        return [known[p] if p in known else next(counted) for p in range(len(texts))]
    chars = sum(len(text) for text in texts)
    if chars <= _COUNT_IN_THREAD_CHARS:
        return tokens.count_texts(texts)
    # tiktoken lets go of the GIL while it encodes: a big body is counted in
    # parts of at least that size, one a core, at once (2,048 short texts:
    # ~10 ms in one thread, ~7 in two; docs/benchmarks.md, session 8).
    parts = min(os.cpu_count() or 1, chars // _COUNT_IN_THREAD_CHARS)
    size = -(-len(texts) // parts)
    by_part = await asyncio.gather(
        *(
            asyncio.to_thread(tokens.count_texts, texts[start : start + size])
            for start in range(0, len(texts), size)
        )
    )
    return [count for part in by_part for count in part]


def _check_token_ids(ids: list[int], *, param: str) -> None:
    """Token ids are tokens of cl100k_base, the encoding of every OpenAI
    embedding model: an id past it would reach the upstream unchecked, or be
    decoded to nothing for a provider that takes text."""
    unknown = tokens.unknown_id(ids)
    if unknown is not None:
        raise InvalidRequest(
            f"Invalid '{param}': {unknown} is not a token id of cl100k_base, the encoding "
            "of OpenAI's embedding models.",
            param=param,
            code="invalid_value",
        )


def read_value(data: dict) -> str | list:
    """The input, refused as OpenAI refuses it, before its tokens are counted."""
    if "input" not in data or data["input"] is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.",
            param="input",
            code="missing_required_parameter",
        )
    value = data["input"]
    if isinstance(value, str):
        if not value:
            raise _invalid_input()
    elif isinstance(value, list):
        # One token array is one input of len() tokens; the item limit counts inputs.
        if not value or (len(value) > MAX_ITEMS and not _is_token(value[0])):
            raise _invalid_input()
        kind = _item_kind(value)
        if kind == "tokens":
            _check_token_ids(value, param="input")
        elif kind == "token_lists":
            for index, item in enumerate(value):
                _check_token_ids(item, param=f"input[{index}]")
    else:
        raise _invalid_input()
    return value


async def count_input(value: str | list, known: dict[int, int] | None = None) -> list[int]:
    """Each input's tokens (``read_value``'s input), refused past OpenAI's
    limits. ``known``: the counts of texts already known by position (the
    embedding cache keeps them), which are not counted again."""
    if isinstance(value, str):
        counts = await _count([value], known or {})
    elif _is_token(value[0]):
        counts = [len(value)]
    elif isinstance(value[0], list):
        counts = [len(item) for item in value]
    else:
        counts = await _count(value, known or {})

    for index, count in enumerate(counts):
        if count > MAX_ITEM_TOKENS:
            param = "input" if isinstance(value, str) or _is_token(value[0]) else f"input[{index}]"
            raise InvalidRequest(
                f"Invalid '{param}': maximum input length is {MAX_ITEM_TOKENS} tokens.",
                param=param,
                code="invalid_value",
            )
    total = sum(counts)
    if total > MAX_REQUEST_TOKENS:
        raise InvalidRequest(
            f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
            param="input",
            code="max_tokens_per_request",
        )
    return counts


async def read_input(data: dict) -> tuple[str | list, list[int]]:
    """The input and each item's token count; refuses what OpenAI refuses."""
    value = read_value(data)
    return value, await count_input(value)


def read_options(data: dict, model: str) -> tuple[str | None, int | None, str | None]:
    encoding_format = data.get("encoding_format")
    if encoding_format is not None and encoding_format not in ENCODING_FORMATS:
        raise InvalidRequest(
            f"Invalid value for 'encoding_format': {encoding_format!r}. "
            "Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )

    dimensions = data.get("dimensions")
    if dimensions is not None:
        spec = KNOWN_MODELS.get(model)
        if spec is not None and not spec.supports_dimensions:
            raise InvalidRequest(
                "This model does not support specifying dimensions.", param="dimensions"
            )
        limit = spec.native_dimensions if spec else None
        if (
            not isinstance(dimensions, int)
            or isinstance(dimensions, bool)
            or dimensions < 1
            or (limit is not None and dimensions > limit)
        ):
            allowed = f"between 1 and {limit}" if limit else "at least 1"
            raise InvalidRequest(
                f"Invalid value for 'dimensions': {dimensions!r}. "
                f"It must be an integer {allowed} for {model}.",
                param="dimensions",
                code="invalid_value",
            )

    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest(
            f"Invalid type for 'user': expected a string, but got {type(user).__name__}.",
            param="user",
            code="invalid_type",
        )
    if user is not None and "\x00" in user:
        # Refused rather than cleaned: the record's end user must be the one
        # the client sent (reports are filtered by it), and PostgreSQL cannot
        # store a NUL in text (issue 17: such an event stranded a drain).
        raise InvalidRequest(
            "Invalid value for 'user': the string must not contain NUL (\\u0000) characters.",
            param="user",
            code="invalid_value",
        )
    return encoding_format, dimensions, user


def read_extensions(data: dict) -> dict[str, str]:
    """The extension fields a client sent for providers that take them
    (``input_type``, ``task``: docs/providers.md)."""
    options = {}
    for name in EXTENSIONS:
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > 64:
            raise InvalidRequest(
                f"Invalid value for '{name}': expected a non-empty string of at most 64 "
                "characters.",
                param=name,
                code="invalid_value",
            )
        options[name] = value
    return options


def read_uncounted(data: dict, model: str) -> EmbeddingRequest:
    """Everything after the model, its tokens not counted yet (``count``)."""
    encoding_format, dimensions, user = read_options(data, model)
    return EmbeddingRequest(
        model=model,
        input=read_value(data),
        encoding_format=encoding_format,
        dimensions=dimensions,
        user=user,
        options=read_extensions(data),
    )


async def count(request: EmbeddingRequest, known: dict[int, int] | None = None) -> None:
    """Fill in ``request.token_counts`` (``count_input``)."""
    request.token_counts = await count_input(request.input, known)


async def read_request(data: dict, model: str) -> EmbeddingRequest:
    """Everything after the model: options first (cheap), then the input (counted)."""
    request = read_uncounted(data, model)
    await count(request)
    return request
