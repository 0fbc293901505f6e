"""Amazon Bedrock: SigV4-signed InvokeModel calls for Titan and Cohere Embed,
their answers, and the fake's dialect, which verifies the signature."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import httpx
import orjson
import pytest
import yarl

from relay.contract.tokens import count_text
from relay.devtools.fake_upstream.bedrock import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from relay.providers import PROVIDERS
from relay.providers.base import ChannelMisconfigured, UnreadableAnswer
from relay.providers.bedrock import region
from tests.relay.providers.helpers import assert_vectors, dialect_url, route, send, shard

bedrock = PROVIDERS["bedrock"]
BASE = "https://bedrock-runtime.eu-central-1.amazonaws.com"
CREDENTIAL = f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}"
TITAN = "amazon.titan-embed-text-v2:0"


def signed_call(
    fake, model: str, texts: list[str], options: str = "", credential: str = CREDENTIAL, **fields
):
    return bedrock.build(
        route("bedrock", dialect_url(fake, "bedrock", options), credential),
        shard(model, texts, **fields),
    )


def test_build_signs_a_titan_call_for_bedrock_in_the_hosts_region():
    call = bedrock.build(
        route("bedrock", BASE, CREDENTIAL), shard(TITAN, ["hello"], dimensions=512)
    )
    assert call.url == f"{BASE}/model/amazon.titan-embed-text-v2:0/invoke"
    assert orjson.loads(call.body) == {"inputText": "hello", "dimensions": 512, "normalize": True}
    assert call.headers["Content-Type"] == call.headers["Accept"] == "application/json"
    authorization = call.headers["Authorization"]
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/{call.headers['X-Amz-Date'][:8]}"
        "/eu-central-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, "
        "Signature="
    )
    assert TEST_SECRET_ACCESS_KEY not in repr(call.headers)


def test_build_sends_cohere_embed_texts_with_input_type_and_no_truncation():
    call = bedrock.build(
        route("bedrock", BASE, CREDENTIAL + ":session-token"),
        shard("cohere.embed-v4:0", ["a", "b"], dimensions=256, options={"input_type": "query"}),
    )
    assert orjson.loads(call.body) == {
        "texts": ["a", "b"],
        "input_type": "search_query",
        "truncate": "NONE",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    assert call.headers["X-Amz-Security-Token"] == "session-token"
    assert "x-amz-security-token" in call.headers["Authorization"]
    v3 = orjson.loads(
        bedrock.build(
            route("bedrock", BASE, CREDENTIAL), shard("cohere.embed-english-v3", ["a"])
        ).body
    )
    assert v3["input_type"] == "search_document" and "output_dimension" not in v3


@pytest.mark.parametrize(
    "model",
    [
        TITAN,
        "us.cohere.embed-v4:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.cohere.embed-v4:0",
    ],
)
def test_the_url_is_sent_as_built_by_aiohttp_and_httpx_alike(model):
    """SigV4 signs the path as sent; yarl would rewrite %3A to a colon."""
    url = bedrock.build(route("bedrock", BASE, CREDENTIAL), shard(model, ["a"])).url
    path = url.removeprefix(BASE)
    assert yarl.URL(url).raw_path == path == httpx.URL(url).raw_path.decode()
    assert path.count("/") == 3  # an ARN's slash is escaped inside its segment


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "only-a-key-id",
        f"{TEST_ACCESS_KEY_ID}:",
        f":{TEST_SECRET_ACCESS_KEY}",
        f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}:token:extra",
        f"{TEST_ACCESS_KEY_ID}::token",
    ],
)
def test_a_malformed_credential_is_the_channels_fault_and_never_echoed(credential):
    with pytest.raises(ChannelMisconfigured) as raised:
        bedrock.build(route("bedrock", BASE, credential), shard(TITAN, ["a"]))
    assert "ACCESS_KEY_ID:SECRET_ACCESS_KEY" in str(raised.value)
    assert TEST_SECRET_ACCESS_KEY not in str(raised.value)
    assert not credential or credential.strip(":") not in str(raised.value)


def test_a_model_of_no_known_family_is_the_channels_fault():
    with pytest.raises(ChannelMisconfigured, match="neither Titan"):
        bedrock.build(route("bedrock", BASE, CREDENTIAL), shard("meta.llama3-8b", ["a"]))


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://bedrock-runtime.us-west-2.amazonaws.com", "us-west-2"),
        ("https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        (
            "https://vpce-0a1b-c2d3.bedrock-runtime.ap-southeast-2.vpce.amazonaws.com",
            "ap-southeast-2",
        ),
        ("https://bedrock-runtime.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("http://127.0.0.1:9000/bedrock", "us-east-1"),
    ],
)
def test_the_region_is_the_one_the_host_names(base_url, expected):
    assert region(base_url) == expected


def test_capabilities_per_family():
    titan = bedrock.capabilities(TITAN)
    assert (titan.items_per_call, titan.tokens_per_item) == (1, 8192)
    assert titan.dimension_choices == {256, 512, 1024} and not titan.options
    v3 = bedrock.capabilities("cohere.embed-multilingual-v3")
    assert (v3.items_per_call, v3.tokens_per_item, v3.dimensions) == (96, 512, False)
    assert bedrock.capabilities("eu.cohere.embed-v4:0").dimension_choices == {256, 512, 1024, 1536}
    assert v3.options == {"input_type"}


def test_parse_takes_the_token_count_from_the_header_in_any_case():
    body = b'{"embedding": [0.5, 0.5], "inputTextTokenCount": 3}'
    one = shard(TITAN, ["a"])
    assert bedrock.parse(body, one, {"x-amzn-bedrock-input-token-count": "5"}).tokens == 5
    assert bedrock.parse(body, one, {}).tokens == 3
    cohere = b'{"id": "i", "embeddings": [[1.0], [0.0]], "response_type": "embeddings_floats"}'
    embedded = bedrock.parse(
        cohere,
        shard("cohere.embed-english-v3", ["a", "b"]),
        {"X-Amzn-Bedrock-Input-Token-Count": "9"},
    )
    assert (embedded.vectors.tolist(), embedded.tokens) == ([[1.0], [0.0]], 9)


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": "x"}',
        b'{"embedding": "x"}',
        b'{"embeddings": {"int8": [[1]]}}',
        b"[1]",
        b"",
    ],
)
def test_parse_refuses_what_is_not_an_invoke_model_answer(body):
    with pytest.raises(UnreadableAnswer):
        bedrock.parse(body, shard("cohere.embed-english-v3", ["a"]), {})


@pytest.mark.parametrize(
    ("model", "texts", "dimensions", "size"),
    [
        (TITAN, ["just one text"], None, 1024),
        (TITAN, ["just one text"], 256, 256),
        ("amazon.titan-embed-text-v1", ["v1 text"], None, 1536),
        ("cohere.embed-english-v3", [f"doc {n}" for n in range(96)], None, 1024),
        ("cohere.embed-v4:0", ["a", "b", "c"], 512, 512),
    ],
)
def test_a_signed_round_trip_through_the_fake(fake_upstream, model, texts, dimensions, size):
    answer = send(signed_call(fake_upstream, model, texts, dimensions=dimensions))
    assert answer.status_code == 200, answer.text
    embedded = bedrock.parse(answer.content, shard(model, texts), answer.headers)
    assert_vectors(embedded.vectors, texts, size)
    assert embedded.tokens == sum(count_text(text) for text in texts)


def test_the_relays_own_client_sends_what_was_signed(fake_upstream):
    call = signed_call(fake_upstream, "cohere.embed-v4:0", ["through aiohttp"])

    async def post() -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.post(call.url, data=call.body, headers=call.headers) as response,
        ):
            return response.status

    assert asyncio.run(post()) == 200


def refused(answer: httpx.Response) -> tuple[int, str, str]:
    return (
        answer.status_code,
        answer.headers.get("x-amzn-ErrorType", "").split(":")[0],
        answer.json()["message"],
    )


def test_a_tampered_body_is_refused_as_bedrock_refuses_it(fake_upstream):
    call = signed_call(fake_upstream, TITAN, ["what was signed"])
    tampered = dataclasses.replace(call, body=call.body.replace(b"signed", b"sent!!"))
    status, kind, message = refused(send(tampered))
    assert (status, kind) == (403, "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match")
    assert send(call).status_code == 200  # the untouched call still passes


def test_a_tampered_signed_header_or_path_is_refused(fake_upstream):
    call = signed_call(fake_upstream, TITAN, ["x"])
    headers = {**call.headers, "Accept": "*/*"}
    assert refused(send(dataclasses.replace(call, headers=headers)))[:2] == (
        403,
        "InvalidSignatureException",
    )
    moved = call.url.replace("v2:0", "v1")
    assert refused(send(dataclasses.replace(call, url=moved)))[:2] == (
        403,
        "InvalidSignatureException",
    )


def test_a_wrong_secret_an_unknown_key_and_no_signature_are_refused(fake_upstream):
    wrong_secret = signed_call(
        fake_upstream, TITAN, ["x"], credential=f"{TEST_ACCESS_KEY_ID}:not-the-secret"
    )
    assert refused(send(wrong_secret))[:2] == (403, "InvalidSignatureException")
    unknown = signed_call(fake_upstream, TITAN, ["x"], credential="AKIAUNKNOWN000000000:s")
    assert refused(send(unknown))[:2] == (403, "UnrecognizedClientException")
    call = signed_call(fake_upstream, TITAN, ["x"])
    bare = {k: v for k, v in call.headers.items() if k != "Authorization"}
    assert refused(send(dataclasses.replace(call, headers=bare)))[0] == 403


def test_a_session_token_is_signed_and_checked(fake_upstream):
    with_token = signed_call(
        fake_upstream, TITAN, ["x"], options="token=tok-1", credential=CREDENTIAL + ":tok-1"
    )
    assert send(with_token).status_code == 200
    other = signed_call(
        fake_upstream, TITAN, ["x"], options="token=tok-1", credential=CREDENTIAL + ":tok-2"
    )
    assert refused(send(other))[:2] == (403, "UnrecognizedClientException")


def test_the_fake_refuses_a_97th_cohere_text_as_a_validation_error(fake_upstream):
    status, kind, message = refused(
        send(signed_call(fake_upstream, "cohere.embed-english-v3", [f"t{n}" for n in range(97)]))
    )
    assert (status, kind) == (400, "ValidationException")
    assert "expected maximum item count: 96, found: 97" in message
