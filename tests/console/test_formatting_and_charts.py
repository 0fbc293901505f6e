"""Pieces both consoles show: money in currency units (console/formatting.py) and
charts (console/charts.py).
"""

from __future__ import annotations

import pytest
from django.conf import settings

from console import charts
from console.formatting import money

pytestmark = pytest.mark.django_db


# --- pieces --------------------------------------------------------------------


def test_money_is_shown_exactly_in_currency_units():
    code = settings.CURRENCY
    assert money(100 * 10**9) == f"100.00 {code}"
    assert money(1) == f"0.000000001 {code}"
    assert money(1_234_567_000_000) == f"1,234.567 {code}"
    assert money(40, currency=False) == "0.00000004"


def test_charts_scale_in_integers_and_escape_names():
    assert [charts.nice_ceiling(v) for v in (1, 3, 7, 11, 180_000)] == [1, 5, 10, 20, 200_000]
    svg = charts.stacked_bars(
        labels=["05-01", "05-02"],
        series=[charts.Series("<script>", [3, 4])],
        colors=charts.colors_for(["<script>"]),
        title="t",
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert (
        charts.stacked_bars(labels=["a"], series=[charts.Series("m", [0])], colors={}, title="t")
        == ""
    )
