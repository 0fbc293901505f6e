"""The tenant console's keys (console/tenant/keys.py): a secret shown exactly once
and served by the relay, a group only narrowed, IP allow-lists as ranges,
revoking and renaming audited.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from accounts import keys
from accounts.models import ApiKey, AuditEvent, Group, GroupModel
from tests.console.tenant.helpers import signed_in
from tests.helpers import ADA, SMALL, embed

pytestmark = pytest.mark.django_db


def issue_form(in_group: Group, **fields) -> dict:
    return {"name": "prod", "group": in_group.pk, "nonce": "", **fields}


# --- keys ----------------------------------------------------------------------


def test_issuing_a_key_shows_its_secret_exactly_once(client, owner, tenant, open_group):
    signed_in(client, owner)
    form = client.get(reverse("console:key_issue"))
    nonce = form.context["form"]["nonce"].value()
    response = client.post(
        reverse("console:key_issue"), issue_form(open_group, nonce=nonce, spend_cap="12.5")
    )
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

    for url in (
        reverse("console:keys"),
        reverse("console:key_detail", kwargs={"key_id": key.pk}),
        reverse("console:audit"),
    ):
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

    response = client.post(
        url,
        issue_form(
            open_group,
            limit_rpm=600,
            limit_concurrency=4,
            allowed_models=[SMALL],
            expires="2999-01-01T12:30",
        ),
    )
    assert "secret" in response.context
    key = ApiKey.objects.get()
    assert (key.limit_rpm, key.limit_tpm, key.limit_concurrency) == (600, None, 4)
    assert key.allowed_models == [SMALL]
    assert key.expires == dt.datetime(2999, 1, 1, 12, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-an-ip", "10.0.0.5/24", "300.1.1.1"])
def test_an_ip_allow_list_entry_that_is_not_a_cidr_range_is_refused(client, owner, open_group, bad):
    signed_in(client, owner)
    response = client.post(
        reverse("console:key_issue"), issue_form(open_group, allowed_ips=f"203.0.113.0/24\n{bad}")
    )
    assert bad in str(response.context["form"].errors["allowed_ips"])
    assert not ApiKey.objects.exists()


def test_an_ip_allow_list_is_stored_as_ranges(client, owner, open_group):
    signed_in(client, owner)
    client.post(
        reverse("console:key_issue"),
        issue_form(open_group, allowed_ips="203.0.113.0/24\n2001:db8::/32, 198.51.100.7"),
    )
    assert ApiKey.objects.get().allowed_ips == [
        "203.0.113.0/24",
        "2001:db8::/32",
        "198.51.100.7/32",
    ]


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
        owner,
        tenant,
        f"acme-prod ({acme_key.masked})",
    )
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
