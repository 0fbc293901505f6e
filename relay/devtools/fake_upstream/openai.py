"""The OpenAI dialect (and Azure's deployments path): the fake's first and
default one, whose routes, options and answers the relay's tests lean on."""

from __future__ import annotations

import orjson
from aiohttp import web

from relay.devtools.fake_upstream.common import encoded, error, tokens

NATIVE_DIMENSIONS = {"text-embedding-3-large": 3072}
DEFAULT_DIMENSIONS = 1536
SLOW_IF_S = 0.2  # the extra wait of a call with a ``slow_if=`` text


def slow(body: bytes, options: dict) -> bool:
    marker = options.get("slow_if")
    return bool(marker) and marker.encode() in body


def answer(body: bytes, options: dict, stats: dict, request: web.Request) -> web.Response:
    if "status" in options:
        status = int(options["status"])
        return error(status, f"fake upstream failure {status}", "server_error")
    if "quota" in options:  # OpenAI's account out of credit (Azure's words are the same)
        return error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
        )
    required_key = options.get("key")
    sent = stats["last_authorization"].removeprefix("Bearer ")
    if required_key and sent != required_key or not sent:
        return error(401, "Incorrect API key provided.")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error(400, "We could not parse the JSON body of your request.")
    stats["last_body"] = payload
    model = request.match_info.get("deployment") or payload.get("model", "")
    items = payload.get("input")
    one_token_list = isinstance(items, list) and items and isinstance(items[0], int)
    if isinstance(items, str) or one_token_list:
        items = [items]
    if not isinstance(items, list) or not items:
        return error(400, "'$.input' is invalid.")
    stats["max_items"] = max(stats.get("max_items", 0), len(items))
    marker = options.get("fail_if")
    if marker and any(isinstance(item, str) and marker in item for item in items):
        return error(503, "fake upstream failure on a marked input", "server_error")
    dimensions = payload.get("dimensions") or NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    as_base64 = payload.get("encoding_format") == "base64" and "floats" not in options
    texts = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]
    prompt_tokens = sum(tokens(item) if isinstance(item, str) else len(item) for item in items)
    order = range(len(texts) - 1, -1, -1) if "reverse" in options else range(len(texts))
    data = b",".join(
        b'{"object":"embedding","index":%d,"embedding":%s}'
        % (index, encoded(texts[index], dimensions, as_base64))
        for index in order
    )
    fields = b'"model":' + orjson.dumps(options.get("name", model))
    usage = options.get("usage")
    if usage == "none":
        pass
    elif usage == "total":
        fields += b',"usage":{"total_tokens":%d}' % prompt_tokens
    elif usage == "zero":
        fields += b',"usage":{"prompt_tokens":0,"total_tokens":0}'
    else:
        reported_tokens = int(usage) if usage else prompt_tokens
        fields += b',"usage":{"prompt_tokens":%d,"total_tokens":%d}' % (
            reported_tokens,
            reported_tokens,
        )
    if "lead" in options:
        out = b"{" + fields + b',"object":"list","data":[' + data + b"]}"
    else:
        out = b'{"object":"list","data":[' + data + b"]," + fields + b"}"
    return web.Response(body=out, content_type="application/json")
