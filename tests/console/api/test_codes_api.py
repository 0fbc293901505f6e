"""Redemption codes through the operator API: staff make, list and void
batches; a tenant's owner redeems with their own token; a member, an outsider
and a stranger cannot."""

from __future__ import annotations

import pytest

from billing import ledger
from billing.models import LedgerEntry, RedemptionCode
from tests.console.api.helpers import client_with, token_for
from tests.helpers import STARTING_BALANCE_NANOS

pytestmark = pytest.mark.django_db

VALUE = 3 * 10**9


def make(api, **fields) -> dict:
    body = {"count": 2, "value_nanos": VALUE, **fields}
    response = api.post("/api/codes/create/", body, format="json")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    return response.json()


def test_staff_make_a_batch_and_get_its_codes_once(api, tenant):
    made = make(api, tenant="acme", name="promo", expires="2099-01-01T00:00:00Z")
    assert len(made["codes"]) == 2
    batch = made["batch"]
    assert (batch["tenant"], batch["name"], batch["value_nanos"]) == ("acme", "promo", VALUE)
    assert (batch["unused"], batch["redeemed"], batch["voided"]) == (2, 0, 0)
    listed = api.get("/api/codes/").content.decode()
    codes = api.get(f"/api/codes/{batch['id']}/codes/").content.decode()
    for code in made["codes"]:
        assert code not in listed and code not in codes and code[-4:] in codes


def test_a_tenant_owner_redeems_with_their_token(api, tenant, owner):
    made = make(api)
    owner_api = client_with(token_for(owner))
    response = owner_api.post("/api/tenant/redeem/", {"code": made["codes"][0]}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["value_nanos"] == VALUE and body["hint"] == made["codes"][0][-4:]
    assert body["balance_nanos"] == STARTING_BALANCE_NANOS + VALUE
    assert (body["entry"]["kind"], body["entry"]["created_by"]) == ("redemption", "olivia")

    again = owner_api.post("/api/tenant/redeem/", {"code": made["codes"][0]}, format="json")
    assert again.status_code == 400
    assert again.json() == {"code": ["This code has been redeemed already."]}
    rows = api.get(f"/api/codes/{made['batch']['id']}/codes/").json()["results"]
    redeemed = [row for row in rows if row["status"] == "redeemed"]
    assert [(r["redeemed_tenant"], r["redeemed_by"]) for r in redeemed] == [("acme", "olivia")]
    assert redeemed[0]["redeemed"] is not None


def test_members_outsiders_and_strangers_cannot_redeem(api, tenant, member, outsider):
    made = make(api, count=1)
    [code] = made["codes"]
    member_api = client_with(token_for(member))
    refused = member_api.post("/api/tenant/redeem/", {"code": code}, format="json")
    assert refused.status_code == 403
    outsider_api = client_with(token_for(outsider))
    other = outsider_api.post(
        "/api/tenant/redeem/", {"code": code, "tenant": "acme"}, format="json"
    )
    assert other.status_code == 404
    assert (
        client_with(None).post("/api/tenant/redeem/", {"code": code}, format="json").status_code
        == 401
    )
    assert RedemptionCode.objects.get().status == "unused"
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS


def test_guessing_through_the_api_is_throttled_with_429(api, tenant, owner, settings):
    settings.REDEMPTION_ATTEMPTS_PER_USER = 2
    owner_api = client_with(token_for(owner))
    wrong = {"code": "ABCDE-FGHJK-MNPQR-STVWX"}
    statuses = [
        owner_api.post("/api/tenant/redeem/", wrong, format="json").status_code for _ in range(3)
    ]
    assert statuses == [400, 400, 429]
    [code] = make(api, count=1)["codes"]
    stopped = owner_api.post("/api/tenant/redeem/", {"code": code}, format="json")
    assert stopped.status_code == 429
    assert stopped.json()["detail"].startswith("Too many codes that did not work.")
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDEMPTION).exists()


def test_staff_void_a_code_and_a_batch(api, tenant, owner):
    made = make(api, count=3)
    batch_id = made["batch"]["id"]
    owner_api = client_with(token_for(owner))
    owner_api.post("/api/tenant/redeem/", {"code": made["codes"][0]}, format="json")
    rows = api.get(f"/api/codes/{batch_id}/codes/").json()["results"]
    unused = [row["id"] for row in rows if row["status"] == "unused"]
    redeemed = [row["id"] for row in rows if row["status"] == "redeemed"]
    assert api.post(f"/api/codes/{batch_id}/codes/{unused[0]}/void/").json() == {"voided": 1}
    assert api.post(f"/api/codes/{batch_id}/codes/{redeemed[0]}/void/").json() == {"voided": 0}
    assert api.post(f"/api/codes/{batch_id}/void/").json() == {"voided": 1}
    batch = api.get("/api/codes/").json()["results"][0]
    assert (batch["unused"], batch["redeemed"], batch["voided"]) == (0, 1, 2)
    voided = owner_api.post("/api/tenant/redeem/", {"code": made["codes"][1]}, format="json")
    assert voided.json() == {"code": ["This code was voided by the provider and credits nothing."]}


def test_bad_batches_are_400s(api, tenant):
    for body, field in [
        ({"count": 0, "value_nanos": 1}, "count"),
        ({"count": 1001, "value_nanos": 1}, "count"),
        ({"count": 1, "value_nanos": 0}, "value_nanos"),
        ({"count": 1, "value_nanos": 1, "tenant": "nobody"}, "tenant"),
        ({"count": 1, "value_nanos": 1, "expires": "2001-01-01T00:00:00Z"}, "expires"),
        ({"count": "1", "value_nanos": 1}, "count"),
    ]:
        response = api.post("/api/codes/create/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), (body, response.json())
    assert not RedemptionCode.objects.exists()
