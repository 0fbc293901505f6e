"""Cohere's Embed API v2 (``{"message": ...}`` errors, a Bearer key, at most
96 texts a call, ``input_type`` required, tokens in ``meta.billed_units``)."""

from __future__ import annotations

import uuid

from aiohttp import web

from relay.devtools.fake_upstream.common import Call, base64_vector, respond, vector

NAME = "cohere"
PATHS = ("/v2/embed",)
TEXTS_PER_CALL = 96
NATIVE_DIMENSIONS = {
    "embed-v4.0": 1536,
    "embed-english-light-v3.0": 384,
    "embed-multilingual-light-v3.0": 384,
}
DEFAULT_DIMENSIONS = 1024
OUTPUT_DIMENSIONS = {"embed-v4.0": {256, 512, 1024, 1536}}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}
TRUNCATES = {"NONE", "START", "END"}


def error(status: int, message: str) -> web.Response:
    return respond({"message": message}, status)


def out_of_quota() -> web.Response:
    """A Cohere trial key past its monthly calls."""
    return error(
        429,
        "You are using a Trial key, which is limited to 1000 API calls / month. "
        "You can continue to use the Trial key for free or upgrade to a Production key.",
    )


def answer(call: Call) -> web.Response:
    sent = call.credential()
    if call.key_refused(sent):
        return error(401, "invalid api token")
    payload = call.payload()
    model, texts = payload.get("model"), payload.get("texts")
    if not isinstance(model, str) or not model:
        return error(400, "invalid request: model must be specified")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error(400, "invalid request: texts must be a non-empty list of strings")
    most = call.cap("items", TEXTS_PER_CALL)
    if len(texts) > most:
        return error(
            400,
            f"invalid request: total number of texts must be at most {most} "
            f"- received {len(texts)}",
        )
    if payload.get("input_type") not in INPUT_TYPES:
        return error(
            400, "invalid request: valid input_type must be provided with the provided model"
        )
    if payload.get("truncate", "END") not in TRUNCATES:
        return error(400, "invalid request: truncate must be one of NONE, START, END")
    dimensions = payload.get("output_dimension")
    if dimensions is not None and dimensions not in OUTPUT_DIMENSIONS.get(model, ()):
        return error(
            400,
            f"invalid request: output_dimension {dimensions} is not supported for model {model}",
        )
    tokens = call.counted(texts)
    if tokens > call.cap("tokens", 10**9):
        return error(400, f"invalid request: too many tokens in one call ({tokens})")
    size = dimensions or NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    floats = [vector(text, size) for text in texts]
    kinds = payload.get("embedding_types")
    by_type = kinds is not None
    if by_type and (not isinstance(kinds, list) or not set(kinds) <= {"float", "base64"}):
        return error(400, "invalid request: the fake answers only float and base64 types")
    embeddings: object = floats
    if by_type:
        embeddings = {"float": floats} if "float" in kinds else {}
        if "base64" in kinds:
            embeddings["base64"] = [base64_vector(text, size) for text in texts]
    meta: dict = {"api_version": {"version": "2"}}
    billed = call.reported(tokens)
    if billed is not None:
        meta["billed_units"] = {"input_tokens": billed}
    return respond(
        {
            "id": str(uuid.uuid4()),
            "embeddings": embeddings,
            "texts": texts,
            "meta": meta,
            "response_type": "embeddings_by_type" if by_type else "embeddings_floats",
        }
    )
