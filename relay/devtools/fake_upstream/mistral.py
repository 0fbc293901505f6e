"""Mistral's ``/v1/embeddings`` (Mistral's error object, a Bearer key, its
per-call caps on texts and tokens, ``output_dimension`` for codestral-embed)."""

from __future__ import annotations

import uuid

from aiohttp import web

from relay.devtools.fake_upstream.common import Call, base64_vector, respond, vector

NAME = "mistral"
PATHS = ("/v1/embeddings",)
# What Mistral's answers say and integrations report: 16,384 tokens a call;
# 256 texts pass, 257 are "too many inputs".
TEXTS_PER_CALL = 256
TOKENS_PER_CALL = 16_384
NATIVE_DIMENSIONS = {"codestral-embed": 1536, "codestral-embed-2505": 1536}
DEFAULT_DIMENSIONS = 1024


def error(status: int, message: str) -> web.Response:
    if status == 401:
        return respond({"message": "Unauthorized", "request_id": uuid.uuid4().hex}, status)
    return respond(
        {
            "object": "error",
            "message": message,
            "type": "invalid_request_prompt",
            "param": None,
            "code": "3210",
        },
        status,
    )


def out_of_quota() -> web.Response:
    """Mistral past its workspace's billing limit."""
    return error(402, "Payment required: your workspace has reached its billing limit.")


def answer(call: Call) -> web.Response:
    if call.key_refused(call.credential()):
        return error(401, "Unauthorized")
    payload = call.payload()
    model, texts = payload.get("model", ""), payload.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error(422, "input: a string or a list of strings is required")
    if len(texts) > call.cap("items", TEXTS_PER_CALL):
        return error(400, "Too many inputs in request, split into more batches.")
    tokens = call.counted(texts)
    if tokens > call.cap("tokens", TOKENS_PER_CALL):
        return error(400, "Too many tokens overall, split into more batches.")
    dimensions = payload.get("output_dimension")
    if dimensions is not None and model not in NATIVE_DIMENSIONS:
        return error(400, f"output_dimension is not supported by {model}")
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
    body: dict = {"id": uuid.uuid4().hex, "object": "list", "data": data, "model": model}
    reported = call.reported(tokens)
    if reported is not None:
        body["usage"] = {
            "prompt_tokens": reported,
            "total_tokens": reported,
            "completion_tokens": 0,
        }
    return respond(body)
