"""The per-process budget for upstream answers (relay/pipeline/answer_budget.py)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from accounts.models import ApiKey
from relay.asgi import application
from relay.connections import pools
from relay.contract.validation import EmbeddingRequest
from relay.pipeline import answer_budget
from relay.pipeline.answer_budget import Budget
from tests.helpers import SMALL, body_messages, make_channel, scope

MB = 1024 * 1024


def run(coroutine):
    return asyncio.run(coroutine)


async def granted(budget: Budget, amount: int, order: list[int]) -> int:
    taken = await budget.take(amount)
    order.append(amount)
    return taken


def test_requests_that_fit_go_at_once_and_the_rest_wait_in_arrival_order():
    async def scenario():
        budget, order = Budget(10), []
        assert await budget.take(6) == 6
        big = asyncio.create_task(granted(budget, 8, order))
        small = asyncio.create_task(granted(budget, 1, order))
        await asyncio.sleep(0)
        # 4 bytes are free: enough for the small one, but the big one came first.
        assert order == [] and budget.free == 4
        budget.give(6)
        await asyncio.gather(big, small)
        assert order == [8, 1] and budget.free == 1

    run(scenario())


def test_a_request_larger_than_the_whole_budget_still_goes_through_alone():
    async def scenario():
        budget = Budget(10)
        assert await budget.take(50) == 10
        assert budget.free == 0
        budget.give(10)
        assert budget.free == 10

    run(scenario())


def test_a_waiter_that_gives_up_leaves_the_queue_and_lets_the_next_one_in():
    async def scenario():
        budget, order = Budget(10), []
        await budget.take(10)
        first = asyncio.create_task(granted(budget, 9, order))
        second = asyncio.create_task(granted(budget, 2, order))
        await asyncio.sleep(0)
        budget.give(3)  # not enough for the first, which holds up the second
        await asyncio.sleep(0)
        assert order == []
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await second
        assert order == [2] and budget.free == 1

    run(scenario())


def test_a_waiter_cancelled_after_its_grant_gives_the_bytes_back():
    async def scenario():
        budget = Budget(10)
        await budget.take(10)
        waiter = asyncio.create_task(budget.take(4))
        await asyncio.sleep(0)
        budget.give(10)  # granted: 6 left free...
        waiter.cancel()  # ...but cancelled before it ran
        await asyncio.gather(waiter, return_exceptions=True)
        assert budget.free == 10

    run(scenario())


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({"model": SMALL, "input": "hi"}, 512 + 1536 * 20),
        (
            {"model": SMALL, "input": ["a", "b"], "encoding_format": "base64"},
            512 + int(2 * 1536 * 5.4),
        ),
        ({"model": "text-embedding-3-large", "input": ["a"] * 3}, 512 + 3 * 3072 * 20),
        ({"model": "text-embedding-3-large", "input": "a", "dimensions": 256}, 512 + 256 * 20),
        ({"model": "bge-m3", "input": ["a"] * 4}, 512 + 4 * 1536 * 20),
    ],
    ids=["one-float", "two-base64", "large-native", "large-256", "unknown-model"],
)
def test_a_requests_share_is_the_size_of_its_vectors(request_fields, expected):
    assert answer_budget.share(EmbeddingRequest(**request_fields)) == expected


def test_a_streamed_answer_counts_only_what_it_holds_at_once(settings):
    settings.RELAY_STREAM_FROM_BYTES = MB
    huge = EmbeddingRequest(model="text-embedding-3-large", input=["a"] * 2048)
    assert answer_budget.share(huge) == MB + answer_budget.ONE_READ_BYTES


@pytest.mark.django_db(transaction=True)
def test_a_full_budget_holds_requests_back_before_the_upstream(
    settings, tenant, group, fake_upstream
):
    settings.RELAY_ANSWER_BUDGET_BYTES = MB
    options = "latency=300,name=budget"
    fake_upstream.reset()
    make_channel(group, fake_upstream.base_url(options))
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="budget")
    # 16 float vectors: a share of ~492 KB, so two fit in 1 MiB at a time.
    body = orjson.dumps({"model": SMALL, "input": [f"text {n}" for n in range(16)]})

    async def six_at_once() -> list[dict]:
        answers: list[list[dict]] = [[] for _ in range(6)]

        async def one(sent: list[dict]) -> None:
            pending = body_messages(body)

            async def receive():
                return pending.pop(0) if pending else {"type": "http.disconnect"}

            async def send(message):
                sent.append(message)

            await application(scope("POST", "/v1/embeddings", f"Bearer {secret}"), receive, send)

        try:
            await asyncio.gather(*(one(sent) for sent in answers))
        finally:
            await pools.http().close()
        return [sent[0] for sent in answers]

    with ThreadPoolExecutor(1) as loop_thread:  # as a server runs it (test_embeddings_route)
        starts = loop_thread.submit(asyncio.run, six_at_once()).result()

    assert [start["status"] for start in starts] == [200] * 6
    stats = fake_upstream.stats(options)
    assert stats["requests"] == 6
    assert stats["peak_in_flight"] == 2
