"""The operator console's groups and base prices: models priced per group,
repriced and removed, base prices edited. Every change audited.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Group
from billing.models import BasePrice
from console import formatting
from tests.console.operator.helpers import events
from tests.helpers import LARGE, SMALL

pytestmark = pytest.mark.django_db


def group_post(name: str, rows: list[tuple[str, str]], **fields) -> dict:
    """A group form submission with its model rows (model, price in units)."""
    data = {
        "name": name,
        "description": "",
        "price_ratio": "1",
        "limit_rpm": "",
        "limit_tpm": "",
        "limit_concurrency": "",
        "models-TOTAL_FORMS": str(len(rows)),
        "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
    }
    for index, (model, price) in enumerate(rows):
        data[f"models-{index}-model"] = model
        data[f"models-{index}-price"] = price
    data.update(fields)
    return data


# --- Groups and prices ---------------------------------------------------------


def test_staff_creates_a_group_with_prices(staff_client, group):
    response = staff_client.post(
        reverse("operator:group_create"),
        group_post("premium", [(SMALL, "0.05"), (LARGE, "")], price_ratio="1.5"),
    )
    premium = Group.objects.get(name="premium")
    assert response.status_code == 302
    prices = dict(premium.models.values_list("model", "price_per_mtok_nanos"))
    assert prices == {SMALL: 50_000_000, LARGE: None}
    [event] = events("group.created")
    assert event.detail["models"] == {SMALL: 50_000_000, LARGE: None}
    page = staff_client.get(reverse("operator:group", args=[premium.pk])).content.decode()
    # The large model costs its base price (0.13) times the ratio (1.5).
    assert formatting.money(195_000_000) in page and formatting.money(50_000_000) in page


def test_a_model_without_any_price_is_refused(staff_client, group):
    response = staff_client.post(
        reverse("operator:group_create"), group_post("odd", [("custom-embedder", "")])
    )
    assert response.status_code == 200
    assert "custom-embedder: no price" in response.content.decode()
    assert not Group.objects.filter(name="odd").exists()


def test_editing_a_group_reprices_removes_models_and_picks_channels(staff_client, group, channel):
    data = group_post("default", [(SMALL, "0.03")], price_ratio="2")
    data["channels"] = [channel.pk]
    response = staff_client.post(reverse("operator:group", args=[group.pk]), data)
    assert response.status_code == 302
    group.refresh_from_db()
    assert str(group.price_ratio) == "2.000000"
    assert list(group.models.values_list("model", "price_per_mtok_nanos")) == [(SMALL, 30_000_000)]
    assert list(group.channels.all()) == [channel]
    [event] = events("group.updated")
    # A model removed ("models") and a kept one repriced ("prices"), told apart.
    assert set(event.detail["changed"]) == {"price_ratio", "models", "prices"}


def test_base_prices_are_edited_and_audited(staff_client, group):
    staff_client.post(reverse("operator:prices"), {"model": "bge-m3", "price": "0.01"})
    staff_client.post(reverse("operator:prices"), {"model": SMALL, "price": "0.025"})
    assert BasePrice.objects.get(model="bge-m3").price_per_mtok_nanos == 10_000_000
    assert BasePrice.objects.get(model=SMALL).price_per_mtok_nanos == 25_000_000
    assert [e.target for e in events("price.set")] == ["bge-m3", SMALL]
    # The default group prices SMALL from the base list: removing it is refused.
    small = BasePrice.objects.get(model=SMALL)
    response = staff_client.post(reverse("operator:price_delete", args=[small.pk]), follow=True)
    assert "price text-embedding-3-small from this base price" in response.content.decode()
    assert BasePrice.objects.filter(model=SMALL).exists()
