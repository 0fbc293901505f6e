"""Amazon Bedrock's InvokeModel, for two families of embedding models.

``base_url`` is the runtime endpoint, e.g.
https://bedrock-runtime.us-east-1.amazonaws.com; the call is
``POST {base_url}/model/{model id}/invoke``. The call is signed with AWS
Signature Version 4 for the service ``bedrock`` by botocore; the region is
the one the host names (``bedrock-runtime.REGION.amazonaws.com``, also a
VPC endpoint's name), us-east-1 for a host that names none (a proxy).

The channel's credential is ``ACCESS_KEY_ID:SECRET_ACCESS_KEY``, or
``ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN`` for temporary credentials.
Any other form fails the call as the channel's fault (ChannelMisconfigured),
with a message that never contains the credential.

The model id (a foundation model id or an inference profile, such as
``us.cohere.embed-v4:0``) chooses the body:

- Titan Text Embeddings (amazon.titan-embed-text-v2:0, and v1): one text a
  call, 8,192 tokens; ``{"inputText", "dimensions", "normalize": true}``
  (``dimensions`` 256, 512 or 1,024, v2 only); answer ``{"embedding": [...],
  "inputTextTokenCount": N}``.
- Cohere Embed (cohere.embed-english-v3, cohere.embed-multilingual-v3,
  cohere.embed-v4:0): 96 texts a call; ``{"texts", "input_type",
  "truncate": "NONE", "embedding_types": ["float"], "output_dimension"}``
  (``output_dimension`` 256, 512, 1,024 or 1,536, v4 only); answer
  ``{"embeddings": {"float": [...]}}`` (or a plain list). The v3 models take
  at most 2,048 characters a text, which no token count can guarantee: the
  relay plans with 512 tokens (Cohere's recommended length, about 2,048
  characters at the documented 4 characters a token) and a longer text is
  Bedrock's 400 to the client (``truncate`` NONE: never cut in silence).
  ``input_type`` as in relay/providers/cohere.py (search_document by default).

Tokens billed: the ``X-Amzn-Bedrock-Input-Token-Count`` response header, else
Titan's ``inputTextTokenCount``.

The model id goes into the path percent-encoded except for ``:`` and ``@``:
aiohttp (yarl) rewrites ``%3A`` to ``:`` before sending, and SigV4 signs the
path as sent, so the URL is built already in the form every client sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from relay.contract import vectors
from relay.providers.base import (
    Capabilities,
    ChannelMisconfigured,
    ChannelRoute,
    Embedded,
    Shard,
    UnreadableAnswer,
    UpstreamCall,
)
from relay.providers.cohere import counted, float_rows, input_type

SERVICE = "bedrock"
DEFAULT_REGION = "us-east-1"
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
TOKEN_HEADER = "X-Amzn-Bedrock-Input-Token-Count"  # noqa: S105 (a header name)
CREDENTIAL_FORM = (
    "a Bedrock channel's credential must be ACCESS_KEY_ID:SECRET_ACCESS_KEY "
    "or ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN"
)

TITAN_V2 = Capabilities(
    items_per_call=1,
    tokens_per_item=8192,
    dimensions=True,
    dimension_choices=frozenset({256, 512, 1024}),
)
TITAN_V1 = Capabilities(items_per_call=1, tokens_per_item=8192)
COHERE_V4 = Capabilities(
    items_per_call=96,
    tokens_per_item=128_000,
    dimensions=True,
    dimension_choices=frozenset({256, 512, 1024, 1536}),
    options=frozenset({"input_type"}),
)
COHERE_V3 = Capabilities(items_per_call=96, tokens_per_item=512, options=frozenset({"input_type"}))
# (part of the model id, capabilities), the first match wins.
FAMILIES = (
    ("amazon.titan-embed-text-v2", TITAN_V2),
    ("amazon.titan-embed-text-v1", TITAN_V1),
    ("cohere.embed-v4", COHERE_V4),
    ("cohere.embed-", COHERE_V3),
)
UNKNOWN = Capabilities(items_per_call=1)


def family(model: str) -> Capabilities | None:
    name = model.rsplit("/", 1)[-1]  # an inference profile's ARN ends with its id
    return next((found for part, found in FAMILIES if part in name), None)


def credentials(credential: str) -> Credentials:
    parts = credential.strip().split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ChannelMisconfigured(CREDENTIAL_FORM)
    return Credentials(*parts)


def region(base_url: str) -> str:
    host = urlsplit(base_url).hostname or ""
    return next((label for label in host.split(".") if REGION.match(label)), DEFAULT_REGION)


def signed(url: str, body: bytes, secret: Credentials, where: str) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    SigV4Auth(secret, SERVICE, where).add_auth(request)
    return dict(request.headers.items())


def header(headers: Mapping[str, str], name: str) -> str | None:
    if (value := headers.get(name)) is not None:
        return value
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


class BedrockProvider:
    label = "Amazon Bedrock"
    passes_through = False

    def capabilities(self, model: str) -> Capabilities:
        return family(model) or UNKNOWN

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        found = family(shard.model)
        if found is None:
            raise ChannelMisconfigured(
                f"Bedrock model {shard.model!r} is neither Titan Text Embeddings nor Cohere Embed"
            )
        secret = credentials(route.credential)
        if found.items_per_call == 1:  # Titan
            payload: dict = {"inputText": shard.items[0]}
            if found is TITAN_V2:
                if shard.dimensions is not None:
                    payload["dimensions"] = shard.dimensions
                payload["normalize"] = True
        else:
            payload = {
                "texts": list(shard.items),
                "input_type": input_type(shard.options),
                "truncate": "NONE",
                "embedding_types": ["float"],
            }
            if shard.dimensions is not None:
                payload["output_dimension"] = shard.dimensions
        body = orjson.dumps(payload)
        url = f"{route.base_url}/model/{quote(shard.model, safe=':@')}/invoke"
        return UpstreamCall(
            url=url, headers=signed(url, body, secret, region(route.base_url)), body=body
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        sent = header(headers, TOKEN_HEADER)
        tokens = int(sent) if sent is not None and sent.strip().isdigit() else None
        try:
            answer = orjson.loads(body)
            if "embedding" in answer:  # Titan
                rows = [vectors.from_json(answer["embedding"])]
                if len(shard.items) != 1:
                    raise UnreadableAnswer(f"1 vector for {len(shard.items)} inputs")
                tokens = tokens or counted(answer.get("inputTextTokenCount"))
            else:
                rows = float_rows(answer["embeddings"], len(shard.items))
            return Embedded(vectors.stack(rows), tokens or None)
        except (orjson.JSONDecodeError, KeyError, TypeError, vectors.NotAVector) as exc:
            raise UnreadableAnswer(f"not an InvokeModel answer ({type(exc).__name__})") from exc
