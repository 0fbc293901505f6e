"""Ollama's native ``/api/embed`` (``{"error": ...}`` errors, no
authentication unless ``key=`` stands for a proxy in front, no batch cap,
``prompt_eval_count``)."""

from __future__ import annotations

from aiohttp import web

from relay.contract.tokens import count_text
from relay.devtools.fake_upstream.common import Call, respond, vector

NAME = "ollama"
PATHS = ("/api/embed",)
NATIVE_DIMENSIONS = {"mxbai-embed-large": 1024, "all-minilm": 384, "bge-m3": 1024}
DEFAULT_DIMENSIONS = 768  # nomic-embed-text
CONTEXT_TOKENS = 8192  # the model's context, here counted in cl100k_base tokens


def error(status: int, message: str) -> web.Response:
    return respond({"error": message}, status)


def out_of_quota() -> web.Response:
    """A self-hosted server has no account; a relay in front of one says this."""
    return error(402, "insufficient balance")


def answer(call: Call) -> web.Response:
    if "key" in call.options and call.key_refused(call.credential()):
        return error(401, "unauthorized")
    payload = call.payload()
    model, texts = payload.get("model"), payload.get("input")
    if not isinstance(model, str) or not model:
        return error(400, "model is required")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error(400, "invalid input type")
    tokens = call.counted(texts)
    context = call.cap("tokens", CONTEXT_TOKENS)
    if payload.get("truncate") is False and any(count_text(text) > context for text in texts):
        return error(400, "the input length exceeds the context length")
    size = payload.get("dimensions") or NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    body: dict = {
        "model": model,
        "embeddings": [vector(text, size) for text in texts],
        "total_duration": 1_000_000,
        "load_duration": 1000,
    }
    reported = call.reported(tokens)
    if reported is not None:
        body["prompt_eval_count"] = reported
    return respond(body)
