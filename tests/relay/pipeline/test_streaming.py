"""Big answers passed on as they arrive (relay/pipeline/streaming.py,
relay/pipeline/upstream.py, passthrough.streamable).

The mechanics first, on bytes and fakes: the pieces sent add up to the
answer the relay would have sent whole, whatever the upstream's chunking;
the request settles exactly once at the end, or releases its hold if the
answer breaks off. Then over HTTP against the live relay: what a client
and the books see of a streamed answer, of one cut short, and of the
answers that must still be read whole.
"""

from __future__ import annotations

import asyncio
import base64
import struct

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.models import ApiKey
from billing import live_sync
from billing.models import UsageRecord
from relay.asgi import api, application
from relay.catalog.keys import KeyContext
from relay.catalog.routes import ModelRoute
from relay.contract import passthrough
from relay.contract.errors import UpstreamFailed
from relay.contract.validation import EmbeddingRequest
from relay.pipeline import streaming, upstream
from relay.pipeline.outcome import Outcome
from relay.pipeline.trace import Trace
from tests.helpers import (
    LARGE,
    SMALL,
    STARTING_BALANCE_NANOS,
    body_messages,
    call,
    embed,
    embeddings,
    make_channel,
    records,
    usages,
    uses_live_relay,
    wait_until,
)
from tests.relay.providers.helpers import route

TAIL = streaming.Streamed.TAIL_BYTES
# 3,072 floats an input, ~21 bytes each in JSON: 40 inputs make ~2.6 MB, well
# past RELAY_STREAM_FROM_BYTES (1 MiB). (An answer that has arrived whole by
# the time its first MiB is read is sent whole.)
BIG_BATCH = [f"sentence number {n} for a big answer" for n in range(40)]
no_database = settings(database=None, deadline=None)


# --- which answers may be passed on before their end ----------------------------


def test_an_answer_in_openais_order_may_be_streamed():
    first = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,'
    assert passthrough.streamable(first, wants_base64=False)


def test_an_answer_that_names_its_model_or_usage_before_the_vectors_is_read_whole():
    for lead in (b'{"model":"m",', b'{"usage":{"prompt_tokens":1},', b'{\n  "model" : "m",'):
        first = lead + b'"object":"list","data":[{"object":"embedding","embedding":[0.1,'
        assert not passthrough.streamable(first, wants_base64=False), lead


def test_floats_for_a_base64_client_are_read_whole_to_be_converted():
    floats = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,'
    as_base64 = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":"zcz'
    assert not passthrough.streamable(floats, wants_base64=True)
    assert passthrough.streamable(as_base64, wants_base64=True)
    assert passthrough.streamable(as_base64, wants_base64=False)


def test_an_answer_without_a_data_array_is_read_whole():
    assert not passthrough.streamable(b'{"object":"list","model":"m"', wants_base64=False)
    assert not passthrough.streamable(b'{"object":"list","data":null}', wants_base64=False)


# --- the pieces add up to the answer ----------------------------------------------


class FakeRest:
    """The rest of an answer in given chunks; ``fail_after`` chunks, a failure."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.read = 0
        self.closed = 0
        self.waited_s = 0.0

    async def next_chunk(self) -> bytes:
        if self.fail_after is not None and self.read == self.fail_after:
            raise upstream.ChannelFailed("connection error: ClientPayloadError", kind="connection")
        self.read += 1
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed += 1


class FakeEntry:
    def __init__(self) -> None:
        self.settled: list[str] = []

    def settle(self, event: str):
        self.settled.append(event)
        return asyncio.sleep(0)


class FakeOutcome:
    """Marks the tail it finishes, so the test sees where the rewrite went."""

    def __init__(self) -> None:
        self.trace = Trace(request_id="req_test")
        self.entry = FakeEntry()
        self.failures: list[BaseException | None] = []

    def finish(self, tail: bytes, channel) -> tuple[bytes, str]:
        return b"<" + tail + b">", "event"

    async def fail(self, failure: BaseException | None) -> None:
        self.failures.append(failure)


CHANNEL = route("openai", "http://upstream", model=SMALL)


def streamed(first: bytes, rest: FakeRest, outcome: FakeOutcome, budget: list[int]):
    return streaming.Streamed(
        upstream.Reply(first, rest), CHANNEL, outcome, upstream_closed=lambda: budget.append(1)
    )


async def pieces_of(answer: streaming.Streamed) -> list[bytes]:
    """As the route takes them: every piece, then the settle's reply."""
    try:
        pieces = [piece async for piece in answer]
    finally:
        await answer.aclose()
    await answer.settled
    return pieces


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@no_database
@given(
    st.binary(min_size=0, max_size=3 * TAIL),
    st.binary(min_size=1, max_size=TAIL),
    st.lists(st.integers(0, 4 * TAIL), max_size=8),
)
def test_the_pieces_are_the_answer_with_its_tail_finished_last(first, rest, cuts):
    body = first + rest
    outcome, budget, upstream_rest = FakeOutcome(), [], FakeRest(split(rest, cuts))
    answer = streamed(first, upstream_rest, outcome, budget)

    pieces = asyncio.run(pieces_of(answer))

    finished_tail = b"<" + body[-TAIL:] + b">"
    assert b"".join(pieces) == body[: max(len(body) - TAIL, 0)] + finished_tail
    assert pieces[-1] == finished_tail  # the tail is held back until the very end
    assert all(pieces[:-1])
    assert outcome.entry.settled == ["event"] and outcome.failures == []
    assert answer.settled is not None
    assert upstream_rest.closed >= 1 and budget == [1]


@no_database
@given(
    st.binary(min_size=1, max_size=3 * TAIL), st.lists(st.binary(min_size=1), max_size=5), st.data()
)
def test_an_answer_broken_off_releases_its_hold_and_is_never_finished(first, chunks, data):
    fail_after = data.draw(st.integers(0, len(chunks)))
    outcome, budget, rest = FakeOutcome(), [], FakeRest(chunks, fail_after=fail_after)
    answer = streamed(first, rest, outcome, budget)

    with pytest.raises(UpstreamFailed):
        asyncio.run(pieces_of(answer))

    assert outcome.entry.settled == []
    [failure] = outcome.failures
    assert isinstance(failure, UpstreamFailed)  # noted as a failed request, cost 0
    assert outcome.trace.failed_channel_ids == [CHANNEL.channel_id]
    assert rest.closed >= 1 and budget == [1]


def test_an_answer_abandoned_midway_releases_its_hold_once():
    outcome, budget, rest = FakeOutcome(), [], FakeRest([b"x" * TAIL] * 4)
    answer = streamed(b"y" * (2 * TAIL), rest, outcome, budget)

    async def take_one_piece_and_leave():
        await answer.__anext__()
        await answer.aclose()
        await answer.aclose()

    asyncio.run(take_one_piece_and_leave())
    assert outcome.failures == [None]  # released, not noted as an upstream failure
    assert outcome.entry.settled == []
    assert budget == [1]


def test_a_failure_while_finishing_releases_the_hold_and_the_budget_once():
    class Broken(FakeOutcome):
        def finish(self, tail, channel):
            raise RuntimeError("a bug")

    outcome, budget, rest = Broken(), [], FakeRest([b"x" * TAIL])
    answer = streamed(b"y" * TAIL, rest, outcome, budget)

    with pytest.raises(RuntimeError):
        asyncio.run(pieces_of(answer))

    assert len(outcome.failures) == 1 and outcome.entry.settled == []
    assert budget == [1] and rest.closed == 1


# --- finishing the tail is finishing the whole answer ---------------------------


def outcome_for(request: EmbeddingRequest) -> Outcome:
    key = KeyContext(
        key_id=1,
        tenant_id=1,
        group_id=1,
        prefix="sk-test",
        last4="abcd",
        expires=None,
        allowed_models=frozenset(),
        allowed_ips=(),
        spend_cap_nanos=None,
        limit_rpm=None,
        limit_tpm=None,
        limit_concurrency=None,
        tenant_limit_rpm=None,
        tenant_limit_tpm=None,
        tenant_limit_concurrency=None,
    )
    model_route = ModelRoute(
        model=request.model, price_per_mtok_nanos=20_000_000, channels=(CHANNEL,)
    )
    return Outcome(Trace(request_id="req_test"), key, model_route, request, entry=None)


@st.composite
def answers_in_openais_order(draw) -> tuple[bytes, int]:
    """An answer whose vectors come first, and where its fields after them begin."""
    items = draw(st.lists(embeddings, min_size=1, max_size=40))
    data = b",".join(
        orjson.dumps({"object": "embedding", "index": i, "embedding": e})
        for i, e in enumerate(items)
    )
    fields = {
        "model": draw(st.one_of(st.just(...), st.none(), st.text(max_size=30))),
        "usage": draw(usages),
    }
    after = b"".join(
        b"," + orjson.dumps(name) + b":" + orjson.dumps(value)
        for name, value in fields.items()
        if value is not ...
    )
    body = b'{"object":"list","data":[' + data + b"]" + after + b"}"
    return body, len(after) + 2


@no_database
@given(
    answers_in_openais_order(),
    st.text(min_size=1, max_size=20),
    st.integers(0, 2000),
    st.integers(1, 50),
)
def test_finishing_the_tail_gives_the_answer_finishing_it_whole_gives(case, model, extra, tokens):
    body, after = case
    request = EmbeddingRequest(model=model, input="x", token_counts=[tokens])
    tail_size = min(after + extra, len(body) - len(b'{"object":"list","data":['))
    assert passthrough.streamable(body, wants_base64=False)

    whole, whole_event = outcome_for(request).finish(body, CHANNEL)
    tail, tail_event = outcome_for(request).finish(body[-tail_size:], CHANNEL)

    assert body[:-tail_size] + tail == whole
    assert orjson.loads(whole)["model"] == model
    assert tail_event.tokens == whole_event.tokens
    assert tail_event.token_source == whole_event.token_source
    assert tail_event.served_model == whole_event.served_model


# --- over HTTP --------------------------------------------------------------------


@pytest.fixture
def key(tenant, group) -> str:
    """A key whose group has no channel yet: each test sets up its own."""
    return ApiKey.issue(tenant=tenant, group=group, name="streaming", limit_concurrency=1)[1]


def direct(fake_upstream, body: dict) -> dict:
    return httpx.post(
        f"{fake_upstream.base_url()}/embeddings",
        json=body,
        timeout=30,
        headers={"Authorization": "Bearer sk-direct"},
    ).json()


def big_answer(relay, key, group, fake_upstream, options: str) -> tuple[httpx.Response, dict]:
    """BIG_BATCH through a channel with ``options``, and the upstream's own answer to it."""
    make_channel(group, fake_upstream.base_url(options))
    body = {"model": LARGE, "input": BIG_BATCH}
    response = embed(relay, key, body)
    assert response.status_code == 200, response.text
    return response, direct(fake_upstream, body)


@uses_live_relay
def test_a_big_answer_is_passed_on_chunked_and_billed_once(relay, key, group, fake_upstream):
    response, expected = big_answer(relay, key, group, fake_upstream, "")

    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.headers["x-request-id"].startswith("req_")
    assert len(response.content) > 1024 * 1024
    assert response.json() == expected  # same vectors, model and usage as the upstream's own
    [record] = wait_until(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.status == UsageRecord.Status.SERVED
    assert record.tokens == expected["usage"]["prompt_tokens"]
    assert record.cost_nanos > 0


@uses_live_relay
def test_a_streamed_answer_names_the_model_asked_for_and_carries_usage(
    relay, key, group, fake_upstream
):
    response, expected = big_answer(
        relay, key, group, fake_upstream, "name=upstream-own-name,usage=none"
    )

    assert response.headers["transfer-encoding"] == "chunked"
    answer = response.json()
    assert answer["model"] == LARGE
    assert answer["usage"] == expected["usage"]  # our own count, the fake's count too
    assert answer["data"] == expected["data"]
    [record] = wait_until(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.token_source == UsageRecord.TokenSource.COUNTED


@uses_live_relay
def test_an_answer_cut_off_midway_fails_the_request_and_costs_nothing(
    relay, tenant, key, group, fake_upstream
):
    # Past the first MiB, read before anything is sent: the client has its 200.
    make_channel(group, fake_upstream.base_url("cut=1500000"), name="cuts")

    with relay.stream(
        "POST",
        "/v1/embeddings",
        json={"model": LARGE, "input": BIG_BATCH},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()

    [record] = wait_until(lambda: records(request_id=request_id))
    assert record.status == UsageRecord.Status.FAILED
    assert record.cost_nanos == 0
    assert live_sync.live_balance(tenant.pk) == (STARTING_BALANCE_NANOS, 0)
    # Its one in-flight slot is free again (a short answer ends before the cut).
    assert embed(relay, key, {"model": SMALL, "input": "hi"}).status_code == 200


@uses_live_relay
def test_an_answer_that_breaks_off_before_anything_was_sent_fails_over(
    relay, key, group, fake_upstream
):
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url("cut=300000"), name="cuts", priority=0)
    make_channel(group, fake_upstream.base_url("ch=backup"), name="backup", priority=1)

    response = embed(relay, key, {"model": LARGE, "input": BIG_BATCH})

    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == len(BIG_BATCH)
    assert fake_upstream.stats("cut=300000")["requests"] == 1
    assert fake_upstream.stats("ch=backup")["requests"] == 1


@uses_live_relay
def test_an_answer_that_leads_with_model_and_usage_is_read_whole_and_renamed(
    relay, key, group, fake_upstream
):
    response, expected = big_answer(relay, key, group, fake_upstream, "lead,name=upstream-own-name")

    assert response.headers["content-length"] == str(len(response.content))
    answer = response.json()
    assert answer["model"] == LARGE
    assert answer["data"] == expected["data"]
    assert answer["usage"] == expected["usage"]


@uses_live_relay
def test_a_big_float_answer_for_a_base64_client_is_converted_whole(
    relay, key, group, fake_upstream
):
    make_channel(group, fake_upstream.base_url("floats"))
    body = {"model": LARGE, "input": BIG_BATCH}

    response = embed(relay, key, {**body, "encoding_format": "base64"})

    assert response.status_code == 200, response.text
    assert response.headers["content-length"] == str(len(response.content))
    expected = direct(fake_upstream, body)["data"]
    for item, floats in zip(response.json()["data"], expected, strict=True):
        raw = base64.b64decode(item["embedding"], validate=True)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats["embedding"]


@pytest.mark.django_db(transaction=True)
def test_off_the_asgi_route_a_big_answer_is_gathered_whole(key, group, fake_upstream):
    make_channel(group, fake_upstream.base_url())
    body = body_messages(orjson.dumps({"model": LARGE, "input": BIG_BATCH}))

    passed_on = call(application, authorization=f"Bearer {key}", messages=body)
    through_django = call(api, authorization=f"Bearer {key}", messages=body)

    assert passed_on.status == through_django.status == 200
    _start, *pieces = passed_on.messages
    assert "content-length" not in passed_on.headers
    assert len(pieces) > 2
    assert [p.get("more_body", False) for p in pieces] == [True] * (len(pieces) - 1) + [False]
    assert orjson.loads(passed_on.body) == orjson.loads(through_django.body)
