"""Who may see the operator console: every page opens for staff; a tenant's owner
gets 403 and a signed-out visitor is sent to sign in, on every URL. An operator
gives a tenant its first owner.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Membership, Tenant
from console.operator.urls import urlpatterns as operator_routes
from tests.console.operator.helpers import operator_urls

pytestmark = pytest.mark.django_db


# --- Who may see any of it -------------------------------------------------------------

POST_ONLY = ("/status/", "/toggle/", "/revoke/", "/delete/", "/void/", "/pin/", "/test-all/")


def test_every_operator_page_opens_for_staff(staff_client, tenant, channel):
    for url in operator_urls(staff_client):
        response = staff_client.get(url)
        if url.endswith(POST_ONLY):
            assert response.status_code == 405, url
        elif response.status_code == 302:
            # A form's address sends a GET on to its page (members/ to the
            # tenant's): staff must land on that page, never on the sign-in one.
            location = response["Location"]
            assert not location.startswith(reverse("login")), (url, location)
            assert location.startswith("/operator/"), (url, location)
            assert staff_client.get(location).status_code == 200, (url, location)
        else:
            assert response.status_code == 200, url


def test_a_tenant_owner_gets_403_on_every_operator_url(client, owner, channel):
    client.force_login(owner)
    urls = operator_urls(client)
    assert len(urls) == len(operator_routes) > 15
    for url in urls:
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"status": "suspended", "enabled": "0"}).status_code == 403, url
    assert not AuditEvent.objects.exists()
    assert Tenant.objects.get(slug="acme").status == "active"


def test_signed_out_visitors_are_sent_to_sign_in(client, tenant, channel):
    for url in operator_urls(client):
        for response in (client.get(url), client.post(url)):
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login")), url


def test_an_operator_gives_a_tenant_its_first_owner_who_can_then_sign_in(
    staff_client, tenant, client
):
    url = reverse("operator:tenant_members", args=[tenant.pk])
    response = staff_client.post(
        url, {"username": "fiona", "role": "owner", "password": "a-long-password-1"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(tenant=tenant, user__username="fiona")
    assert membership.role == Membership.Role.OWNER
    assert AuditEvent.objects.filter(action="member.added", target="fiona").exists()
    page = staff_client.get(reverse("operator:tenant", args=[tenant.pk])).content.decode()
    assert "fiona" in page and "a-long-password-1" not in page
    assert client.login(username="fiona", password="a-long-password-1")
    assert client.get("/console/").status_code == 200


def test_a_new_members_password_is_kept_as_typed_spaces_and_all(staff_client, tenant, client):
    url = reverse("operator:tenant_members", args=[tenant.pk])
    staff_client.post(url, {"username": "gail", "role": "owner", "password": " padded-password "})
    assert client.login(username="gail", password=" padded-password ")


def test_a_new_member_without_a_proper_password_is_refused(staff_client, tenant):
    url = reverse("operator:tenant_members", args=[tenant.pk])
    staff_client.post(url, {"username": "gus", "role": "member", "password": "short"})
    assert not Membership.objects.filter(tenant=tenant, user__username="gus").exists()
