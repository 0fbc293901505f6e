"""billing.pricing: integer nano-unit money, one rounding rule."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import apply_ratio, cost_nanos, effective_price, from_nanos, to_nanos

SMALL_PRICE_NANOS = 20_000_000  # text-embedding-3-small, $0.02 per million tokens


def test_a_million_tokens_cost_exactly_the_price():
    assert cost_nanos(1_000_000, SMALL_PRICE_NANOS) == SMALL_PRICE_NANOS


def test_exact_multiples_are_not_rounded():
    assert cost_nanos(3_000_000, 130_000_000) == 390_000_000
    assert cost_nanos(50, SMALL_PRICE_NANOS) == 1_000


def test_one_token_of_a_cheap_model_still_costs_something():
    # 20,000,000 nanos per million tokens is 20 nanos a token.
    assert cost_nanos(1, SMALL_PRICE_NANOS) == 20


def test_zero_tokens_cost_nothing():
    assert cost_nanos(0, SMALL_PRICE_NANOS) == 0


def test_a_half_nano_rounds_up():
    assert cost_nanos(1, 500_000) == 1  # 0.5 nano
    assert cost_nanos(5, 500_000) == 3  # 2.5 nanos: half up, not half to even
    assert cost_nanos(3, 500_000) == 2  # 1.5 nanos


def test_less_than_half_a_nano_rounds_down():
    assert cost_nanos(1, 499_999) == 0
    assert cost_nanos(7, 214_285) == 1  # 1.499995 nanos


def test_more_than_half_a_nano_rounds_up():
    assert cost_nanos(1, 500_001) == 1
    assert cost_nanos(1, 1_499_999) == 1
    assert cost_nanos(1, 1_500_000) == 2


def test_negative_tokens_or_prices_are_refused():
    with pytest.raises(ValueError):
        cost_nanos(-1, SMALL_PRICE_NANOS)
    with pytest.raises(ValueError):
        cost_nanos(1, -1)


def test_a_ratio_scales_the_base_price():
    assert apply_ratio(SMALL_PRICE_NANOS, Decimal("1.5")) == 30_000_000
    assert apply_ratio(SMALL_PRICE_NANOS, Decimal("1")) == SMALL_PRICE_NANOS
    assert apply_ratio(SMALL_PRICE_NANOS, Decimal("0")) == 0


def test_a_ratio_rounds_half_up_to_a_whole_nano():
    assert apply_ratio(5, Decimal("0.5")) == 3  # 2.5
    assert apply_ratio(3, Decimal("0.5")) == 2  # 1.5
    assert apply_ratio(1, Decimal("0.4")) == 0  # 0.4
    assert apply_ratio(1, Decimal("0.6")) == 1  # 0.6


def test_apply_ratio_returns_an_int():
    assert type(apply_ratio(SMALL_PRICE_NANOS, Decimal("1.25"))) is int


def test_currency_amounts_convert_to_nanos():
    assert to_nanos("0.02") == 20_000_000
    assert to_nanos(Decimal("0.13")) == 130_000_000
    assert to_nanos(1) == 1_000_000_000
    assert to_nanos("0.000000001") == 1
    assert to_nanos("12.345678901") == 12_345_678_901


def test_sub_nano_amounts_are_refused():
    with pytest.raises(ValueError):
        to_nanos("0.0000000001")
    with pytest.raises(ValueError):
        to_nanos("1.0000000005")


def test_nanos_convert_back_to_the_same_amount():
    assert from_nanos(to_nanos("0.02")) == Decimal("0.02")
    assert from_nanos(12_345_678_901) == Decimal("12.345678901")


@given(
    tokens=st.integers(min_value=0, max_value=10**7),
    price=st.integers(min_value=0, max_value=10**12),
)
def test_a_cost_is_never_more_than_half_a_nano_off(tokens, price):
    cost = cost_nanos(tokens, price)
    assert isinstance(cost, int)
    assert abs(cost * 10**6 - tokens * price) <= 5 * 10**5


@given(
    tokens=st.integers(min_value=0, max_value=10**7),
    more=st.integers(min_value=0, max_value=10**7),
    price=st.integers(min_value=0, max_value=10**12),
)
def test_more_tokens_never_cost_less(tokens, more, price):
    assert cost_nanos(tokens, price) <= cost_nanos(tokens + more, price)


# --- the one price rule: own price, else base price x ratio, else not served ----------------


def test_a_groups_own_price_wins_over_the_base_price_and_ratio():
    assert effective_price(16_000_000, SMALL_PRICE_NANOS, Decimal("2")) == 16_000_000


def test_an_own_price_of_zero_is_a_price_not_an_absence():
    assert effective_price(0, SMALL_PRICE_NANOS, Decimal("1")) == 0


def test_without_an_own_price_the_base_price_times_the_ratio_rounded_half_up():
    assert effective_price(None, SMALL_PRICE_NANOS, Decimal("1.5")) == 30_000_000
    assert effective_price(None, 3, Decimal("0.5")) == 2


def test_with_neither_the_model_is_not_served():
    assert effective_price(None, None, Decimal("1")) is None
