"""Operator API: tenants, their status and their balance (through the ledger)."""

from __future__ import annotations

from django.db.models import Value
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from accounts.models import Group, Tenant
from billing import ledger
from billing.models import LedgerEntry
from console.api import serializers as s
from console.api.base import Pagination, StaffApi
from relay.operations import actions
from relay.operations.actions import ActionRefused

TAG = "tenants"


def tenants_with_balance():
    return (
        Tenant.objects.annotate(balance_nanos=Coalesce("balance__balance_nanos", Value(0)))
        .prefetch_related("groups")
        .order_by("slug")
    )


def groups_named(names: list[str], *, field: str = "groups") -> list[Group]:
    found = {group.name: group for group in Group.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        raise ActionRefused(f"Unknown group(s): {', '.join(missing)}.", field=field)
    return [found[name] for name in dict.fromkeys(names)]


def tenant_output(tenant: Tenant) -> dict:
    return s.TenantOutput(tenants_with_balance().get(pk=tenant.pk)).data


@extend_schema(tags=[TAG], responses=s.TenantOutput(many=True))
class TenantListApi(StaffApi, generics.ListAPIView):
    serializer_class = s.TenantOutput
    pagination_class = Pagination

    def get_queryset(self):
        return tenants_with_balance()


@extend_schema(tags=[TAG], request=s.TenantCreateInput, responses={201: s.TenantOutput})
class TenantCreateApi(StaffApi):
    def post(self, request):
        data = self.body(s.TenantCreateInput)
        tenant = actions.create_tenant(
            actor=request.user,
            slug=data["slug"],
            groups=groups_named(data["groups"]),
            **{name: data[name] for name in actions.TENANT_FIELDS if name in data},
        )
        return Response(tenant_output(tenant), status=status.HTTP_201_CREATED)


@extend_schema(tags=[TAG], responses=s.TenantOutput)
class TenantDetailApi(StaffApi):
    def get(self, request, tenant_id: int):
        return Response(s.TenantOutput(self.get_or_404(tenants_with_balance(), tenant_id)).data)


@extend_schema(tags=[TAG], request=s.TenantUpdateInput, responses=s.TenantOutput)
class TenantUpdateApi(StaffApi):
    """Name, limits and the groups it may issue keys in; fields left out stay as they are."""

    def post(self, request, tenant_id: int):
        tenant = self.get_or_404(Tenant.objects.all(), tenant_id)
        data = self.body(s.TenantUpdateInput)
        groups = groups_named(data["groups"]) if "groups" in data else None
        actions.update_tenant(
            actor=request.user,
            tenant=tenant,
            groups=groups,
            **{name: data[name] for name in actions.TENANT_FIELDS if name in data},
        )
        return Response(tenant_output(tenant))


class _TenantStatusApi(StaffApi):
    status_value = ""

    def post(self, request, tenant_id: int):
        tenant = self.get_or_404(Tenant.objects.all(), tenant_id)
        actions.set_tenant_status(actor=request.user, tenant=tenant, status=self.status_value)
        return Response(tenant_output(tenant))


@extend_schema(tags=[TAG], request=None, responses=s.TenantOutput)
class TenantSuspendApi(_TenantStatusApi):
    """Every key of a suspended tenant is refused until it is reactivated."""

    status_value = Tenant.Status.SUSPENDED


@extend_schema(tags=[TAG], request=None, responses=s.TenantOutput)
class TenantReactivateApi(_TenantStatusApi):
    status_value = Tenant.Status.ACTIVE


def _moved(entry: LedgerEntry, tenant: Tenant) -> dict:
    return s.BalanceMoveOutput({"entry": entry, "balance_nanos": ledger.balance_nanos(tenant)}).data


@extend_schema(tags=[TAG], request=s.MemberInput, responses={201: s.MemberOutput})
class TenantMemberAddApi(StaffApi):
    """Add a member (creating the user when new) or change a member's role."""

    def post(self, request, tenant_id: int):
        tenant = self.get_or_404(Tenant.objects.all(), tenant_id)
        data = self.body(s.MemberInput)
        membership = actions.add_member(actor=request.user, tenant=tenant, **data)
        return Response(s.MemberOutput(membership).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=[TAG], request=s.TopUpInput, responses={201: s.BalanceMoveOutput})
class TenantTopUpApi(StaffApi):
    def post(self, request, tenant_id: int):
        tenant = self.get_or_404(Tenant.objects.all(), tenant_id)
        data = self.body(s.TopUpInput)
        entry = actions.top_up(
            actor=request.user,
            tenant=tenant,
            amount_nanos=data["amount_nanos"],
            reason=data["reason"],
        )
        return Response(_moved(entry, tenant), status=status.HTTP_201_CREATED)


@extend_schema(tags=[TAG], request=s.AdjustInput, responses={201: s.BalanceMoveOutput})
class TenantAdjustApi(StaffApi):
    """A correction either way, with a reason; refused (400) below a zero balance."""

    def post(self, request, tenant_id: int):
        tenant = self.get_or_404(Tenant.objects.all(), tenant_id)
        data = self.body(s.AdjustInput)
        entry = actions.adjust(
            actor=request.user,
            tenant=tenant,
            amount_nanos=data["amount_nanos"],
            reason=data["reason"],
        )
        return Response(_moved(entry, tenant), status=status.HTTP_201_CREATED)


@extend_schema(tags=[TAG], responses=s.LedgerEntryOutput(many=True))
class TenantLedgerApi(StaffApi, generics.ListAPIView):
    serializer_class = s.LedgerEntryOutput
    pagination_class = Pagination

    def get_queryset(self):
        tenant = self.get_or_404(Tenant.objects.all(), self.kwargs["tenant_id"])
        return (
            LedgerEntry.objects.for_tenant(tenant)
            .select_related("created_by")
            .order_by("-created", "-pk")
        )
