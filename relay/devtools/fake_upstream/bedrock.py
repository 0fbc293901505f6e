"""Amazon Bedrock's InvokeModel for Titan Text Embeddings and Cohere Embed.

Every call must carry a valid AWS Signature Version 4 for the service
``bedrock``, checked with botocore against the credentials this fake knows:
the test pair below, or ``key=ACCESS_KEY_ID:SECRET`` in the route's options
(and ``token=T`` to require that session token). A bad signature is refused
as Bedrock refuses it: 403, ``{"message": ...}`` and ``x-amzn-ErrorType``.
Token counts go in the ``X-Amzn-Bedrock-Input-Token-Count`` header
(``usage=none`` leaves it out).
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import UTC, datetime, timedelta

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from relay.devtools.fake_upstream.common import Call, respond, vector

NAME = "bedrock"
PATHS = ("/model/{model}/invoke",)
TEST_ACCESS_KEY_ID = "AKIAFAKERELAYTEST001"
TEST_SECRET_ACCESS_KEY = "fakeRelaySecretAccessKeyForTestsOnly0000"  # noqa: S105 (a test value)
TEXTS_PER_CALL = 96
SKEW = timedelta(minutes=5)
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V1 = "amazon.titan-embed-text-v1"
COHERE = {
    "cohere.embed-english-v3": 1024,
    "cohere.embed-multilingual-v3": 1024,
    "cohere.embed-v4:0": 1536,
}


def error(status: int, message: str, kind: str | None = None) -> web.Response:
    kind = kind or TYPES.get(status, "InternalServerException")
    return respond({"message": message}, status, {"x-amzn-ErrorType": f"{kind}:http://internal"})


def out_of_quota() -> web.Response:
    """An AWS account whose Bedrock access is cut for billing."""
    return error(
        403,
        "Access denied: the billing of this AWS account is not active for the model.",
        "AccessDeniedException",
    )


def refusal(call: Call) -> web.Response | None:
    """Bedrock's answer to a call whose signature does not verify, or None."""
    request = call.request
    found = AUTHORIZATION.match(request.headers.get("Authorization", ""))
    call.stats["last_authorization"] = request.headers.get("Authorization", "")
    if not found:
        return error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
    key_id, secret = TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
    if "key" in call.options:
        key_id, _, secret = call.options["key"].partition(":")
    token = request.headers.get("X-Amz-Security-Token")
    if found["key"] != key_id or call.options.get("token", token) != token:
        return error(
            403,
            "The security token included in the request is invalid.",
            "UnrecognizedClientException",
        )
    if found["service"] != "bedrock":
        return error(
            403,
            "Credential should be scoped to correct service: 'bedrock'.",
            "InvalidSignatureException",
        )
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return error(403, MISMATCH, "InvalidSignatureException")
    if not stamp.startswith(found["date"]) or abs(datetime.now(UTC) - when) > SKEW:
        return error(
            403,
            f"Signature expired: {stamp} is now earlier or later than allowed.",
            "InvalidSignatureException",
        )
    signed = found["signed"].split(";")
    if "host" not in signed or any(name not in request.headers for name in signed):
        return error(403, MISMATCH, "InvalidSignatureException")
    # The request as the client signed it: the path as sent, the signed headers.
    again = AWSRequest(
        method=request.method,
        url=f"http://{request.host}{request.raw_path}",
        data=call.body,
        headers={name: request.headers[name] for name in signed},
    )
    again.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key_id, secret, token), "bedrock", found["region"])
    expected = signer.signature(
        signer.string_to_sign(again, signer.canonical_request(again)), again
    )
    if not hmac.compare_digest(expected, found["signature"]):
        return error(403, MISMATCH, "InvalidSignatureException")
    return None


def answer(call: Call) -> web.Response:
    if (refused := refusal(call)) is not None:
        return refused
    model = call.request.match_info["model"]
    payload = call.payload()
    if model in (TITAN_V2, TITAN_V1):
        return titan(call, payload, model)
    if model in COHERE:
        return cohere(call, payload, model)
    return error(400, "The provided model identifier is invalid.")


def counted_headers(call: Call, tokens: int) -> dict:
    headers = {"X-Amzn-Bedrock-Invocation-Latency": "12"}
    if (reported := call.reported(tokens)) is not None:
        headers["X-Amzn-Bedrock-Input-Token-Count"] = str(reported)
    return headers


def titan(call: Call, payload: dict, model: str) -> web.Response:
    allowed = {"inputText"} | (
        {"dimensions", "normalize", "embeddingTypes"} if model == TITAN_V2 else set()
    )
    if extra := set(payload) - allowed:
        return error(
            400,
            f"Malformed input request: extraneous key [{sorted(extra)[0]}] is "
            "not permitted, please reformat your input and try again.",
        )
    text = payload.get("inputText")
    if not isinstance(text, str) or not text:
        return error(
            400,
            "Malformed input request: #/inputText: expected type: String, "
            "please reformat your input and try again.",
        )
    dimensions = payload.get("dimensions", 1024 if model == TITAN_V2 else 1536)
    if dimensions not in (256, 512, 1024, 1536):
        return error(
            400,
            f"Malformed input request: #/dimensions: {dimensions} is not a "
            "valid enum value, please reformat your input and try again.",
        )
    tokens = call.counted([text])
    values = vector(text, dimensions)
    body: dict = {"embedding": values, "inputTextTokenCount": tokens}
    if model == TITAN_V2:
        body["embeddingsByType"] = {"float": values}
    return respond(body, headers=counted_headers(call, tokens))


def cohere(call: Call, payload: dict, model: str) -> web.Response:
    texts = payload.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error(
            400,
            "Malformed input request: #/texts: expected type: JSONArray, "
            "please reformat your input and try again.",
        )
    most = call.cap("items", TEXTS_PER_CALL)
    if len(texts) > most:
        return error(
            400,
            f"Malformed input request: #/texts: expected maximum item count: "
            f"{most}, found: {len(texts)}, please reformat your input and try again.",
        )
    if payload.get("input_type") not in (
        "search_document",
        "search_query",
        "classification",
        "clustering",
    ):
        return error(
            400,
            "Malformed input request: #/input_type: is not a valid enum value, "
            "please reformat your input and try again.",
        )
    dimensions = payload.get("output_dimension")
    if dimensions is not None and (
        model != "cohere.embed-v4:0" or dimensions not in (256, 512, 1024, 1536)
    ):
        return error(
            400,
            "Malformed input request: extraneous key [output_dimension] is not "
            "permitted, please reformat your input and try again.",
        )
    tokens = call.counted(texts)
    floats = [vector(text, dimensions or COHERE[model]) for text in texts]
    by_type = "embedding_types" in payload
    return respond(
        {
            "id": str(uuid.uuid4()),
            "embeddings": {"float": floats} if by_type else floats,
            "texts": texts,
            "response_type": "embeddings_by_type" if by_type else "embeddings_floats",
        },
        headers=counted_headers(call, tokens),
    )
