"""Operator API: usage reports (from the daily rollups) and the audit log."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts.models import AuditEvent, Tenant
from console.api import serializers as s
from console.api.base import Pagination, StaffApi
from console.reports import operator_report


def _tenant_id(slug: str) -> int:
    tenant_id = Tenant.objects.filter(slug=slug).values_list("pk", flat=True).first()
    if tenant_id is None:
        raise Http404
    return tenant_id


@extend_schema(tags=["reports"], parameters=[s.ReportInput], responses=s.ReportOutput)
class ReportApi(StaffApi):
    """Spend, tokens, requests and error rates by day, tenant, model, channel and
    top keys over ``start``..``end`` (UTC days, inclusive; default the last 30)."""

    def get(self, request):
        data = self.query(s.ReportInput)
        tenant_id = _tenant_id(data["tenant"]) if "tenant" in data else None
        report = operator_report(start=data["start"], end=data["end"], tenant_id=tenant_id)
        return Response(s.ReportOutput(report).data)


@extend_schema(
    tags=["audit"], parameters=[s.AuditQueryInput], responses=s.AuditEventOutput(many=True)
)
class AuditLogApi(StaffApi, generics.ListAPIView):
    serializer_class = s.AuditEventOutput
    pagination_class = Pagination

    def get_queryset(self):
        data = self.query(s.AuditQueryInput)
        events = AuditEvent.objects.select_related("actor", "tenant").order_by("-created", "-pk")
        if "tenant" in data:
            events = events.filter(tenant__slug=data["tenant"])
        if "action" in data:
            events = events.filter(action=data["action"])
        return events
