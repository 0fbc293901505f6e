"""Input and output serializers of the operator API, fields listed by name.

Inputs and outputs are separate classes: an output never carries a channel
credential or a key secret (except the one response that issues keys), and
an input never lets a caller write what it must not (balances move only by
ledger actions). Amounts are integer nano-units (``*_nanos``) of the
operator's currency; prices are per million tokens. Inputs use the strict
fields of console/api/fields.py, so they take exactly the schema's JSON types.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiKey, AuditEvent, Group, Membership, Tenant
from billing import reports
from billing.models import BasePrice, LedgerEntry
from console.api import fields as f
from relay.operations.actions import (
    GROUP_FIELDS,
    MAX_BULK_KEYS,
    MAX_INT,
    MAX_NANOS,
    effective_prices,
)

# A model name as clients send it: no whitespace.
MODEL_NAME = r"^[^\s]{1,200}$"
# Group.price_ratio is DECIMAL(12, 6): up to six digits either side of the point.
RATIO = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"


def _limit(**kwargs) -> f.Integer:
    """A rate or concurrency limit; null is unlimited."""
    return f.Integer(min_value=1, max_value=MAX_INT, allow_null=True, required=False, **kwargs)


def model_name(**kwargs) -> f.Pattern:
    return f.Pattern(MODEL_NAME, max_length=200, **kwargs)


class DateRangeInput(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (UTC), inclusive.")
    end = serializers.DateField(required=False, help_text="Last day (UTC), inclusive.")

    def validate(self, data):
        end = data.get("end") or dt.datetime.now(dt.UTC).date()
        # The last 30 days by default (fewer only when ``end`` is near year 1).
        start = data.get("start") or end - dt.timedelta(days=min(29, (end - dt.date.min).days))
        if end < start:
            raise serializers.ValidationError("The range ends before it starts.")
        if (end - start).days + 1 > reports.MAX_RANGE_DAYS:
            raise serializers.ValidationError(
                f"A report covers at most {reports.MAX_RANGE_DAYS} days."
            )
        return {**data, "start": start, "end": end}


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()


# --- Tenants and the ledger ------------------------------------------------------


class TenantOutput(serializers.ModelSerializer):
    groups = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    balance_nanos = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tenant
        fields = [
            "id",
            "slug",
            "name",
            "status",
            "groups",
            "limit_rpm",
            "limit_tpm",
            "limit_concurrency",
            "balance_nanos",
            "created",
        ]
        read_only_fields = fields


class MemberInput(serializers.Serializer):
    username = f.Text(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    email = serializers.EmailField(required=False, default="", allow_blank=True)
    # Not trimmed: the console's sign-in takes a password exactly as typed.
    password = f.Text(
        max_length=128,
        required=False,
        default="",
        allow_blank=True,
        write_only=True,
        trim_whitespace=False,
        help_text="Only for a new user: at least 10 characters. Never returned.",
    )


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created"]
        read_only_fields = fields


class TenantCreateInput(serializers.Serializer):
    slug = f.Slug(max_length=100)
    name = f.Text(max_length=200)
    groups = serializers.ListField(
        child=f.Slug(max_length=100),
        required=False,
        default=list,
        help_text="Names of the groups whose keys the tenant may issue itself.",
    )
    limit_rpm = _limit()
    limit_tpm = _limit()
    limit_concurrency = _limit()


class TenantUpdateInput(serializers.Serializer):
    name = f.Text(max_length=200, required=False)
    groups = serializers.ListField(child=f.Slug(max_length=100), required=False)
    limit_rpm = _limit()
    limit_tpm = _limit()
    limit_concurrency = _limit()


class TopUpInput(serializers.Serializer):
    amount_nanos = f.Integer(min_value=1, max_value=MAX_NANOS)
    reason = f.Text(max_length=500, required=False, default="", allow_blank=True)


class AdjustInput(serializers.Serializer):
    amount_nanos = f.Integer(
        min_value=-MAX_NANOS, max_value=MAX_NANOS, help_text="Positive credits, negative debits."
    )
    reason = f.Text(max_length=500, help_text="Required: kept in the ledger.")


class LedgerEntryOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "amount_nanos", "reason", "request_count", "created_by", "created"]
        read_only_fields = fields


class BalanceMoveOutput(serializers.Serializer):
    entry = LedgerEntryOutput()
    balance_nanos = serializers.IntegerField()


# --- Keys --------------------------------------------------------------------------


class ApiKeyOutput(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    group = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "tenant",
            "group",
            "name",
            "masked",
            "status",
            "allowed_models",
            "limit_rpm",
            "limit_tpm",
            "limit_concurrency",
            "expires",
            "created",
            "revoked",
        ]
        read_only_fields = fields


class KeyIssueInput(serializers.Serializer):
    group = f.Slug(max_length=100, help_text="The group's name.")
    count = f.Integer(min_value=1, max_value=MAX_BULK_KEYS)
    name_prefix = f.Slug(
        max_length=150,
        required=False,
        default="key",
        help_text="Keys are named <prefix>-0001, <prefix>-0002, ...",
    )


class IssuedKeyOutput(serializers.Serializer):
    id = serializers.IntegerField(source="key.pk")
    name = serializers.CharField(source="key.name")
    prefix = serializers.CharField(source="key.prefix")
    secret = serializers.CharField(help_text="Shown in this response only; never stored.")


class KeysIssuedOutput(serializers.Serializer):
    tenant = serializers.CharField()
    group = serializers.CharField()
    keys = IssuedKeyOutput(many=True)


# --- Groups and prices ---------------------------------------------------------------


class GroupModelInput(serializers.Serializer):
    model = model_name()
    price_per_mtok_nanos = f.Integer(
        min_value=0,
        max_value=MAX_NANOS,
        allow_null=True,
        required=False,
        default=None,
        help_text="Null: the base price times the group's price_ratio.",
    )


class GroupModelOutput(serializers.Serializer):
    model = serializers.CharField()
    price_per_mtok_nanos = serializers.IntegerField(allow_null=True)
    effective_price_per_mtok_nanos = serializers.IntegerField(
        allow_null=True, help_text="What the group's keys are billed; null: not served."
    )


class GroupOutput(serializers.ModelSerializer):
    price_ratio = serializers.SerializerMethodField()
    models = serializers.SerializerMethodField()
    channels = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Group
        fields = ["id", *GROUP_FIELDS, "models", "channels", "created"]
        read_only_fields = fields

    cache_price_ratio = serializers.SerializerMethodField()

    def get_price_ratio(self, group: Group) -> str:
        return format(group.price_ratio.normalize(), "f")

    def get_cache_price_ratio(self, group: Group) -> str:
        return format(group.cache_price_ratio.normalize(), "f")

    @extend_schema_field(GroupModelOutput(many=True))
    def get_models(self, group: Group) -> list[dict]:
        # The list view passes the base price list once for all its groups.
        effective = effective_prices(group, self.context.get("base_prices"))
        rows = [
            {
                "model": row.model,
                "price_per_mtok_nanos": row.price_per_mtok_nanos,
                "effective_price_per_mtok_nanos": effective.get(row.model),
            }
            for row in sorted(group.models.all(), key=lambda row: row.model)
        ]
        return GroupModelOutput(rows, many=True).data


class _GroupFieldsInput(serializers.Serializer):
    description = f.Text(max_length=300, required=False, allow_blank=True)
    price_ratio = f.Pattern(
        RATIO,
        max_length=13,
        required=False,
        help_text="Models without a price of their own cost the base price times this.",
    )
    limit_rpm = _limit()
    limit_tpm = _limit()
    limit_concurrency = _limit()
    cache_enabled = f.Boolean(
        required=False, help_text="Answer items sent before from the embedding cache."
    )
    cache_scope = serializers.ChoiceField(choices=Group.CacheScope.choices, required=False)
    cache_price_ratio = f.Pattern(
        RATIO,
        max_length=13,
        required=False,
        help_text="A cached item costs the model's price times this (0 to 1).",
    )
    models = GroupModelInput(many=True, required=False)
    channels = serializers.ListField(
        child=f.Slug(max_length=100),
        required=False,
        help_text="Names of the channels that serve this group.",
    )

    def validate_price_ratio(self, value: str) -> Decimal:
        return Decimal(value)

    def validate_cache_price_ratio(self, value: str) -> Decimal:
        ratio = Decimal(value)
        if ratio > 1:
            raise serializers.ValidationError("At most 1: a cached item never costs more.")
        return ratio

    def validate_models(self, rows: list[dict]) -> list[dict]:
        names = [row["model"] for row in rows]
        if len(set(names)) != len(names):
            raise serializers.ValidationError("A model is listed twice.")
        return rows


class GroupCreateInput(_GroupFieldsInput):
    name = f.Slug(max_length=100)


class GroupUpdateInput(_GroupFieldsInput):
    name = f.Slug(max_length=100, required=False)


class BasePriceOutput(serializers.ModelSerializer):
    class Meta:
        model = BasePrice
        fields = ["id", "model", "price_per_mtok_nanos"]
        read_only_fields = fields


class BasePriceInput(serializers.Serializer):
    model = model_name()
    price_per_mtok_nanos = f.Integer(min_value=0, max_value=MAX_NANOS)


# --- Reports and the audit log -----------------------------------------------------


class ReportInput(DateRangeInput):
    tenant = f.Slug(
        max_length=100, required=False, help_text="Only this tenant's usage (its slug)."
    )


class UsageRowOutput(serializers.Serializer):
    key = serializers.SerializerMethodField()
    label = serializers.CharField()
    requests = serializers.IntegerField()
    failed = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    tokens = serializers.IntegerField()
    cost_nanos = serializers.IntegerField()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_key(self, row: reports.UsageRow) -> str | None:
        """The day, tenant id, model, channel id or key id the row is about."""
        return None if row.key is None else str(row.key)


class ReportOutput(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    total = UsageRowOutput()
    by_day = UsageRowOutput(many=True)
    by_tenant = UsageRowOutput(many=True)
    by_model = UsageRowOutput(many=True)
    by_channel = UsageRowOutput(many=True)
    top_keys = UsageRowOutput(many=True)


class AuditQueryInput(serializers.Serializer):
    tenant = f.Slug(max_length=100, required=False)
    action = f.Pattern(r"^[a-z_.]{1,64}$", max_length=64, required=False)


class AuditEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    detail = serializers.DictField(read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created", "actor", "tenant", "action", "target", "detail"]
        read_only_fields = fields


# --- What a tenant's own members see -------------------------------------------------


class TenantScopeInput(serializers.Serializer):
    tenant = f.Slug(
        max_length=100,
        required=False,
        help_text="Which of your tenants (its slug); default: the first you belong to.",
    )


class TenantUsageInput(TenantScopeInput, DateRangeInput):
    pass


class TenantUsageOutput(serializers.Serializer):
    tenant = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    total = UsageRowOutput()
    by_day = UsageRowOutput(many=True)
    by_model = UsageRowOutput(many=True)
