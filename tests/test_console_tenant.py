"""The tenant console: scoping (the outsider and the member get 404s), keys
issued and revoked, usage pages and their CSV, the dashboard's numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from accounts import keys
from accounts.models import ApiKey, AuditEvent, Group, GroupModel, Membership, Tenant
from billing.models import DailyUsage, UsageRecord
from billing.pricing import cost_nanos, from_nanos
from console import charts
from console.formatting import money
from console.tenant import csv_export
from console.tenant import urls as tenant_urls
from tests.conftest import SMALL, SMALL_PRICE_NANOS, embed

pytestmark = pytest.mark.django_db

LARGE = "text-embedding-3-large"
ADA = "text-embedding-ada-002"
OWNER_ONLY = {"key_revoke", "members", "member_role", "member_remove", "audit"}


@pytest.fixture
def open_group(tenant, group) -> Group:
    """The conftest group, opened to the tenant."""
    tenant.groups.add(group)
    return group


@pytest.fixture
def acme_key(tenant, open_group) -> ApiKey:
    return ApiKey.issue(tenant=tenant, group=open_group, name="acme-prod")[0]


@pytest.fixture
def globex_key(outsider_tenant, group) -> ApiKey:
    outsider_tenant.groups.add(group)
    return ApiKey.issue(tenant=outsider_tenant, group=group, name="globex-prod")[0]


def signed_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def issue_form(in_group: Group, **fields) -> dict:
    return {"name": "prod", "group": in_group.pk, "nonce": "", **fields}


def record(key: ApiKey, *, created: dt.datetime, model: str = SMALL, status: str = "served",
           tokens: int = 10, n: int = 0) -> UsageRecord:
    served = status == UsageRecord.Status.SERVED
    return UsageRecord(
        request_id=f"req-{key.pk}-{n}",
        tenant=key.tenant, api_key=key, group=key.group, model=model, served_model=model,
        input_count=1, counted_tokens=tokens, tokens=tokens,
        token_source=UsageRecord.TokenSource.PROMPT_TOKENS,
        price_per_mtok_nanos=SMALL_PRICE_NANOS,
        cost_nanos=cost_nanos(tokens, SMALL_PRICE_NANOS) if served else 0,
        latency_ms=20 + n % 7, status=status, end_user=f"user-{n % 3}", created=created,
    )


def object_routes():
    return [p for p in tenant_urls.urlpatterns if p.pattern.converters]


# --- scoping -------------------------------------------------------------------


def test_the_outsider_gets_404_on_every_route_that_takes_another_tenants_id(
    client, outsider, owner, member, acme_key
):
    ids = {
        "key_id": acme_key.pk,
        "member_id": Membership.objects.get(user=member).pk,
    }
    routes = object_routes()
    assert {p.name for p in routes} >= {"key_detail", "key_rename", "key_revoke",
                                         "member_role", "member_remove"}
    signed_in(client, outsider)
    for pattern in routes:
        # A KeyError here: a new kind of id, add it to ``ids`` above.
        url = reverse(f"console:{pattern.name}",
                      kwargs={name: ids[name] for name in pattern.pattern.converters})
        assert client.get(url).status_code == 404, url
        payload = {"name": "pwned", "role": "owner", "username": "oscar"}
        assert client.post(url, payload).status_code == 404, url
    for name in ("usage", "usage_csv"):
        assert client.get(reverse(f"console:{name}"), {"key": acme_key.pk}).status_code == 404

    acme_key.refresh_from_db()
    assert (acme_key.name, acme_key.status) == ("acme-prod", ApiKey.Status.ACTIVE)
    assert Membership.objects.get(user=member).role == Membership.Role.MEMBER
    assert not AuditEvent.objects.exists()


def test_a_member_gets_404_on_owner_only_pages_and_actions(client, owner, member, acme_key):
    ids = {"key_id": acme_key.pk, "member_id": Membership.objects.get(user=owner).pk}
    owner_only = [p for p in tenant_urls.urlpatterns if p.callback.view_class.owner_only]
    assert {p.name for p in owner_only} == OWNER_ONLY
    signed_in(client, member)
    for pattern in owner_only:
        url = reverse(f"console:{pattern.name}",
                      kwargs={name: ids[name] for name in pattern.pattern.converters})
        assert client.get(url).status_code == 404, url
        assert client.post(url, {"role": "member", "username": "max"}).status_code == 404, url
    acme_key.refresh_from_db()
    assert acme_key.status == ApiKey.Status.ACTIVE
    assert Membership.objects.get(user=owner).role == Membership.Role.OWNER
    # ... and the navigation does not offer them.
    page = client.get(reverse("console:key_detail", kwargs={"key_id": acme_key.pk}))
    assert reverse("console:members") not in page.content.decode()
    assert reverse("console:key_revoke", kwargs={"key_id": acme_key.pk}) not in (
        page.content.decode()
    )


def test_a_member_sees_usage_and_may_issue_and_rename_keys(client, member, acme_key):
    signed_in(client, member)
    for name, kwargs in [("dashboard", {}), ("keys", {}), ("key_issue", {}), ("usage", {}),
                         ("usage_csv", {}), ("key_detail", {"key_id": acme_key.pk}),
                         ("key_rename", {"key_id": acme_key.pk})]:
        assert client.get(reverse(f"console:{name}", kwargs=kwargs)).status_code == 200, name


def test_every_route_asks_a_visitor_to_sign_in(client, acme_key):
    for pattern in tenant_urls.urlpatterns:
        url = reverse(f"console:{pattern.name}",
                      kwargs=dict.fromkeys(pattern.pattern.converters, 1))
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(
            settings.LOGIN_URL), url


def test_posts_without_a_csrf_token_are_refused(owner, acme_key):
    client = signed_in(Client(enforce_csrf_checks=True), owner)
    url = reverse("console:key_revoke", kwargs={"key_id": acme_key.pk})
    assert client.post(url).status_code == 403
    acme_key.refresh_from_db()
    assert acme_key.status == ApiKey.Status.ACTIVE


def test_the_tenant_switcher_changes_tenant_and_only_to_the_users_own(
    client, owner, acme_key, globex_key
):
    initech = Tenant.objects.create(slug="initech", name="Initech")
    Membership.objects.create(tenant=initech, user=owner, role=Membership.Role.MEMBER)
    signed_in(client, owner)
    page = client.get(reverse("console:dashboard")).content.decode()
    assert 'name="tenant"' in page and "Initech" in page
    assert client.get(reverse("console:dashboard"), {"tenant": "initech"}).context[
        "tenant"] == initech
    keys_page = client.get(reverse("console:keys"))
    assert keys_page.context["tenant"] == initech
    assert acme_key.masked not in keys_page.content.decode()
    assert client.get(reverse("console:key_detail", kwargs={"key_id": acme_key.pk})
                      ).status_code == 404
    assert client.get(reverse("console:dashboard"), {"tenant": "globex"}).status_code == 404
    assert client.get(reverse("console:dashboard"), {"tenant": "acme"}).context["tenant"].slug \
        == "acme"


# --- keys ----------------------------------------------------------------------


def test_issuing_a_key_shows_its_secret_exactly_once(client, owner, tenant, open_group):
    signed_in(client, owner)
    form = client.get(reverse("console:key_issue"))
    nonce = form.context["form"]["nonce"].value()
    response = client.post(reverse("console:key_issue"),
                           issue_form(open_group, nonce=nonce, spend_cap="12.5"))
    assert response.status_code == 200
    secret = response.context["secret"]
    assert keys.has_generated_shape(secret) and keys.checksum_ok(secret)
    assert response.content.decode().count(secret) == 1
    assert "no-store" in response["Cache-Control"]

    key = ApiKey.objects.get(tenant=tenant, name="prod")
    assert key.digest == keys.digest(secret)
    assert ApiKey.objects.active().filter(pk=key.pk, group=open_group).exists()
    assert key.spend_cap_nanos == 12_500_000_000
    event = AuditEvent.objects.get(action="key.issued")
    assert (event.actor, event.tenant, event.target) == (owner, tenant, f"prod ({key.masked})")

    for url in (reverse("console:keys"), reverse("console:key_detail", kwargs={"key_id": key.pk}),
                reverse("console:audit")):
        page = client.get(url).content.decode()
        assert key.masked in page and secret not in page
    assert secret not in client.get(reverse("console:dashboard")).content.decode()
    assert secret not in repr(dict(client.session.items()))
    assert secret not in repr(event.detail)

    # Reloading the page re-sends the form: no second key, and no secret again.
    again = client.post(reverse("console:key_issue"), issue_form(open_group, nonce=nonce))
    assert again.status_code == 302
    assert ApiKey.objects.filter(tenant=tenant).count() == 1
    assert secret not in client.get(again["Location"]).content.decode()


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_key_issued_in_the_console_embeds_through_the_relay(
    client, owner, tenant, open_group, channel, relay
):
    signed_in(client, owner)
    response = client.post(reverse("console:key_issue"), issue_form(open_group))
    secret = response.context["secret"]
    served = embed(relay, secret, {"model": SMALL, "input": "hello world"})
    assert served.status_code == 200, served.text


def test_a_key_may_only_narrow_its_group(client, owner, tenant, open_group):
    closed = Group.objects.create(name="premium")
    GroupModel.objects.create(group=closed, model=SMALL)
    open_group.limit_rpm, open_group.limit_tpm = 600, 100_000
    open_group.save()
    signed_in(client, owner)
    url = reverse("console:key_issue")

    refused = {
        "group": issue_form(open_group, group=closed.pk),
        "limit_rpm": issue_form(open_group, limit_rpm=601),
        "limit_tpm": issue_form(open_group, limit_tpm=100_001),
        "allowed_models": issue_form(open_group, allowed_models=["text-embedding-9"]),
        "spend_cap": issue_form(open_group, spend_cap="0.0000000001"),
        "expires": issue_form(open_group, expires="2000-01-01T00:00"),
    }
    for field, data in refused.items():
        response = client.post(url, data)
        assert response.status_code == 200
        assert field in response.context["form"].errors, field
        assert "secret" not in response.context
    GroupModel.objects.filter(group=open_group, model=ADA).delete()
    response = client.post(url, issue_form(open_group, allowed_models=[ADA]))
    assert "allowed_models" in response.context["form"].errors
    assert not ApiKey.objects.exists()

    response = client.post(url, issue_form(open_group, limit_rpm=600, limit_concurrency=4,
                                           allowed_models=[SMALL], expires="2999-01-01T12:30"))
    assert "secret" in response.context
    key = ApiKey.objects.get()
    assert (key.limit_rpm, key.limit_tpm, key.limit_concurrency) == (600, None, 4)
    assert key.allowed_models == [SMALL]
    assert key.expires == dt.datetime(2999, 1, 1, 12, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-an-ip", "10.0.0.5/24", "300.1.1.1"])
def test_an_ip_allow_list_entry_that_is_not_a_cidr_range_is_refused(
    client, owner, open_group, bad
):
    signed_in(client, owner)
    response = client.post(reverse("console:key_issue"),
                           issue_form(open_group, allowed_ips=f"203.0.113.0/24\n{bad}"))
    assert bad in str(response.context["form"].errors["allowed_ips"])
    assert not ApiKey.objects.exists()


def test_an_ip_allow_list_is_stored_as_ranges(client, owner, open_group):
    signed_in(client, owner)
    client.post(reverse("console:key_issue"), issue_form(
        open_group, allowed_ips="203.0.113.0/24\n2001:db8::/32, 198.51.100.7"))
    assert ApiKey.objects.get().allowed_ips == ["203.0.113.0/24", "2001:db8::/32",
                                                "198.51.100.7/32"]


def test_revoking_a_key_is_audited_and_the_key_is_revoked(client, owner, tenant, acme_key):
    signed_in(client, owner)
    url = reverse("console:key_revoke", kwargs={"key_id": acme_key.pk})
    assert "Revoke the key" in client.get(url).content.decode()
    response = client.post(url)
    assert response.status_code == 302
    acme_key.refresh_from_db()
    assert acme_key.status == ApiKey.Status.REVOKED and acme_key.revoked is not None
    [event] = AuditEvent.objects.filter(action="key.revoked")
    assert (event.actor, event.tenant, event.target) == (
        owner, tenant, f"acme-prod ({acme_key.masked})")
    client.post(url)  # twice: still one event
    assert AuditEvent.objects.filter(action="key.revoked").count() == 1
    listing = client.get(reverse("console:keys")).content.decode()
    assert 'class="badge revoked"' in listing


def test_renaming_a_key_is_audited(client, member, tenant, acme_key):
    signed_in(client, member)
    url = reverse("console:key_rename", kwargs={"key_id": acme_key.pk})
    assert client.post(url, {"name": "  billing-service "}).status_code == 302
    acme_key.refresh_from_db()
    assert acme_key.name == "billing-service"
    event = AuditEvent.objects.get(action="key.renamed")
    assert event.target == f"billing-service ({acme_key.masked})"
    assert event.detail == {"old_name": "acme-prod"}


# --- members -------------------------------------------------------------------


def test_owners_add_change_and_remove_members(client, owner, member, tenant,
                                              django_user_model):
    django_user_model.objects.create_user("nina", password="pw-nina-123")
    signed_in(client, owner)
    url = reverse("console:members")
    response = client.post(url, {"username": "nobody", "role": "member"})
    assert "username" in response.context["form"].errors
    response = client.post(url, {"username": "max", "role": "member"})
    assert "already a member" in str(response.context["form"].errors)
    assert client.post(url, {"username": "nina", "role": "member"}).status_code == 302
    nina = Membership.objects.get(tenant=tenant, user__username="nina")

    client.post(reverse("console:member_role", kwargs={"member_id": nina.pk}), {"role": "owner"})
    nina.refresh_from_db()
    assert nina.role == Membership.Role.OWNER
    client.post(reverse("console:member_remove", kwargs={"member_id": nina.pk}))
    assert not Membership.objects.filter(pk=nina.pk).exists()
    assert list(AuditEvent.objects.filter(tenant=tenant).order_by("pk").values_list(
        "action", flat=True)) == ["member.added", "member.role_changed", "member.removed"]


def test_the_last_owner_can_be_neither_demoted_nor_removed(client, owner, member, tenant):
    signed_in(client, owner)
    mine = Membership.objects.get(user=owner)
    client.post(reverse("console:member_role", kwargs={"member_id": mine.pk}), {"role": "member"})
    client.post(reverse("console:member_remove", kwargs={"member_id": mine.pk}))
    mine.refresh_from_db()
    assert mine.role == Membership.Role.OWNER
    page = client.get(reverse("console:members")).content.decode()
    assert "last owner" in page
    assert not AuditEvent.objects.exists()


# --- usage ---------------------------------------------------------------------


@pytest.fixture
def usage(tenant, open_group, acme_key, globex_key) -> dict:
    """~300 records over 40 days: two keys, three models, both statuses; and
    some of another tenant's."""
    other = ApiKey.issue(tenant=tenant, group=open_group, name="acme-batch")[0]
    # Noon yesterday (UTC), not now: each record's date then does not depend
    # on the time of day the suite runs (a run just after midnight pushed the
    # minutes below into the day before and left one page, not two).
    midnight = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
    now = midnight - dt.timedelta(hours=12)
    rows = []
    combos = itertools.product(range(40), [acme_key, other], [SMALL, LARGE, ADA])
    for n, (days_ago, key, model) in enumerate(combos):
        if n % 5 == 4:
            continue
        status = "failed" if n % 7 == 0 else "served"
        created = now - dt.timedelta(days=days_ago, minutes=n)
        rows.append(record(key, created=created, model=model, status=status, tokens=n + 1, n=n))
    rows += [record(globex_key, created=now - dt.timedelta(days=d), n=d) for d in range(40)]
    UsageRecord.objects.bulk_create(rows)
    return {"records": rows, "keys": (acme_key, other)}


def pages(client: Client, params: dict) -> list[str]:
    request_ids, page = [], 1
    while True:
        response = client.get(reverse("console:usage"), {**params, "page": page})
        request_ids += [r.request_id for r in response.context["page_obj"]]
        if not response.context["page_obj"].has_next():
            return request_ids
        page += 1


def csv_rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_usage_totals_are_those_of_every_filtered_record(client, owner, usage):
    acme_key, _other = usage["keys"]
    since, until = today() - dt.timedelta(days=25), today() - dt.timedelta(days=1)
    params = {"key": acme_key.pk, "model": "", "status": "served",
              "since": since.isoformat(), "until": until.isoformat()}
    expected = sorted(
        (r for r in usage["records"]
         if r.api_key == acme_key and r.status == "served"
         and since <= r.created.astimezone(dt.UTC).date() <= until),
        key=lambda r: r.created, reverse=True,
    )
    assert len(expected) > 50  # more than one page
    signed_in(client, owner)
    response = client.get(reverse("console:usage"), params)
    assert response.context["totals"] == {
        "count": len(expected),
        "tokens": sum(r.tokens for r in expected),
        "cost_nanos": sum(r.cost_nanos for r in expected),
    }
    html = response.content.decode()
    assert money(sum(r.cost_nanos for r in expected)) in html
    assert len(response.context["page_obj"].object_list) == 50
    assert pages(client, params) == [r.request_id for r in expected]


def test_the_csv_holds_exactly_the_filtered_rows_of_every_page(client, owner, usage):
    signed_in(client, owner)
    params = {"model": LARGE, "status": "", "key": "",
              "since": (today() - dt.timedelta(days=35)).isoformat(), "until": ""}
    on_pages = pages(client, params)
    assert len(on_pages) > 50
    page = client.get(reverse("console:usage"), params)
    assert page.context["filters"] in page.content.decode().replace("&amp;", "&")

    rows = csv_rows(client.get(reverse("console:usage_csv"), params))
    assert [row["request_id"] for row in rows] == on_pages
    assert list(rows[0]) == list(csv_export.COLUMNS)
    by_id = {r.request_id: r for r in usage["records"]}
    for row in rows:
        r = by_id[row["request_id"]]
        assert row["key"] == r.api_key.masked and "..." in row["key"]
        assert int(row["cost_nanos"]) == r.cost_nanos
        assert Decimal(row["cost"]) == from_nanos(r.cost_nanos)
        assert dt.datetime.fromisoformat(row["created"]) == r.created
    assert all(row["model"] == LARGE for row in rows)


def test_without_filters_the_usage_page_shows_the_last_30_days(client, owner, usage):
    signed_in(client, owner)
    since = today() - dt.timedelta(days=29)
    expected = {r.request_id for r in usage["records"]
                if r.tenant.slug == "acme" and r.created.astimezone(dt.UTC).date() >= since}
    response = client.get(reverse("console:usage"))
    assert response.context["totals"]["count"] == len(expected)
    rows = csv_rows(client.get(reverse("console:usage_csv")))
    assert {row["request_id"] for row in rows} == expected


def test_the_csv_streams_asynchronously_under_asgi(owner, usage):
    client = AsyncClient()
    client.force_login(owner)
    params = {"key": "", "model": SMALL, "status": "failed", "since": "", "until": ""}
    expected = {r.request_id for r in usage["records"]
                if r.tenant.slug == "acme" and r.model == SMALL and r.status == "failed"}

    async def fetch():
        response = await client.get(reverse("console:usage_csv"), params)
        body = b"".join([chunk async for chunk in response.streaming_content])
        return response, body

    response, body = async_to_sync(fetch)()
    assert isinstance(response, StreamingHttpResponse) and response.is_async
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert {row["request_id"] for row in rows} == expected and expected


def test_a_formula_in_end_user_is_defused_in_the_csv(client, owner, acme_key):
    hostile = record(acme_key, created=timezone.now())
    hostile.end_user = '=HYPERLINK("http://evil.example","x")'
    hostile.save()
    signed_in(client, owner)
    [row] = csv_rows(client.get(reverse("console:usage_csv")))
    assert row["end_user"] == "'" + hostile.end_user


# --- dashboard -----------------------------------------------------------------


def test_the_dashboard_adds_up_the_rollups(client, owner, tenant, usage, globex_key):
    acme_key, other = usage["keys"]
    day = today()
    month_start = day.replace(day=1)
    rows = [
        DailyUsage(day=day, tenant=tenant, api_key=acme_key, model=SMALL, requests=10,
                   failed=1, tokens=1_000, cost_nanos=20_000),
        DailyUsage(day=day, tenant=tenant, api_key=other, model=LARGE, requests=3,
                   tokens=3_000, cost_nanos=390_000),
        DailyUsage(day=month_start, tenant=tenant, api_key=acme_key, model=LARGE, channel_id=7,
                   requests=5, tokens=5_000_000, cost_nanos=650_000_000),
        DailyUsage(day=day - dt.timedelta(days=12), tenant=tenant, api_key=other, model=ADA,
                   requests=2, tokens=200, cost_nanos=20_000),
        DailyUsage(day=day - dt.timedelta(days=45), tenant=tenant, api_key=acme_key,
                   model=SMALL, requests=99, tokens=99, cost_nanos=99_999_999),
        DailyUsage(day=day, tenant=globex_key.tenant, api_key=globex_key, model=SMALL,
                   requests=50, tokens=50, cost_nanos=77_777),
    ]
    DailyUsage.objects.bulk_create(rows)
    mine = [r for r in rows if r.tenant == tenant]
    window = [r for r in mine if r.day >= day - dt.timedelta(days=29)]

    signed_in(client, owner)
    response = client.get(reverse("console:dashboard"))
    context = response.context
    assert context["balance_nanos"] == 100 * 10**9
    assert context["spend_today"]["cost_nanos"] == sum(r.cost_nanos for r in mine if r.day == day)
    assert context["spend_today"]["requests"] == sum(r.requests for r in mine if r.day == day)
    assert context["spend_month"]["cost_nanos"] == sum(
        r.cost_nanos for r in mine if month_start <= r.day <= day)
    report = context["report"]
    assert report.total["cost_nanos"] == sum(r.cost_nanos for r in window)
    assert report.total["tokens"] == sum(r.tokens for r in window)
    assert {m.model: m.cost_nanos for m in report.by_model} == {
        model: sum(r.cost_nanos for r in window if r.model == model)
        for model in {r.model for r in window}
    }
    assert [(row["key"], row["cost_nanos"]) for row in context["top_keys"]] == sorted(
        [(k, sum(r.cost_nanos for r in window if r.api_key == k)) for k in (acme_key, other)],
        key=lambda pair: -pair[1],
    )
    html = response.content.decode()
    assert f'id="balance">{money(100 * 10**9)}<' in html
    assert f'id="spend-today">{money(context["spend_today"]["cost_nanos"])}<' in html
    assert html.count('<svg class="chart"') == 2
    assert "77,777" not in html and "0.000077777" not in html  # the other tenant's


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
    assert charts.stacked_bars(labels=["a"], series=[charts.Series("m", [0])],
                               colors={}, title="t") == ""
