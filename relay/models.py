"""Upstream channels: where the relay sends a group's requests."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Group
from relay.connections.egress import validate_base_url
from relay.lib.credentials import EncryptedTextField
from relay.providers import PROVIDERS

# Every kind is a module under relay/providers/, registered in its PROVIDERS table.
KINDS = [(kind, provider.label) for kind, provider in PROVIDERS.items()]
DEFAULT_KIND = "openai"


class Channel(models.Model):
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

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weight__gte=1), name="channel_weight_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

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
