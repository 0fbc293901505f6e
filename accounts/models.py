"""Tenants (customer accounts), their members, key groups (分组) and API keys."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import keys


class Tenant(models.Model):
    class Status(models.TextChoices):
        # Labels are what the consoles show, in the reader's language.
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # The groups whose keys this tenant may issue itself.
    groups = models.ManyToManyField("Group", related_name="tenants", blank=True)
    # Limits over all the tenant's keys together (so issuing more keys does
    # not multiply them); null means unlimited.
    limit_rpm = models.PositiveIntegerField(null=True, blank=True)
    limit_tpm = models.PositiveIntegerField(null=True, blank=True)
    limit_concurrency = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    # The owners are e-mailed when the balance falls below this (null: never),
    # once per crossing: ``low_balance_notified`` is set by the notice and
    # cleared when the balance is back at or above the threshold.
    low_balance_threshold_nanos = models.BigIntegerField(null=True, blank=True)
    low_balance_notified = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        MEMBER = "member", _("Member")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class Group(models.Model):
    """A key group (分组): which models its keys may call, at what price, how fast.

    A model's price is either set on its ``GroupModel`` row, or is
    ``price_ratio`` times the base price list (``billing.BasePrice``).
    """

    class CacheScope(models.TextChoices):
        # A cache shared between tenants tells one tenant, through timing,
        # what another embedded: shared only where the operator chooses.
        TENANT = "tenant", _("Each tenant its own")
        GLOBAL = "global", _("Shared by every tenant of the group")

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    price_ratio = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    # Default limits for the group's keys; null means unlimited.
    limit_rpm = models.PositiveIntegerField(null=True, blank=True)
    limit_tpm = models.PositiveIntegerField(null=True, blank=True)
    limit_concurrency = models.PositiveIntegerField(null=True, blank=True)
    # The per-item embedding cache (relay/pipeline/cache.py): an item this
    # group's keys sent before, to the same upstream model with the same
    # dimensions and options, is answered from it, at this ratio of the price.
    cache_enabled = models.BooleanField(default=False)
    cache_scope = models.CharField(
        max_length=16, choices=CacheScope.choices, default=CacheScope.TENANT
    )
    cache_price_ratio = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        default=Decimal("0.1"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price_ratio__gte=0), name="group_price_ratio_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(cache_price_ratio__gte=0, cache_price_ratio__lte=1),
                name="group_cache_price_ratio_within_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class GroupModel(models.Model):
    """A model open to a group, with an optional price of its own."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="models")
    model = models.CharField(max_length=200)
    # Nano-units of the operator's currency per million tokens; null means
    # "the base price times the group's ratio".
    price_per_mtok_nanos = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "model"], name="group_model_unique"),
            models.CheckConstraint(
                condition=models.Q(price_per_mtok_nanos__gte=0)
                | models.Q(price_per_mtok_nanos__isnull=True),
                name="group_model_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group}: {self.model}"


class ApiKeyQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> ApiKeyQuerySet:
        return self.filter(tenant=tenant)

    def active(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(status=ApiKey.Status.ACTIVE).filter(
            models.Q(expires__isnull=True) | models.Q(expires__gt=now)
        )


class ApiKey(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        REVOKED = "revoked", _("Revoked")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=200)
    # SHA-256 of the secret; the secret itself is never stored.
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    imported = models.BooleanField(default=False, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    expires = models.DateTimeField(null=True, blank=True)
    # The expiry notices already sent, by days ahead (7, then 1; null: none):
    # each is claimed by one conditional UPDATE, so it goes out once.
    expiry_notice_days = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    # Per-key overrides of the group's limits; null means "the group's".
    limit_rpm = models.PositiveIntegerField(null=True, blank=True)
    limit_tpm = models.PositiveIntegerField(null=True, blank=True)
    limit_concurrency = models.PositiveIntegerField(null=True, blank=True)
    # Empty means every model of the group.
    allowed_models = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    # CIDR ranges the key may be used from; empty means anywhere.
    allowed_ips = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    # The most this key may ever spend (a relay's "token quota"), in nanos;
    # null means bounded only by the tenant's balance.
    spend_cap_nanos = models.BigIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    revoked = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        indexes = [
            # The tenant console's key list.
            models.Index(fields=["tenant", "-created"], name="apikey_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"{self.prefix}...{self.last4}"

    def set_secret(self, secret: str, *, imported: bool = False) -> None:
        self.digest = keys.digest(secret)
        self.prefix = keys.display_prefix(secret)
        self.last4 = secret[-4:]
        self.imported = imported

    def revoke(self) -> None:
        self.status = self.Status.REVOKED
        self.revoked = timezone.now()
        self.save(update_fields=["status", "revoked"])

    @classmethod
    def issue(cls, *, tenant: Tenant, group: Group, name: str, **fields) -> tuple[ApiKey, str]:
        """Create a key with a fresh secret; the secret is returned once, here."""
        secret = keys.generate_secret()
        key = cls(tenant=tenant, group=group, name=name, **fields)
        key.set_secret(secret)
        key.save()
        return key, secret

    @classmethod
    def import_secret(
        cls, *, tenant: Tenant, group: Group, name: str, secret: str, **fields
    ) -> ApiKey:
        """Adopt a secret issued elsewhere (migrating from another relay)."""
        if keys.refused_without_lookup(secret):
            raise ValueError("this secret has the shape of a generated key but a wrong checksum")
        key = cls(tenant=tenant, group=group, name=name, **fields)
        key.set_secret(secret, imported=True)
        key.save()
        return key


class AuditEvent(models.Model):
    """A sensitive change: who did what to which object, and when."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The tenant the change concerns, if any (tenant owners see their own).
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    action = models.CharField(max_length=64)  # e.g. "key.issued", "channel.updated"
    target = models.CharField(max_length=200)  # a readable name, never a secret
    detail = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The audit log page: ORDER BY created DESC, optionally per tenant.
            models.Index(fields=["-created"], name="audit_created"),
            models.Index(fields=["tenant", "-created"], name="audit_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"

    @classmethod
    def log(cls, *, actor, action: str, target: str, tenant=None, **detail) -> AuditEvent:
        return cls.objects.create(
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            tenant=tenant,
            action=action,
            target=target,
            detail=detail,
        )
