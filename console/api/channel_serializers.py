"""The operator API's channel serializers (console/api/serializers.py holds
the rest, and says how inputs and outputs are kept apart): a channel's
output never carries its credential, only whether one is set."""

from __future__ import annotations

from rest_framework import serializers

from console.api import fields as f
from console.api.serializers import MODEL_NAME, model_name
from relay.models import KINDS, Channel
from relay.operations.actions import MAX_INT


def _call_limit() -> f.Integer:
    """A channel's own limit per upstream call; null: the provider's."""
    return f.Integer(
        min_value=1,
        max_value=MAX_INT,
        allow_null=True,
        required=False,
        help_text="Null: the provider's own limit (docs/providers.md).",
    )


class ChannelModelIO(serializers.Serializer):
    model = model_name(help_text="The public model name clients ask for.")
    upstream_model = f.Pattern(
        MODEL_NAME,
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="The provider's name (Azure: the deployment); blank means the same.",
    )
    truncatable = f.Boolean(
        required=False,
        default=False,
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
            "id",
            "name",
            "kind",
            "base_url",
            "has_credential",
            "priority",
            "weight",
            "enabled",
            "items_per_call",
            "tokens_per_call",
            "tokens_per_item",
            "default_input_type",
            "default_task",
            "groups",
            "models",
            "created",
            # Channel health (docs/operator.md): why and when the relay took
            # it out of rotation, its next probe, the last probe's result.
            "pinned",
            "disabled_reason",
            "disabled_at",
            "disabled_detail",
            "next_probe_at",
            "last_probe_at",
            "last_probe_ok",
            "last_probe_error",
        ]
        read_only_fields = fields

    def get_has_credential(self, channel: Channel) -> bool:
        return bool(channel.credential)


class _ChannelFieldsInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS, required=False)
    base_url = f.Url(max_length=500, required=False)
    credential = f.Text(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=4000,
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
        child=f.Slug(max_length=100),
        required=False,
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
        required=False,
        default=False,
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
    model = model_name(required=False, help_text="Default: the channel's first model.")


class ChannelTestOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    model = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    status = serializers.IntegerField(allow_null=True, help_text="The upstream's HTTP status.")
    dimensions = serializers.IntegerField(allow_null=True)
    prompt_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
