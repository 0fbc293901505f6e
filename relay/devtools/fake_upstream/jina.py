"""Jina AI's ``/v1/embeddings`` (``{"detail": ...}`` errors, a Bearer key,
2,048 texts a call, ``task``, ``dimensions``, ``embedding_type``)."""

from __future__ import annotations

from aiohttp import web

from relay.devtools.fake_upstream.common import Call, base64_vector, respond, vector

NAME = "jina"
PATHS = ("/v1/embeddings",)
TEXTS_PER_CALL = 2048
NATIVE_DIMENSIONS = {"jina-embeddings-v4": 2048, "jina-embeddings-v3": 1024, "jina-clip-v2": 1024}
DEFAULT_DIMENSIONS = 768  # the v2 family
TASKS = {
    "jina-embeddings-v3": {
        "retrieval.query",
        "retrieval.passage",
        "text-matching",
        "classification",
        "separation",
    },
    "jina-embeddings-v4": {
        "retrieval.query",
        "retrieval.passage",
        "text-matching",
        "code.query",
        "code.passage",
    },
    "jina-clip-v2": {"retrieval.query", "retrieval.passage", "text-matching"},
}


def error(status: int, message: str) -> web.Response:
    return respond({"detail": message}, status)


def out_of_quota() -> web.Response:
    """Jina's key with no tokens left: 402."""
    return error(402, "Insufficient balance. Please top up your API key.")


def answer(call: Call) -> web.Response:
    if call.key_refused(call.credential()):
        return error(401, "Invalid API key")
    payload = call.payload()
    model, texts = payload.get("model", ""), payload.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error(422, "input: a list of strings is required")
    most = call.cap("items", TEXTS_PER_CALL)
    if len(texts) > most:
        return error(400, f"Too many inputs: {len(texts)}, at most {most} are allowed")
    task = payload.get("task")
    if task is not None and task not in TASKS.get(model, ()):
        return error(422, f"task {task!r} is not supported by {model}")
    native = NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    dimensions = payload.get("dimensions")
    if dimensions is not None and (model not in TASKS or not 32 <= dimensions <= native):
        return error(422, f"dimensions {dimensions} is not supported by {model}")
    kind = payload.get("embedding_type", "float")
    if kind not in ("float", "base64"):
        return error(422, "the fake answers only embedding_type float and base64")
    tokens = call.counted(texts)
    if tokens > call.cap("tokens", 10**9):
        return error(400, f"Too many tokens in one call: {tokens}")
    size = dimensions or native
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64_vector(text, size) if kind == "base64" else vector(text, size),
        }
        for index, text in enumerate(texts)
    ]
    body: dict = {"model": model, "object": "list", "data": data}
    reported = call.reported(tokens)
    if reported is not None:
        body["usage"] = {"total_tokens": reported, "prompt_tokens": reported}
    return respond(body)
