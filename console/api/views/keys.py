"""Operator API: a tenant's keys, bulk issue (secrets returned once) and revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from accounts.models import ApiKey, Group, Tenant
from console.api import serializers as s
from console.api.base import Pagination, StaffApi
from relay.operations import actions
from relay.operations.actions import ActionRefused

TAG = "keys"


@extend_schema(tags=[TAG], responses=s.ApiKeyOutput(many=True))
class KeyListApi(StaffApi, generics.ListAPIView):
    serializer_class = s.ApiKeyOutput
    pagination_class = Pagination

    def get_queryset(self):
        tenant = self.get_or_404(Tenant.objects.all(), self.kwargs["tenant_id"])
        return (
            ApiKey.objects.for_tenant(tenant)
            .select_related("tenant", "group")
            .order_by("-created", "-pk")
        )


@extend_schema(tags=[TAG], request=s.KeyIssueInput, responses={201: s.KeysIssuedOutput})
class KeyIssueApi(StaffApi):
    """Issue 1 to 1000 keys; this response is the only place their secrets appear."""

    def post(self, request, tenant_id: int):
        tenant = self.get_or_404(Tenant.objects.all(), tenant_id)
        data = self.body(s.KeyIssueInput)
        group = Group.objects.filter(name=data["group"]).first()
        if group is None:
            raise ActionRefused("Unknown group.", field="group")
        issued = actions.issue_keys(
            actor=request.user,
            tenant=tenant,
            group=group,
            count=data["count"],
            name_prefix=data["name_prefix"],
        )
        body = s.KeysIssuedOutput({"tenant": tenant.slug, "group": group.name, "keys": issued})
        response = Response(body.data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


@extend_schema(tags=[TAG], request=None, responses=s.ApiKeyOutput)
class KeyRevokeApi(StaffApi):
    def post(self, request, tenant_id: int, key_id: int):
        tenant = self.get_or_404(Tenant.objects.all(), tenant_id)
        # Through the tenant: another tenant's key id gives 404.
        key = self.get_or_404(ApiKey.objects.for_tenant(tenant).select_related("group"), key_id)
        actions.revoke_key(actor=request.user, key=key)
        return Response(s.ApiKeyOutput(key).data)
