"""The operator API under /api/: staff tokens, tenant tokens, and its OpenAPI contract."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import URLPattern
from rest_framework.authtoken.models import Token

from accounts import keys as key_secrets
from accounts.models import ApiKey, AuditEvent
from billing import ledger
from billing.models import BasePrice, DailyUsage
from console.api.urls import api_patterns
from relay.models import Channel
from tests.console.api.helpers import client_with, token_for
from tests.helpers import SMALL, STARTING_BALANCE_NANOS

pytestmark = pytest.mark.django_db

CREDENTIAL = "sk-upstream-API-SECRET-credential-91b2"


def api_urls() -> list[str]:
    """Every API route with ids filled in (1: whether it exists does not matter here)."""
    urls = []
    for route in api_patterns:
        assert isinstance(route, URLPattern)
        path = str(route.pattern)
        for name in route.pattern.converters:
            path = path.replace(f"<int:{name}>", "1")
        urls.append(f"/api/{path}")
    return urls


# --- Who may call it ---------------------------------------------------------------


def test_the_token_command_prints_a_token_that_works_and_replaces_the_last(staff, tenant):
    first = token_for(staff)
    second = token_for(staff)
    assert first != second and Token.objects.get(user=staff).key == second
    assert client_with(first).get("/api/tenants/").status_code == 401
    response = client_with(second).get("/api/tenants/")
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert (row["slug"], row["balance_nanos"]) == ("acme", STARTING_BALANCE_NANOS)


def test_anonymous_callers_get_401_json_everywhere(tenant):
    client = client_with(None)
    for url in api_urls() + ["/api/schema/"]:
        for response in (client.get(url), client.post(url, {}, format="json")):
            assert response.status_code == 401, url
            assert response["Content-Type"] == "application/json", url
            assert response["WWW-Authenticate"] == "Token", url
            assert "detail" in response.json(), url


def test_a_tenant_owner_gets_403_json_on_every_operator_endpoint(owner, tenant):
    client = client_with(token_for(owner))
    staff_urls = [url for url in api_urls() if not url.startswith("/api/tenant/")]
    assert len(staff_urls) > 20
    for url in staff_urls + ["/api/schema/"]:
        for response in (client.get(url), client.post(url, {"status": "x"}, format="json")):
            assert response.status_code == 403, url
            assert response["Content-Type"] == "application/json", url
    assert not AuditEvent.objects.exists()


def test_a_session_signed_in_staff_user_may_use_it(client, staff, tenant):
    client.force_login(staff)
    assert client.get("/api/tenants/").status_code == 200


def test_unknown_api_paths_are_json_404s(api):
    for url in ("/api/nothing/", "/api/tenants/-1/", "/api/tenants/abc/keys/", "/api/x%0Ay/"):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json() == {"detail": "Not found."}


# --- Bad input is a 400 with reasons, never a 500 ------------------------------------


def test_bad_input_gets_400_json(api, tenant, group):
    cases = [
        ("/api/tenants/create/", "{not json", "json"),
        ("/api/tenants/create/", {"slug": "has space", "name": "x"}, "slug"),
        ("/api/tenants/create/", {"slug": "acme", "name": "Again"}, "slug"),
        ("/api/tenants/create/", {"slug": "new", "name": "N", "groups": ["nope"]}, "groups"),
        ("/api/tenants/create/", {"slug": "new", "name": "N", "limit_rpm": 0}, "limit_rpm"),
        (f"/api/tenants/{tenant.pk}/top-up/", {"amount_nanos": 0}, "amount_nanos"),
        (f"/api/tenants/{tenant.pk}/top-up/", {"amount_nanos": 2**63}, "amount_nanos"),
        (f"/api/tenants/{tenant.pk}/adjust/", {"amount_nanos": -5}, "reason"),
        (f"/api/tenants/{tenant.pk}/keys/issue/", {"group": group.name, "count": 1001}, "count"),
        (f"/api/tenants/{tenant.pk}/keys/issue/", {"group": "nope", "count": 1}, "group"),
        ("/api/groups/create/", {"name": "g2", "models": [{"model": "unpriced"}]}, "models"),
        ("/api/groups/create/", {"name": "g2", "price_ratio": "-1"}, "price_ratio"),
        # Past maxLength as sent, even if trimming would bring it under.
        ("/api/groups/create/", {"name": "g2", "description": "x" + " " * 300}, "description"),
        ("/api/channels/create/", {"name": "c", "base_url": "ftp://x.example"}, "base_url"),
        ("/api/channels/create/", {"name": "c", "base_url": "http://169.254.169.254/"}, "base_url"),
        (
            "/api/base-prices/set/",
            {"model": "m", "price_per_mtok_nanos": -1},
            "price_per_mtok_nanos",
        ),
        ("/api/base-prices/set/", {"model": 5, "price_per_mtok_nanos": "5"}, "model"),
        ("/api/channels/create/", {"name": "c\n", "base_url": "http://x.example"}, "name"),
        ("/api/tenants/?page=0", None, "page"),
        ("/api/tenants/?page_size=501", None, "page_size"),
        ("/api/audit/?tenant=", None, "tenant"),
        ("/api/reports/?start=2025-02-01&end=2025-01-01", None, "non_field_errors"),
        ("/api/reports/?start=yesterday", None, "start"),
        ("/api/audit/?action=DROP%20TABLE", None, "action"),
    ]
    for url, body, field in cases:
        if body is None:
            response = api.get(url)
        elif isinstance(body, str):
            response = api.post(url, body, content_type="application/json")
        else:
            response = api.post(url, body, format="json")
        assert response.status_code == 400, (url, body, response.content)
        assert response["Content-Type"] == "application/json"
        message = response.json()
        assert field in message or field == "json" and "detail" in message, (url, message)
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS
    assert not ApiKey.objects.exists()


# --- What it does --------------------------------------------------------------------


def test_staff_run_a_tenant_through_the_api(api, staff, group):
    created = api.post(
        "/api/tenants/create/",
        {"slug": "initech", "name": "Initech", "groups": ["default"], "limit_rpm": 60},
        format="json",
    )
    assert created.status_code == 201, created.content
    tenant_id = created.json()["id"]
    assert created.json()["groups"] == ["default"] and created.json()["balance_nanos"] == 0
    topped = api.post(
        f"/api/tenants/{tenant_id}/top-up/",
        {"amount_nanos": 5 * 10**9, "reason": "invoice 7"},
        format="json",
    )
    assert topped.status_code == 201
    assert topped.json()["balance_nanos"] == 5 * 10**9
    assert topped.json()["entry"]["created_by"] == "sam"
    overdraft = api.post(
        f"/api/tenants/{tenant_id}/adjust/",
        {"amount_nanos": -6 * 10**9, "reason": "oops"},
        format="json",
    )
    assert overdraft.status_code == 400 and "below zero" in overdraft.json()["amount"][0]
    adjusted = api.post(
        f"/api/tenants/{tenant_id}/adjust/",
        {"amount_nanos": -(10**9), "reason": "refund"},
        format="json",
    )
    assert adjusted.json()["balance_nanos"] == 4 * 10**9
    suspended = api.post(f"/api/tenants/{tenant_id}/suspend/")
    assert suspended.json()["status"] == "suspended"
    assert api.post(f"/api/tenants/{tenant_id}/reactivate/").json()["status"] == "active"
    updated = api.post(
        f"/api/tenants/{tenant_id}/update/", {"name": "Initech Inc", "groups": []}, format="json"
    )
    assert (updated.json()["name"], updated.json()["groups"]) == ("Initech Inc", [])
    entries = api.get(f"/api/tenants/{tenant_id}/ledger/").json()["results"]
    assert [(e["kind"], e["amount_nanos"]) for e in entries] == [
        ("adjustment", -(10**9)),
        ("topup", 5 * 10**9),
    ]
    assert ledger.ledger_sum_nanos(tenant_id) == ledger.balance_nanos(tenant_id) == 4 * 10**9
    actions = [e["action"] for e in api.get("/api/audit/", {"tenant": "initech"}).json()["results"]]
    assert actions == [
        "tenant.updated",
        "tenant.reactivated",
        "tenant.suspended",
        "balance.adjusted",
        "balance.topped_up",
        "tenant.created",
    ]


def test_groups_and_base_prices_through_the_api(api, group, channel):
    price = api.post(
        "/api/base-prices/set/",
        {"model": "bge-m3", "price_per_mtok_nanos": 10_000_000},
        format="json",
    )
    assert price.json()["price_per_mtok_nanos"] == 10_000_000
    created = api.post(
        "/api/groups/create/",
        {
            "name": "cheap",
            "price_ratio": "0.5",
            "channels": ["main"],
            "models": [{"model": "bge-m3"}, {"model": SMALL, "price_per_mtok_nanos": 15_000_000}],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["price_ratio"] == "0.5" and body["channels"] == ["main"]
    assert body["models"] == [
        {
            "model": "bge-m3",
            "price_per_mtok_nanos": None,
            "effective_price_per_mtok_nanos": 5_000_000,
        },
        {
            "model": SMALL,
            "price_per_mtok_nanos": 15_000_000,
            "effective_price_per_mtok_nanos": 15_000_000,
        },
    ]
    updated = api.post(
        f"/api/groups/{body['id']}/update/", {"price_ratio": "2"}, format="json"
    ).json()
    assert updated["models"][0]["effective_price_per_mtok_nanos"] == 20_000_000
    listed = api.get("/api/groups/").json()["results"]
    assert [g["name"] for g in listed] == ["cheap", "default"]
    # The cheap group prices bge-m3 from the base list: removing it is refused.
    refused = api.post(f"/api/base-prices/{price.json()['id']}/delete/")
    assert refused.status_code == 400 and "cheap" in refused.json()["non_field_errors"][0]
    ada = BasePrice.objects.create(model="unused-model", price_per_mtok_nanos=1)
    assert api.post(f"/api/base-prices/{ada.pk}/delete/").status_code == 204
    assert [e.action for e in AuditEvent.objects.order_by("pk")] == [
        "price.set",
        "group.created",
        "group.updated",
        "price.deleted",
    ]


def test_the_credential_never_appears_in_any_api_response(api, group, fake_upstream):
    created = api.post(
        "/api/channels/create/",
        {
            "name": "backup",
            "base_url": fake_upstream.base_url(),
            "credential": CREDENTIAL,
            "groups": ["default"],
            "models": [{"model": SMALL}],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    channel_id = created.json()["id"]
    assert Channel.objects.get(pk=channel_id).credential == CREDENTIAL
    assert created.json()["has_credential"] is True and "credential" not in created.json()
    responses = [
        created,
        api.post(f"/api/channels/{channel_id}/update/", {"priority": 3}, format="json"),
        api.post(f"/api/channels/{channel_id}/update/", {"credential": ""}, format="json"),
        api.post(f"/api/channels/{channel_id}/update/", {"enabled": False}, format="json"),
        api.post(f"/api/channels/{channel_id}/test/", {}, format="json"),
        api.post(
            "/api/channels/create/",
            {"name": "backup", "base_url": "http://x.example", "credential": CREDENTIAL},
            format="json",
        ),
    ]
    responses += [api.get(url) for url in api_urls() if "{" not in url]
    responses.append(api.get(f"/api/channels/{channel_id}/"))
    for response in responses:
        assert response.status_code < 500
        assert CREDENTIAL not in response.content.decode(), response.request["PATH_INFO"]
    assert Channel.objects.get(pk=channel_id).credential == CREDENTIAL
    assert [e.action for e in AuditEvent.objects.order_by("pk")] == [
        "channel.created",
        "channel.updated",
        "channel.updated",
        "channel.disabled",
    ]


def test_the_channel_test_reports_success_and_failure(api, group, channel, fake_upstream):
    ok = api.post(f"/api/channels/{channel.pk}/test/", {"model": SMALL}, format="json").json()
    assert ok["ok"] is True and ok["status"] == 200 and ok["dimensions"] == 1536
    assert ok["latency_ms"] >= 0 and ok["prompt_tokens"] == 10
    Channel.objects.filter(pk=channel.pk).update(base_url=fake_upstream.base_url("status=503"))
    failed = api.post(f"/api/channels/{channel.pk}/test/", {}, format="json").json()
    assert failed["ok"] is False and failed["status"] == 503
    assert failed["error"].startswith("Upstream status 503")


def test_bulk_issue_returns_the_secrets_once(api, tenant, group):
    response = api.post(
        f"/api/tenants/{tenant.pk}/keys/issue/",
        {"group": "default", "count": 3, "name_prefix": "svc"},
        format="json",
    )
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    issued = response.json()["keys"]
    assert [k["name"] for k in issued] == ["svc-0001", "svc-0002", "svc-0003"]
    digests = {key_secrets.digest(k["secret"]) for k in issued}
    assert digests == set(ApiKey.objects.filter(tenant=tenant).values_list("digest", flat=True))
    listed = api.get(f"/api/tenants/{tenant.pk}/keys/")
    audit = api.get("/api/audit/")
    for key in issued:
        assert key["secret"] not in listed.content.decode()
        assert key["secret"] not in audit.content.decode()
    assert {k["masked"] for k in listed.json()["results"]} == {
        ApiKey.objects.get(pk=k["id"]).masked for k in issued
    }
    revoked = api.post(f"/api/tenants/{tenant.pk}/keys/{issued[0]['id']}/revoke/")
    assert revoked.json()["status"] == "revoked"
    assert [e.action for e in AuditEvent.objects.order_by("pk")] == ["keys.issued", "key.revoked"]


def test_a_key_is_revoked_only_through_its_own_tenant(api, tenant, outsider_tenant, group):
    key, _ = ApiKey.issue(tenant=tenant, group=group, name="ci")
    response = api.post(f"/api/tenants/{outsider_tenant.pk}/keys/{key.pk}/revoke/")
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.status == "active"


def test_the_report_api_sums_the_rollups(api, tenant, group, channel):
    key, _ = ApiKey.issue(tenant=tenant, group=group, name="ci")
    for offset, cost in ((0, 100), (1, 250), (40, 999)):
        DailyUsage.objects.create(
            day=dt.date(2025, 1, 1) + dt.timedelta(days=offset),
            tenant=tenant,
            api_key=key,
            model=SMALL,
            channel_id=channel.pk,
            requests=4,
            failed=1,
            tokens=40,
            cost_nanos=cost,
        )
    body = api.get("/api/reports/", {"start": "2025-01-01", "end": "2025-01-31"}).json()
    assert body["total"]["cost_nanos"] == 350 and body["total"]["requests"] == 8
    assert body["total"]["error_rate"] == 0.25
    assert [row["label"] for row in body["by_channel"]] == ["main"]
    assert [row["key"] for row in body["by_day"]] == ["2025-01-01", "2025-01-02"]
    assert api.get("/api/reports/", {"tenant": "nobody"}).status_code == 404


# --- Tenant tokens see only their own tenant ------------------------------------------


def test_a_tenant_token_sees_only_its_own_keys_and_usage(
    tenant, owner, member, outsider, outsider_tenant, group
):
    mine, _ = ApiKey.issue(tenant=tenant, group=group, name="mine")
    theirs, _ = ApiKey.issue(tenant=outsider_tenant, group=group, name="theirs")
    today = dt.datetime.now(dt.UTC).date()
    DailyUsage.objects.create(
        day=today, tenant=tenant, api_key=mine, model=SMALL, requests=3, tokens=30, cost_nanos=600
    )
    DailyUsage.objects.create(
        day=today,
        tenant=outsider_tenant,
        api_key=theirs,
        model=SMALL,
        requests=5,
        tokens=50,
        cost_nanos=1000,
    )

    for user in (owner, member):
        client = client_with(token_for(user))
        keys = client.get("/api/tenant/keys/").json()["results"]
        assert [(k["name"], k["tenant"]) for k in keys] == [("mine", "acme")]
        usage = client.get("/api/tenant/usage/").json()
        assert (usage["tenant"], usage["total"]["cost_nanos"]) == ("acme", 600)

    outsider_client = client_with(token_for(outsider))
    keys = outsider_client.get("/api/tenant/keys/").json()["results"]
    assert [k["name"] for k in keys] == ["theirs"]
    assert outsider_client.get("/api/tenant/usage/").json()["total"]["cost_nanos"] == 1000
    for url in ("/api/tenant/keys/", "/api/tenant/usage/"):
        response = outsider_client.get(url, {"tenant": "acme"})
        assert response.status_code == 404
        assert "mine" not in response.content.decode()
    assert outsider_client.get("/api/tenants/").status_code == 403


def test_a_user_of_no_tenant_gets_404_from_tenant_endpoints(staff):
    client = client_with(token_for(staff))
    assert client.get("/api/tenant/keys/").status_code == 404
    assert client.get("/api/tenant/usage/").status_code == 404


def add_owner(api, tenant, username: str, password: str):
    response = api.post(
        f"/api/tenants/{tenant.pk}/members/add/",
        {"username": username, "role": "owner", "password": password},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response


def test_staff_add_a_tenants_first_owner_through_the_api(api, tenant):
    response = add_owner(api, tenant, "hana", "another-long-pass")
    assert response.json()["username"] == "hana" and response.json()["role"] == "owner"
    assert "another-long-pass" not in response.content.decode()
    assert tenant.memberships.get(user__username="hana").role == "owner"


def test_a_password_set_through_the_api_is_kept_exactly_as_sent(api, tenant):
    add_owner(api, tenant, "ines", "  spaced long pass  ")
    user = tenant.memberships.get(user__username="ines").user
    assert user.check_password("  spaced long pass  ")
