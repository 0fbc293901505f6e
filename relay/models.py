"""Upstream channels: where the relay sends a group's requests."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Group
from relay.connections.egress import validate_base_url
from relay.lib.credentials import EncryptedTextField
from relay.providers import PROVIDERS

# Every kind is a module under relay/providers/, registered in its PROVIDERS table.
KINDS = [(kind, provider.label) for kind, provider in PROVIDERS.items()]
DEFAULT_KIND = "openai"


# A channel the relay took out itself (channel health), not a person: the
# probe's work list, the channels page's filter, the probe index's condition.
AUTO_DISABLED = models.Q(enabled=False) & ~models.Q(disabled_reason="")


class ChannelQuerySet(models.QuerySet):
    def auto_disabled(self) -> ChannelQuerySet:
        return self.filter(AUTO_DISABLED)


class Channel(models.Model):
    class DisabledReason(models.TextChoices):
        # Why the relay took the channel out of rotation by itself
        # (relay/health/); blank: it did not (enabled, or disabled by a person).
        FAILURES = "failures", _("Repeated failures")
        CREDENTIAL = "credential", _("Credential refused")
        QUOTA = "quota", _("Upstream quota exhausted")

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=KINDS, default=DEFAULT_KIND)
    base_url = models.URLField(max_length=500, validators=[validate_base_url])
    # Write-only: set on creation or replaced, never rendered back; stored
    # encrypted (relay/lib/credentials.py).
    credential = EncryptedTextField(blank=True)
    groups = models.ManyToManyField(Group, related_name="channels", blank=True)
    # Lower tiers are tried first; within a tier, weighted random.
    priority = models.IntegerField(default=0)
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
    # The channel's own limits per upstream call, where they are lower than
    # its provider's (an account's quota, a self-hosted server's batch size);
    # null: the provider's (docs/providers.md).
    items_per_call = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_call = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_item = models.PositiveIntegerField(null=True, blank=True)
    # Defaults for the provider's options when a client sends none.
    default_input_type = models.CharField(max_length=64, blank=True)
    default_task = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)
    # Channel health (relay/health/, docs/operator.md): a pinned channel is
    # never taken out of rotation by the relay, only by a person.
    pinned = models.BooleanField(default=False)
    disabled_reason = models.CharField(max_length=16, choices=DisabledReason.choices, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # The upstream's last words before the disable (never the credential).
    disabled_detail = models.CharField(max_length=300, blank=True)
    # The probe's backoff: when it next tries an auto-disabled channel, and
    # how many of its tries failed since the disable.
    next_probe_at = models.DateTimeField(null=True, blank=True)
    probe_failures = models.PositiveIntegerField(default=0)
    # The last probe or test-all result, shown on the channels page.
    last_probe_at = models.DateTimeField(null=True, blank=True)
    last_probe_ok = models.BooleanField(null=True, blank=True)
    last_probe_error = models.CharField(max_length=300, blank=True)

    objects = ChannelQuerySet.as_manager()

    # What a person's enable or disable writes beside ``enabled``: the
    # relay's own disable is over, so the probe leaves the channel alone.
    HEALTH_CLEARED = {
        "disabled_reason": "",
        "disabled_at": None,
        "disabled_detail": "",
        "next_probe_at": None,
        "probe_failures": 0,
    }

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weight__gte=1), name="channel_weight_positive"
            ),
        ]
        indexes = [
            # The probe task: auto-disabled channels whose next probe is due.
            models.Index(
                fields=["next_probe_at"],
                name="channel_probe_due",
                condition=AUTO_DISABLED,
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def auto_disabled(self) -> bool:
        return not self.enabled and bool(self.disabled_reason)

    @property
    def provider(self):
        return PROVIDERS[self.kind]

    @property
    def options(self) -> dict[str, str]:
        """The channel's defaults for the provider's options (relay/providers/base.py)."""
        defaults = {"input_type": self.default_input_type, "task": self.default_task}
        return {name: value for name, value in defaults.items() if value}


class ChannelModel(models.Model):
    """A model a channel serves, and the provider's name for it when different."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="models")
    model = models.CharField(max_length=200, help_text="The public model name clients ask for.")
    upstream_model = models.CharField(
        max_length=200, blank=True, help_text="The provider's name; blank means the same."
    )
    # Matryoshka-trained: the relay may answer `dimensions` by cutting its
    # vectors and scaling them back to unit length, where the provider has no
    # dimensions parameter of its own.
    truncatable = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "model"], name="channel_model_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}: {self.model}"

    @property
    def served_as(self) -> str:
        return self.upstream_model or self.model
