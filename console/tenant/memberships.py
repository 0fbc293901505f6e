"""Changing who belongs to a tenant, without ever leaving it without an owner."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from accounts.models import AuditEvent, Membership, Tenant


class LastOwner(Exception):
    """The change would leave the tenant without an owner."""


class AlreadyMember(Exception):
    pass


def _lock_tenant(tenant_id: int) -> None:
    # Serialises membership changes of one tenant: two owners demoting (or
    # removing) each other at once would otherwise both see the other still
    # an owner, and leave the tenant with none.
    Tenant.objects.select_for_update().filter(pk=tenant_id).first()


def _is_last_owner(membership: Membership) -> bool:
    owners = Membership.objects.filter(tenant_id=membership.tenant_id, role=Membership.Role.OWNER)
    return (
        membership.role == Membership.Role.OWNER and not owners.exclude(pk=membership.pk).exists()
    )


def add_member(*, tenant: Tenant, user: AbstractBaseUser, role: str, actor) -> Membership:
    try:
        with transaction.atomic():
            membership = Membership.objects.create(tenant=tenant, user=user, role=role)
            AuditEvent.log(
                actor=actor,
                tenant=tenant,
                action="member.added",
                target=user.get_username(),
                role=role,
            )
    except IntegrityError as exc:  # added by someone else meanwhile
        raise AlreadyMember(user.get_username()) from exc
    return membership


def change_role(*, membership: Membership, role: str, actor) -> Membership:
    with transaction.atomic():
        _lock_tenant(membership.tenant_id)
        membership = Membership.objects.select_related("user").get(pk=membership.pk)
        if membership.role == role:
            return membership
        if role != Membership.Role.OWNER and _is_last_owner(membership):
            raise LastOwner()
        old_role, membership.role = membership.role, role
        membership.save(update_fields=["role"])
        AuditEvent.log(
            actor=actor,
            tenant=membership.tenant,
            action="member.role_changed",
            target=membership.user.get_username(),
            old_role=old_role,
            role=role,
        )
    return membership


def remove_member(*, membership: Membership, actor) -> None:
    with transaction.atomic():
        _lock_tenant(membership.tenant_id)
        membership = Membership.objects.select_related("user", "tenant").get(pk=membership.pk)
        if _is_last_owner(membership):
            raise LastOwner()
        membership.delete()
        AuditEvent.log(
            actor=actor,
            tenant=membership.tenant,
            action="member.removed",
            target=membership.user.get_username(),
            role=membership.role,
        )
