"""The tenant console's members (console/tenant/members.py): owners add, change
and remove them, and the last owner stays.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Membership
from tests.console.tenant.helpers import signed_in

pytestmark = pytest.mark.django_db


# --- members -------------------------------------------------------------------


def test_owners_add_change_and_remove_members(client, owner, member, tenant, django_user_model):
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
    assert list(
        AuditEvent.objects.filter(tenant=tenant).order_by("pk").values_list("action", flat=True)
    ) == ["member.added", "member.role_changed", "member.removed"]


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
