"""The pipelined connection the request path's scripts run on
(relay/connections/lua_client.py), against the test run's real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from django.conf import settings
from redis import exceptions as redis_errors

from billing import redis_url
from relay.connections.lua_client import LuaClient, Script

ECHO = Script("return {tonumber(ARGV[1]), KEYS[1]}")
SET = Script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
FAILS = Script("return redis.error_reply('ERR the script says no')")


def client(url: str | None = None, reply_timeout_s: float = 2.0) -> LuaClient:
    return LuaClient(
        url or settings.REDIS_URL, connect_timeout_s=1.0, reply_timeout_s=reply_timeout_s
    )


def with_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


def test_many_calls_in_flight_each_get_their_own_reply():
    async def scenario():
        lua = client()
        replies = await asyncio.gather(*(lua.run(ECHO, [f"k{i}"], [i]) for i in range(500)))
        await lua.aclose()
        return replies

    replies = asyncio.run(scenario())

    assert replies == [[i, f"k{i}".encode()] for i in range(500)]


def test_a_script_redis_forgot_is_sent_again_in_full():
    async def scenario():
        lua = client()
        first = await lua.run(ECHO, ["a"], [1])
        redis_url.client(settings.REDIS_URL).script_flush()
        second = await lua.run(ECHO, ["b"], [2])
        await lua.aclose()
        return first, second

    assert asyncio.run(scenario()) == ([1, b"a"], [2, b"b"])


def test_an_error_reply_raises_and_the_connection_carries_on():
    async def scenario():
        lua = client()
        with pytest.raises(redis_errors.ResponseError, match="the script says no"):
            await lua.run(FAILS, [], [])
        answer = await lua.run(ECHO, ["c"], [3])
        await lua.aclose()
        return answer

    assert asyncio.run(scenario()) == [3, b"c"]


@pytest.mark.standalone_only  # databases exist on one server only
def test_the_database_in_the_url_is_selected():
    url = with_db(settings.REDIS_URL, 3)

    async def scenario():
        lua = client(url)
        await lua.run(SET, ["lua-client-db"], ["three"])
        await lua.aclose()

    asyncio.run(scenario())

    assert redis.Redis.from_url(url).get("lua-client-db") == b"three"
    assert redis.Redis.from_url(with_db(settings.REDIS_URL, 0)).get("lua-client-db") is None


def test_nothing_listening_is_a_connection_error():
    async def scenario():
        return await client("redis://127.0.0.1:1/0").run(ECHO, ["d"], [4])

    with pytest.raises(redis_errors.ConnectionError):
        asyncio.run(scenario())


@pytest.mark.standalone_only  # databases exist on one server only
def test_a_killed_connection_fails_the_calls_on_it_and_the_next_call_reconnects():
    admin = redis_url.client(settings.REDIS_URL)
    url = with_db(settings.REDIS_URL, 5)  # to tell its connection from the others

    async def scenario():
        lua = client(url)
        await lua.run(ECHO, ["e"], [5])
        killed = sum(
            admin.client_kill_filter(_id=c["id"]) for c in admin.client_list() if c["db"] == "5"
        )
        after = []
        for attempt in range(2):
            try:
                after.append(await lua.run(ECHO, ["f"], [6 + attempt]))
            except redis_errors.ConnectionError as error:
                after.append(type(error).__name__)
        await lua.aclose()
        return killed, after

    killed, after = asyncio.run(scenario())

    assert killed == 1
    # The first call after the kill may be written before the close is seen:
    # it fails; the call after it reconnects and is answered.
    assert after[-1] == [7, b"f"]
    assert after[0] in ("ConnectionError", [6, b"f"])


def test_a_redis_that_never_answers_times_out_and_the_next_call_reconnects():
    async def scenario():
        accepted = []

        async def silent(reader, writer):  # reads, never answers
            accepted.append(writer)
            await reader.read(-1)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        lua = client(f"redis://127.0.0.1:{port}/0", reply_timeout_s=0.2)
        outcomes = []
        for _ in range(2):
            try:
                await lua.run(ECHO, ["g"], [7])
            except redis_errors.TimeoutError as error:
                outcomes.append(type(error).__name__)
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
        return outcomes, len(accepted)

    outcomes, connections = asyncio.run(scenario())

    assert outcomes == ["TimeoutError", "TimeoutError"]
    assert connections == 2  # the timed-out connection was dropped, not reused


def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others():
    async def scenario():
        lua = client()
        await lua.run(ECHO, ["h"], [0])  # connected
        gone = asyncio.ensure_future(lua.run(ECHO, ["gone"], [1]))
        await asyncio.sleep(0)
        gone.cancel()
        stayed = await lua.run(ECHO, ["stayed"], [2])
        await lua.aclose()
        return gone.cancelled(), stayed

    assert asyncio.run(scenario()) == (True, [2, b"stayed"])


def test_the_reply_of_a_call_whose_caller_left_goes_to_if_abandoned():
    async def scenario():
        lua = client()
        await lua.run(ECHO, ["i"], [0])  # connected: the next call is written at once
        abandoned = []
        gone = asyncio.ensure_future(lua.send(ECHO, ["left"], [1], if_abandoned=abandoned.append))
        await asyncio.sleep(0)
        gone.cancel()
        answered = await lua.send(ECHO, ["kept"], [2], if_abandoned=abandoned.append)
        await lua.aclose()
        return gone.cancelled(), answered, abandoned

    assert asyncio.run(scenario()) == (True, [2, b"kept"], [[1, b"left"]])


def test_a_call_sent_on_an_open_connection_is_written_before_send_returns():
    async def scenario():
        lua = client()
        # One hash tag: in a cluster both go to the node already connected.
        # SET runs once first so Redis knows the script (a NOSCRIPT would be
        # answered only once the loop runs again).
        await lua.run(SET, ["{lua}j"], ["warm"])
        sent = lua.send(SET, ["{lua}lua-client-written"], ["now"])
        # The loop does not run meanwhile: only a command already written
        # can have reached Redis.
        other = redis_url.client(settings.REDIS_URL)
        for _ in range(100):
            if other.get("{lua}lua-client-written") == b"now":
                break
            time.sleep(0.01)
        found = other.get("{lua}lua-client-written")
        await sent
        await lua.aclose()
        return found

    assert asyncio.run(scenario()) == b"now"
