"""Gemini's ``models.batchEmbedContents`` (Google's error envelope, the key
in ``x-goog-api-key``, at most 100 requests a call, no usage)."""

from __future__ import annotations

from aiohttp import web

from relay.devtools.fake_upstream.common import Call, respond, vector

NAME = "gemini"
PATHS = ("/v1beta/models/{target}",)
REQUESTS_PER_CALL = 100
NATIVE_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
DEFAULT_DIMENSIONS = 768
TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}
STATUSES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error(status: int, message: str, reason: str | None = None) -> web.Response:
    body: dict = {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}
    if reason:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return respond({"error": body}, status)


def out_of_quota() -> web.Response:
    """Gemini's free tier past its quota: 429 RESOURCE_EXHAUSTED with billing words."""
    return error(
        429, "You exceeded your current quota, please check your plan and billing details."
    )


def answer(call: Call) -> web.Response:
    model, _, method = call.request.match_info["target"].partition(":")
    if method != "batchEmbedContents":
        return error(404, f"Method {method!r} is not found for model {model!r}.")
    sent = call.credential("x-goog-api-key", "")
    if not sent:
        return error(
            403,
            "Method doesn't allow unregistered callers (callers without "
            "established identity). Please use API Key or other form of API "
            "consumer identity to call this API.",
        )
    if call.key_refused(sent):
        return error(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
    requests = call.payload().get("requests")
    if not isinstance(requests, list) or not requests:
        return error(400, "* BatchEmbedContentsRequest.requests: must not be empty\n")
    if len(requests) > call.cap("items", REQUESTS_PER_CALL):
        return error(
            400,
            "* BatchEmbedContentsRequest.requests: at most "
            f"{call.cap('items', REQUESTS_PER_CALL)} requests can be in one batch\n",
        )
    texts, rows = [], []
    for index, one in enumerate(requests):
        where = f"BatchEmbedContentsRequest.requests[{index}]"
        if not isinstance(one, dict) or one.get("model") != f"models/{model}":
            return error(400, f"* {where}.model: the model must match the batch's model\n")
        content = one.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if (
            not isinstance(parts, list)
            or not parts
            or not all(
                isinstance(part, dict) and isinstance(part.get("text"), str) for part in parts
            )
        ):
            return error(400, f"* {where}.content: contents are required\n")
        kind = one.get("taskType")
        if kind is not None and kind not in TASK_TYPES:
            return error(400, f"Invalid value at 'requests[{index}].task_type', {kind!r}")
        dimensions = one.get("outputDimensionality") or NATIVE_DIMENSIONS.get(
            model, DEFAULT_DIMENSIONS
        )
        text = "".join(part["text"] for part in parts)
        texts.append(text)
        rows.append({"values": vector(text, dimensions)})
    call.counted(texts)
    return respond({"embeddings": rows})
