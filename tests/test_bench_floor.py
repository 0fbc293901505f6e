"""The floor under the benchmark's fully cached row (bench/floor.py), on the
test run's own cache Redis: it reads its entries where they lie, leaves
nothing behind, and its figures reach the row's verdict."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from bench import batches, floor


@pytest.fixture
def cache_url() -> str:
    if not settings.CACHE_REDIS_URL.startswith("redis://127.0.0.1"):
        pytest.fail(f"the tests' cache Redis is not on loopback: {settings.CACHE_REDIS_URL}")
    return settings.CACHE_REDIS_URL


def test_the_floor_measures_both_steps_and_leaves_no_entries(cache_url):
    row = floor.measure(cache_url, batches.texts("floor", 64), dimensions=16, requests=3)

    assert row["kernel_cpu_ms_per_request"] > 0
    assert row["bare_cpu_ms_per_request"] > 0
    # The relay's answer for 64 rows of 16 float32 in base64 (88 characters each).
    assert row["answer_bytes"] > 64 * 88
    assert redis.Redis.from_url(cache_url).dbsize() == 0


def test_the_floor_signs_in_as_its_url_says(cache_url):
    # A user of its own on the tests' cache Redis, and a database other than 0.
    admin = redis.Redis.from_url(cache_url)
    admin.acl_setuser(
        "floor", enabled=True, passwords=["+floor-secret"], keys=["*"], commands=["+@all"]
    )
    try:
        signed_in = cache_url.replace("redis://", "redis://floor:floor-secret@").rsplit("/", 1)[0]
        row = floor.measure(f"{signed_in}/2", batches.texts("floor", 8), dimensions=4, requests=1)
        assert row["bare_cpu_ms_per_request"] > 0
    finally:
        admin.acl_deluser("floor")
        redis.Redis.from_url(cache_url, db=2).flushdb()


def test_a_floor_that_reads_its_entries_elsewhere_fails(cache_url, monkeypatch):
    # Entries with a byte after the vector: each row the floor reads ends a
    # byte late, and it must say so rather than measure an answer of garbage.
    encode = floor.cache.encode
    monkeypatch.setattr(floor.cache, "encode", lambda tokens, row: encode(tokens, row) + b"!")

    with pytest.raises(RuntimeError, match="not read where they lie"):
        floor.measure(cache_url, batches.texts("floor", 8), dimensions=4, requests=1)


def test_the_cached_rows_verdict_names_its_floor():
    cached = {
        "target": "relay",
        "body": "batch2048-cached",
        "cpu_ms_per_request": 18.0,
        "errors": 0,
    }
    floor_row = {
        "target": "floor",
        "body": floor.BODY,
        "kernel_cpu_ms_per_request": 4.5,
        "bare_cpu_ms_per_request": 10.5,
    }

    [verdict] = batches.verdicts([cached, floor_row])

    assert verdict["verdict"] == "MISS"
    assert "18.0 ms" in verdict["measured"]
    assert "4.5 ms of socket reads and writes alone" in verdict["measured"]
    assert "10.5 ms with the relay's keys and answer; the relay at 1.7x" in verdict["measured"]
    assert floor.describe(floor_row).startswith("floor    batch2048-cached")
