"""Voyage AI's ``/v1/embeddings`` (``{"detail": ...}`` errors, a Bearer key,
1,000 texts and a per-model token ceiling a call, ``usage.total_tokens``)."""

from __future__ import annotations

from aiohttp import web

from relay.devtools.fake_upstream.common import Call, base64_vector, respond, vector

NAME = "voyage"
PATHS = ("/v1/embeddings",)
TEXTS_PER_CALL = 1000
TOKENS_PER_CALL = {
    "voyage-4-lite": 1_000_000,
    "voyage-3.5-lite": 1_000_000,
    "voyage-4": 320_000,
    "voyage-3.5": 320_000,
    "voyage-2": 320_000,
}
OTHER_TOKENS_PER_CALL = 120_000
FLEXIBLE = {
    "voyage-4-large",
    "voyage-4",
    "voyage-4-lite",
    "voyage-3-large",
    "voyage-3.5",
    "voyage-3.5-lite",
    "voyage-code-3",
}
NATIVE_DIMENSIONS = {"voyage-code-2": 1536, "voyage-3-lite": 512}
DEFAULT_DIMENSIONS = 1024


def error(status: int, message: str) -> web.Response:
    return respond({"detail": message}, status)


def out_of_quota() -> web.Response:
    """Voyage without a payment method past its free tokens."""
    return error(
        429,
        "You have not yet added your payment method in the billing page and will "
        "have reduced rate limits.",
    )


def answer(call: Call) -> web.Response:
    if call.key_refused(call.credential()):
        return error(401, "Provided API key is invalid.")
    payload = call.payload()
    model, texts = payload.get("model", ""), payload.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error(400, "Input should be a string or a list of strings.")
    most = call.cap("items", TEXTS_PER_CALL)
    if len(texts) > most:
        return error(400, f"The batch size limit is {most}. Your batch size is {len(texts)}.")
    if payload.get("input_type") not in (None, "query", "document"):
        return error(400, "Value error, input_type should be either 'query', 'document' or None.")
    tokens = call.counted(texts)
    ceiling = call.cap("tokens", TOKENS_PER_CALL.get(model, OTHER_TOKENS_PER_CALL))
    if tokens > ceiling:
        return error(
            400,
            f"Request to model '{model}' failed. The max allowed tokens per "
            f"submitted batch is {ceiling}. Your batch has {tokens} tokens after "
            "truncation. Please lower the number of tokens in the batch.",
        )
    dimensions = payload.get("output_dimension")
    if dimensions is not None and (
        model not in FLEXIBLE or dimensions not in (256, 512, 1024, 2048)
    ):
        return error(
            400, f"Value error, output_dimension {dimensions} is not supported by {model}."
        )
    if payload.get("output_dtype", "float") != "float":
        return error(400, "The fake answers only output_dtype float.")
    size = dimensions or NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    as_base64 = payload.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64_vector(text, size) if as_base64 else vector(text, size),
        }
        for index, text in enumerate(texts)
    ]
    body: dict = {"object": "list", "data": data, "model": model}
    reported = call.reported(tokens)
    if reported is not None:
        body["usage"] = {"total_tokens": reported}
    return respond(body)
