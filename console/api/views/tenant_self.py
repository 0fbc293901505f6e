"""Read-only endpoints for a tenant's own members: their keys and usage.

The tenant comes from the caller's memberships (``?tenant=<slug>`` picks one
of them), never from an id alone: another tenant's slug gives 404.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts.models import ApiKey, Membership, Tenant
from billing import reports
from console.api import serializers as s
from console.api.base import MemberApi, Pagination

TAG = "tenant"


def member_tenant(user, slug: str | None) -> Tenant:
    """One of the tenants ``user`` belongs to: ``slug``'s, or the first by slug."""
    memberships = Membership.objects.filter(user=user).select_related("tenant")
    if slug:
        memberships = memberships.filter(tenant__slug=slug)
    membership = memberships.order_by("tenant__slug").first()
    if membership is None:
        raise Http404("You are not a member of this tenant.")
    return membership.tenant


@extend_schema(tags=[TAG], parameters=[s.TenantScopeInput], responses=s.ApiKeyOutput(many=True))
class TenantKeysApi(MemberApi, generics.ListAPIView):
    """Your tenant's keys (masked; secrets are never stored)."""

    serializer_class = s.ApiKeyOutput
    pagination_class = Pagination

    def get_queryset(self):
        tenant = member_tenant(self.request.user, self.query(s.TenantScopeInput).get("tenant"))
        return (
            ApiKey.objects.for_tenant(tenant)
            .select_related("tenant", "group")
            .order_by("-created", "-pk")
        )


@extend_schema(tags=[TAG], parameters=[s.TenantUsageInput], responses=s.TenantUsageOutput)
class TenantUsageApi(MemberApi):
    """Your tenant's usage by day and model, from the daily rollups (UTC days)."""

    def get(self, request):
        data = self.query(s.TenantUsageInput)
        tenant = member_tenant(request.user, data.get("tenant"))
        scope = {"start": data["start"], "end": data["end"], "tenant_id": tenant.pk}
        by_day = reports.usage_by(breakdown="day", **scope)
        total = reports.UsageRow(key=None, label="Total")
        for row in by_day:
            total = total + row
        return Response(
            s.TenantUsageOutput(
                {
                    "tenant": tenant.slug,
                    "start": data["start"],
                    "end": data["end"],
                    "total": total,
                    "by_day": by_day,
                    "by_model": reports.usage_by(breakdown="model", **scope),
                }
            ).data
        )
