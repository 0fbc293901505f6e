"""Upstream channels: where the relay sends a group's requests."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Group
from relay.connections.egress import validate_base_url
from relay.lib.credentials import EncryptedTextField
from relay.providers import PROVIDERS


class Channel(models.Model):
    class Kind(models.TextChoices):
        # Every kind is a module under relay/providers/, registered in PROVIDERS.
        OPENAI = "openai", "OpenAI-compatible"
        AZURE = "azure", "Azure OpenAI"

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.OPENAI)
    base_url = models.URLField(max_length=500, validators=[validate_base_url])
    # Write-only: set on creation or replaced, never rendered back; stored
    # encrypted (relay/lib/credentials.py).
    credential = EncryptedTextField(blank=True)
    groups = models.ManyToManyField(Group, related_name="channels", blank=True)
    # Lower tiers are tried first; within a tier, weighted random.
    priority = models.IntegerField(default=0)
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
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


class ChannelModel(models.Model):
    """A model a channel serves, and the provider's name for it when different."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="models")
    model = models.CharField(max_length=200, help_text="The public model name clients ask for.")
    upstream_model = models.CharField(
        max_length=200, blank=True, help_text="The provider's name; blank means the same."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "model"], name="channel_model_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}: {self.model}"

    @property
    def served_as(self) -> str:
        return self.upstream_model or self.model
