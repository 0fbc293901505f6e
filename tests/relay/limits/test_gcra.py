"""The rate-limit arithmetic (relay/limits/gcra.py) on a controlled clock: RPM,
TPM and requests in flight, what a refusal names and how long it says to wait.
"""

from __future__ import annotations

import pytest

from relay.limits.gcra import PERIOD_US, Limits, LocalLimiter, format_duration

# --- the arithmetic, on a controlled clock ----------------------------------------


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0s"),
        (1, "1ms"),
        (20_000, "20ms"),
        (999_000, "999ms"),
        (999_001, "1s"),
        (1_000_000, "1s"),
        (8_640_000, "8.64s"),
        (20_000_000, "20s"),
        (60_000_000, "1m0s"),
        (90_000_000, "1m30s"),
        (360_000_000, "6m0s"),
        (3_723_500_000, "1h2m3.5s"),
    ],
)
def test_durations_read_like_openais(us, text):
    assert format_duration(us) == text


def test_a_burst_of_the_limit_passes_then_one_request_per_interval():
    limiter, keys = LocalLimiter(), ("k", "t", "ks", "ts")
    rpm3 = Limits(3, None, None, None, None, None)
    t0 = 1_000_000_000
    answers = [limiter.admit(keys, rpm3, 1, t0) for _ in range(4)]
    assert [a.refused for a in answers] == [0, 0, 0, 1]
    assert [a.rpm_remaining for a in answers] == [2, 1, 0, 0]
    # Reset is when the bucket is empty again: 20 s per request used.
    assert [a.rpm_reset_us for a in answers] == [20e6, 40e6, 60e6, 60e6]
    assert (answers[3].used, answers[3].retry_us) == (3, 20_000_000)
    # One microsecond early is still too early; on time passes.
    assert limiter.admit(keys, rpm3, 1, t0 + 20_000_000 - 1).retry_us == 1
    on_time = limiter.admit(keys, rpm3, 1, t0 + 20_000_000)
    assert (on_time.refused, on_time.rpm_remaining, on_time.rpm_reset_us) == (0, 0, 60e6)
    # After a quiet minute the whole burst is back.
    later = limiter.admit(keys, rpm3, 1, t0 + 80_000_000)
    assert (later.refused, later.rpm_remaining, later.rpm_reset_us) == (0, 2, 20e6)


def test_tokens_are_charged_by_size_and_an_oversized_request_can_never_pass():
    limiter, keys = LocalLimiter(), ("k", "t", "ks", "ts")
    tpm = Limits(None, 1000, None, None, None, None)
    t0 = 5_000_000
    first = limiter.admit(keys, tpm, 990, t0)
    assert (first.refused, first.tpm_remaining, first.tpm_reset_us) == (0, 10, 59_400_000)
    refused = limiter.admit(keys, tpm, 50, t0)
    # 40 tokens over; 1000 per minute drain one every 60 ms.
    assert (refused.refused, refused.used, refused.retry_us) == (2, 990, 2_400_000)
    assert limiter.admit(keys, tpm, 10, t0).refused == 0  # what is left still fits
    assert limiter.admit(keys, tpm, 1001, t0 + 10 * PERIOD_US).retry_us == -1


def test_every_limit_must_pass_and_a_refusal_records_nothing():
    limiter, keys = LocalLimiter(), ("k", "t", "ks", "ts")
    both = Limits(10, 100, 2, None, 1, None)
    t0 = 0
    assert limiter.admit(keys, both, 60, t0).refused == 0
    # The key's in-flight limit (position 5) is full; nothing else is taken.
    busy = limiter.admit(keys, both, 10, t0)
    assert (busy.refused, busy.used) == (5, 1)
    assert busy.rpm_remaining == 9 and busy.tpm_remaining == 40
    limiter.release(("ks",))
    over = limiter.admit(keys, both, 50, t0)  # 110 of 100 tokens
    assert (over.refused, over.retry_us) == (2, 6_000_000)
    assert limiter.admit(keys, both, 40, t0).refused == 0  # the tenant's 2 RPM are used now
    # When several refuse, the one with the longest wait is named, so a
    # client that waits that long can pass: the tenant's RPM (30 s) here...
    assert limiter.admit(keys, both, 1, t0).refused == 3
    # ...and a request that can never fit the TPM beats any wait.
    assert limiter.admit(keys, both, 101, t0).refused == 2


def test_a_fallback_share_never_rounds_a_limit_down_to_nothing():
    assert Limits(10, 1, 0, None, 3, 1).share(2) == Limits(5, 1, 0, None, 1, 1)
