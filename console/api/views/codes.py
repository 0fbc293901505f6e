"""Operator API: redemption codes (兑换码). Staff make, list and void batches;
a tenant's owner redeems a code with their own token (``/api/tenant/redeem/``).

The serializers live here rather than in serializers.py: they serve these
views only. The codes of a new batch are in the one response that makes it.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response

from accounts.models import Membership, Tenant
from billing import ledger
from billing.models import RedemptionBatch, RedemptionCode
from billing.redemption import RedemptionRefused
from console.api import fields as f
from console.api import serializers as s
from console.api.base import MemberApi, Pagination, StaffApi
from console.api.views.tenant_self import member_tenant
from console.redemption import redeem_throttled
from relay.lib.addresses import client_ip
from relay.operations import redemption
from relay.operations.actions import MAX_NANOS, ActionRefused

TAG = "redemption codes"


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


class BatchCreateInput(serializers.Serializer):
    count = f.Integer(min_value=1, max_value=redemption.MAX_CODES_PER_BATCH)
    value_nanos = f.Integer(min_value=1, max_value=MAX_NANOS)
    expires = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the codes stop working; null: never."
    )
    tenant = f.Slug(
        max_length=100,
        required=False,
        allow_null=True,
        help_text="Only this tenant (its slug) may redeem them; null: any.",
    )
    name = f.Text(max_length=200, required=False, allow_blank=True)


class BatchOutput(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True, allow_null=True)
    unused = serializers.IntegerField(read_only=True)
    redeemed = serializers.IntegerField(read_only=True)
    voided = serializers.IntegerField(read_only=True)

    class Meta:
        model = RedemptionBatch
        fields = [
            "id",
            "name",
            "value_nanos",
            "expires",
            "tenant",
            "created",
            "unused",
            "redeemed",
            "voided",
        ]
        read_only_fields = fields


class BatchCreatedOutput(serializers.Serializer):
    batch = BatchOutput()
    codes = serializers.ListField(
        child=serializers.CharField(), help_text="In the clear, in this response only."
    )


class CodeOutput(serializers.ModelSerializer):
    redeemed_tenant = serializers.CharField(
        source="redeemed_tenant.slug", read_only=True, allow_null=True
    )
    redeemed_by = serializers.CharField(
        source="redeemed_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = RedemptionCode
        fields = ["id", "hint", "status", "redeemed_tenant", "redeemed_by", "redeemed", "voided"]
        read_only_fields = fields


class VoidOutput(serializers.Serializer):
    voided = serializers.IntegerField()


class RedeemInput(s.TenantScopeInput):
    code = f.Text(max_length=64)


class RedeemOutput(serializers.Serializer):
    hint = serializers.CharField()
    value_nanos = serializers.IntegerField()
    entry = s.LedgerEntryOutput()
    balance_nanos = serializers.IntegerField()


@extend_schema(tags=[TAG], responses=BatchOutput(many=True))
class BatchListApi(StaffApi, generics.ListAPIView):
    serializer_class = BatchOutput
    pagination_class = Pagination

    def get_queryset(self):
        return redemption.batches()


@extend_schema(tags=[TAG], request=BatchCreateInput, responses={201: BatchCreatedOutput})
class BatchCreateApi(StaffApi):
    def post(self, request):
        data = self.body(BatchCreateInput)
        tenant = None
        if data.get("tenant"):
            tenant = Tenant.objects.filter(slug=data["tenant"]).first()
            if tenant is None:
                raise ActionRefused("No tenant with this slug.", field="tenant")
        made = redemption.create_batch(
            actor=request.user,
            count=data["count"],
            value_nanos=data["value_nanos"],
            expires=data.get("expires"),
            tenant=tenant,
            name=data.get("name", ""),
        )
        body = BatchCreatedOutput(
            {"batch": redemption.batches().get(pk=made.batch.pk), "codes": made.codes}
        )
        return Response(
            body.data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )


@extend_schema(tags=[TAG], responses=CodeOutput(many=True))
class BatchCodesApi(StaffApi, generics.ListAPIView):
    """A batch's codes (their last four characters only), and who redeemed each when."""

    serializer_class = CodeOutput
    pagination_class = Pagination

    def get_queryset(self):
        batch = self.get_or_404(RedemptionBatch.objects, self.kwargs["batch_id"])
        return batch.codes.select_related("redeemed_tenant", "redeemed_by").order_by("pk")


@extend_schema(tags=[TAG], request=None, responses=VoidOutput)
class BatchVoidApi(StaffApi):
    """Void every unused code of the batch."""

    def post(self, request, batch_id: int):
        batch = self.get_or_404(RedemptionBatch.objects.select_related("tenant"), batch_id)
        return Response({"voided": redemption.void_batch(actor=request.user, batch=batch)})


@extend_schema(tags=[TAG], request=None, responses=VoidOutput)
class CodeVoidApi(StaffApi):
    """Void one unused code; ``voided: 0`` when it was redeemed or voided already."""

    def post(self, request, batch_id: int, code_id: int):
        code = self.get_or_404(
            RedemptionCode.objects.filter(batch_id=batch_id).select_related("batch__tenant"),
            code_id,
        )
        return Response({"voided": int(redemption.void_code(actor=request.user, code=code))})


@extend_schema(
    tags=["tenant"],
    request=RedeemInput,
    responses={200: RedeemOutput, 429: s.ErrorOutput, 503: s.ErrorOutput},
)
class TenantRedeemApi(MemberApi):
    """Redeem a code into your tenant's balance (owners only). A refused code is a
    400 naming why; too many refused codes lately, a 429."""

    def post(self, request):
        data = self.body(RedeemInput)
        tenant = member_tenant(request.user, data.get("tenant"))
        if not Membership.objects.filter(
            tenant=tenant, user=request.user, role=Membership.Role.OWNER
        ).exists():
            raise exceptions.PermissionDenied("Only the tenant's owners may redeem codes.")
        try:
            code = redeem_throttled(
                text=data["code"], tenant=tenant, user=request.user, address=client_ip(request.META)
            )
        except RedemptionRefused as refusal:
            if refusal.reason == "throttled":
                raise exceptions.Throttled(detail=refusal.message) from None
            if refusal.reason == "unavailable":
                raise Unavailable(refusal.message) from None
            raise exceptions.ValidationError({"code": [refusal.message]}) from None
        return Response(
            RedeemOutput(
                {
                    "hint": code.hint,
                    "value_nanos": code.batch.value_nanos,
                    "entry": code.ledger_entry,
                    "balance_nanos": ledger.balance_nanos(tenant),
                }
            ).data
        )
