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
from relay.models import KINDS, Channel
from relay.operations.actions import MAX_BULK_KEYS, MAX_INT, MAX_NANOS, effective_prices

# A model name as clients send it: no whitespace.
MODEL_NAME = r"^[^\s]{1,200}$"
# Group.price_ratio is DECIMAL(12, 6): up to six digits either side of the point.
RATIO = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"


def _limit(**kwargs) -> f.Integer:
    """A rate or concurrency limit; null is unlimited."""
    return f.Integer(min_value=1, max_value=MAX_INT, allow_null=True, required=False, **kwargs)


def _call_limit() -> f.Integer:
    """A channel's own limit per upstream call; null: the provider's."""
    return f.Integer(
        min_value=1, max_value=MAX_INT, allow_null=True, required=False,
        help_text="Null: the provider's own limit (docs/providers.md).",
    )


def _model_name(**kwargs) -> f.Pattern:
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
            "id", "slug", "name", "status", "groups", "limit_rpm", "limit_tpm",
            "limit_concurrency", "balance_nanos", "created",
        ]
        read_only_fields = fields


class MemberInput(serializers.Serializer):
    username = f.Text(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    email = serializers.EmailField(required=False, default="", allow_blank=True)
    # Not trimmed: the console's sign-in takes a password exactly as typed.
    password = f.Text(
        max_length=128, required=False, default="", allow_blank=True, write_only=True,
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
        child=f.Slug(max_length=100), required=False, default=list,
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
            "id", "tenant", "group", "name", "masked", "status", "allowed_models",
            "limit_rpm", "limit_tpm", "limit_concurrency", "expires", "created", "revoked",
        ]
        read_only_fields = fields


class KeyIssueInput(serializers.Serializer):
    group = f.Slug(max_length=100, help_text="The group's name.")
    count = f.Integer(min_value=1, max_value=MAX_BULK_KEYS)
    name_prefix = f.Slug(
        max_length=150, required=False, default="key",
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
    model = _model_name()
    price_per_mtok_nanos = f.Integer(
        min_value=0, max_value=MAX_NANOS, allow_null=True, required=False, default=None,
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
        fields = [
            "id", "name", "description", "price_ratio", "limit_rpm", "limit_tpm",
            "limit_concurrency", "cache_enabled", "cache_scope", "cache_price_ratio", "models",
            "channels", "created",
        ]
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
        RATIO, max_length=13, required=False,
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
        RATIO, max_length=13, required=False,
        help_text="A cached item costs the model's price times this (0 to 1).",
    )
    models = GroupModelInput(many=True, required=False)
    channels = serializers.ListField(
        child=f.Slug(max_length=100), required=False,
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
    model = _model_name()
    price_per_mtok_nanos = f.Integer(min_value=0, max_value=MAX_NANOS)


# --- Channels ------------------------------------------------------------------------


class ChannelModelIO(serializers.Serializer):
    model = _model_name(help_text="The public model name clients ask for.")
    upstream_model = f.Pattern(
        MODEL_NAME, max_length=200, required=False, allow_blank=True, default="",
        help_text="The provider's name (Azure: the deployment); blank means the same.",
    )
    truncatable = f.Boolean(
        required=False, default=False,
        help_text="Matryoshka-trained: the relay may cut its vectors to `dimensions`.",
    )


class ChannelOutput(serializers.ModelSerializer):
    """Never the credential: only whether one is set."""

    has_credential = serializers.SerializerMethodField()
    groups = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    models = ChannelModelIO(many=True, read_only=True)
    disabled_reason = serializers.CharField(
        read_only=True,
        help_text="Why the relay took it out of rotation: failures, credential or quota; "
        "blank when it did not.",
    )

    class Meta:
        model = Channel
        fields = [
            "id", "name", "kind", "base_url", "has_credential", "priority", "weight", "enabled",
            "items_per_call", "tokens_per_call", "tokens_per_item", "default_input_type",
            "default_task", "groups", "models", "created",
            # Channel health (docs/operator.md): why and when the relay took
            # it out of rotation, its next probe, the last probe's result.
            "pinned", "disabled_reason", "disabled_at", "disabled_detail", "next_probe_at",
            "last_probe_at", "last_probe_ok", "last_probe_error",
        ]
        read_only_fields = fields

    def get_has_credential(self, channel: Channel) -> bool:
        return bool(channel.credential)


class _ChannelFieldsInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS, required=False)
    base_url = f.Url(max_length=500, required=False)
    credential = f.Text(
        write_only=True, required=False, allow_blank=True, max_length=4000,
        style={"input_type": "password"},
        help_text="Write-only: stored, never returned. Omitted or blank keeps the stored one.",
    )
    priority = f.Integer(min_value=-MAX_INT, max_value=MAX_INT, required=False)
    weight = f.Integer(min_value=1, max_value=MAX_INT, required=False)
    enabled = f.Boolean(required=False)
    items_per_call = _call_limit()
    tokens_per_call = _call_limit()
    tokens_per_item = _call_limit()
    default_input_type = f.Text(max_length=64, required=False, allow_blank=True)
    default_task = f.Text(max_length=64, required=False, allow_blank=True)
    groups = serializers.ListField(
        child=f.Slug(max_length=100), required=False,
        help_text="Names of the groups this channel serves.",
    )
    models = ChannelModelIO(many=True, required=False)

    def validate_base_url(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("Must start with http:// or https://.")
        return value

    def validate_models(self, rows: list[dict]) -> list[dict]:
        names = [row["model"] for row in rows]
        if len(set(names)) != len(names):
            raise serializers.ValidationError("A model is listed twice.")
        return rows


class ChannelPinInput(serializers.Serializer):
    pinned = f.Boolean(help_text="True: the relay never takes this channel out of rotation.")


class TestAllInput(serializers.Serializer):
    only_auto_disabled = f.Boolean(
        required=False, default=False,
        help_text="Probe only the channels the relay took out (put back those that pass).",
    )


class TestAllOutput(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Channels to be probed, results on each.")


class ChannelCreateInput(_ChannelFieldsInput):
    name = f.Slug(max_length=100)
    base_url = f.Url(max_length=500)


class ChannelUpdateInput(_ChannelFieldsInput):
    name = f.Slug(max_length=100, required=False)


class ChannelTestInput(serializers.Serializer):
    model = _model_name(required=False, help_text="Default: the channel's first model.")


class ChannelTestOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    model = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    status = serializers.IntegerField(allow_null=True, help_text="The upstream's HTTP status.")
    dimensions = serializers.IntegerField(allow_null=True)
    prompt_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


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
        max_length=100, required=False,
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
