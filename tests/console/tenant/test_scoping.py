"""The tenant console's scoping: the outsider gets 404 on every route that takes
another tenant's id, a member gets 404 on owner-only pages, every route asks a
visitor to sign in, posts need a CSRF token, and the tenant switcher only
switches to the user's own tenants.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, AuditEvent, Membership, Tenant
from console.tenant import urls as tenant_urls
from tests.console.tenant.helpers import signed_in

pytestmark = pytest.mark.django_db

OWNER_ONLY = {
    "key_revoke",
    "members",
    "member_role",
    "member_remove",
    "audit",
    "redeem",
    "notifications",
}


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
    assert {p.name for p in routes} >= {
        "key_detail",
        "key_rename",
        "key_revoke",
        "member_role",
        "member_remove",
    }
    signed_in(client, outsider)
    for pattern in routes:
        # A KeyError here: a new kind of id, add it to ``ids`` above.
        url = reverse(
            f"console:{pattern.name}",
            kwargs={name: ids[name] for name in pattern.pattern.converters},
        )
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
        url = reverse(
            f"console:{pattern.name}",
            kwargs={name: ids[name] for name in pattern.pattern.converters},
        )
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
    for name, kwargs in [
        ("dashboard", {}),
        ("keys", {}),
        ("key_issue", {}),
        ("usage", {}),
        ("usage_csv", {}),
        ("key_detail", {"key_id": acme_key.pk}),
        ("key_rename", {"key_id": acme_key.pk}),
    ]:
        assert client.get(reverse(f"console:{name}", kwargs=kwargs)).status_code == 200, name


def test_every_route_asks_a_visitor_to_sign_in(client, acme_key):
    for pattern in tenant_urls.urlpatterns:
        url = reverse(
            f"console:{pattern.name}", kwargs=dict.fromkeys(pattern.pattern.converters, 1)
        )
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(
            settings.LOGIN_URL
        ), url


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
    assert (
        client.get(reverse("console:dashboard"), {"tenant": "initech"}).context["tenant"] == initech
    )
    keys_page = client.get(reverse("console:keys"))
    assert keys_page.context["tenant"] == initech
    assert acme_key.masked not in keys_page.content.decode()
    assert (
        client.get(reverse("console:key_detail", kwargs={"key_id": acme_key.pk})).status_code == 404
    )
    assert client.get(reverse("console:dashboard"), {"tenant": "globex"}).status_code == 404
    assert (
        client.get(reverse("console:dashboard"), {"tenant": "acme"}).context["tenant"].slug
        == "acme"
    )
