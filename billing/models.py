"""Prices and usage records. Amounts are integers of nano-units (10^-9) of the
operator's currency; prices are per million tokens."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import ApiKey, Group, Tenant


class BasePrice(models.Model):
    """The operator's list price of a model; groups may apply a ratio to it."""

    model = models.CharField(max_length=200, unique=True)
    price_per_mtok_nanos = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price_per_mtok_nanos__gte=0), name="base_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.price_per_mtok_nanos} nanos/Mtok"


class UsageRecordQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> UsageRecordQuerySet:
        return self.filter(tenant=tenant)

    def served(self) -> UsageRecordQuerySet:
        return self.filter(status=UsageRecord.Status.SERVED)


class UsageRecord(models.Model):
    """One request the relay answered from an upstream, or failed to."""

    class Status(models.TextChoices):
        SERVED = "served"
        # Every channel failed; kept (at cost 0) for error rates.
        FAILED = "failed"

    class TokenSource(models.TextChoices):
        PROMPT_TOKENS = "prompt_tokens", "upstream usage.prompt_tokens"
        TOTAL_TOKENS = "total_tokens", "upstream usage.total_tokens"
        COUNTED = "counted", "the relay's own count"

    request_id = models.CharField(max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="usage_records")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="usage_records")
    group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="usage_records")
    # A plain id, not a foreign key: billing does not depend on the relay app,
    # and a record outlives the channel that served it.
    channel_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, help_text="The model the client asked for.")
    served_model = models.CharField(max_length=200, blank=True)
    input_count = models.PositiveIntegerField()
    counted_tokens = models.PositiveIntegerField(help_text="The relay's own tiktoken count.")
    tokens = models.PositiveIntegerField(help_text="The tokens billed at the full price.")
    # Items answered from the embedding cache, and their tokens (as counted),
    # billed at the group's cache price, kept beside the full-price ones.
    cached_items = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cached_price_per_mtok_nanos = models.BigIntegerField(default=0)
    token_source = models.CharField(max_length=16, choices=TokenSource.choices)
    price_per_mtok_nanos = models.BigIntegerField()
    cost_nanos = models.BigIntegerField()
    latency_ms = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices)
    end_user = models.CharField(max_length=256, blank=True, help_text="The request's `user`.")
    created = models.DateTimeField(default=timezone.now)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        constraints = [
            # A redelivered usage event must not bill twice. With created: the
            # table is partitioned by month of created (billing/partitions.py),
            # and every writer takes created from the event, so a redelivery
            # has the same pair.
            models.UniqueConstraint(
                fields=["request_id", "created"], name="usage_request_id_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(cost_nanos__gte=0), name="usage_cost_not_negative"
            ),
        ]
        indexes = [
            # Tenant usage pages and billing ranges: WHERE tenant = ? AND created BETWEEN.
            models.Index(fields=["tenant", "created"], name="usage_tenant_created"),
            # Per-key usage: WHERE api_key = ? ORDER BY created.
            models.Index(fields=["api_key", "created"], name="usage_key_created"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.tokens} tok"


class Balance(models.Model):
    """A tenant's prepaid balance: always the sum of its ledger entries.

    The request path reserves and spends money against a live copy in Redis
    (billing/live.py), which is ahead of this row by the usage events still
    queued; workers bring this row up to date.
    """

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, primary_key=True, related_name="balance"
    )
    balance_nanos = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance_nanos__gte=0), name="balance_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.balance_nanos} nanos"


class LedgerEntryQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> LedgerEntryQuerySet:
        return self.filter(tenant=tenant)

    def not_live(self) -> LedgerEntryQuerySet:
        return self.filter(live_applied=False)


class LedgerEntry(models.Model):
    """One movement of a tenant's balance. Positive credits, negative debits."""

    class Kind(models.TextChoices):
        TOPUP = "topup"
        ADJUSTMENT = "adjustment"
        USAGE = "usage"
        REFUND = "refund"
        # A redemption code (兑换码) a tenant's owner redeemed: billing/redemption.py.
        REDEMPTION = "redemption"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount_nanos = models.BigIntegerField()
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Usage debits already taken from the live (Redis) balance when they were
    # served; every other entry is applied to it after it commits.
    live_applied = models.BooleanField(default=False)
    # How many usage records a usage debit covers (one per worker batch).
    request_count = models.PositiveIntegerField(default=0)
    # Set on a debit for one request billed straight into PostgreSQL (Redis
    # was unreachable at settle time): its live application is keyed by it.
    request_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind="adjustment") | ~models.Q(reason=""),
                name="ledger_adjustment_has_reason",
            ),
        ]
        indexes = [
            # The tenant's ledger page: WHERE tenant = ? ORDER BY created DESC.
            models.Index(fields=["tenant", "-created"], name="ledger_tenant_created"),
            # The live-balance sync: WHERE live_applied = false.
            models.Index(
                fields=["id"], condition=models.Q(live_applied=False), name="ledger_not_live"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.kind} {self.amount_nanos}"


class DailyUsage(models.Model):
    """Usage rolled up per day, tenant, key, model and channel.

    Written by the same transaction that writes the usage records it counts
    (billing/usage.py), so it is exact, never a second pass that can drift;
    reports over millions of records read these rows instead.
    """

    day = models.DateField()
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="daily_usage")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="daily_usage")
    model = models.CharField(max_length=200)
    channel_id = models.BigIntegerField(null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    cost_nanos = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "tenant", "api_key", "model", "channel_id"],
                nulls_distinct=False,
                name="daily_usage_unique",
            ),
        ]
        indexes = [
            # Operator reports: WHERE day BETWEEN ... (all tenants).
            models.Index(fields=["day"], name="daily_usage_day"),
            # Tenant dashboards: WHERE tenant = ? AND day BETWEEN ...
            models.Index(fields=["tenant", "day"], name="daily_usage_tenant_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tenant_id} {self.model}: {self.requests}"


class ChannelDaily(models.Model):
    """Every upstream attempt per channel and day, failed or not.

    A request that failed on one channel and was served by another counts
    once on each; this is what a channel's error rate is made of. Written in
    the transaction that writes the requests' usage records.
    """

    day = models.DateField()
    channel_id = models.BigIntegerField()
    attempts = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "channel_id"], name="channel_daily_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} channel {self.channel_id}: {self.failures}/{self.attempts}"


class RedemptionBatch(models.Model):
    """Redemption codes (兑换码) an operator created at once: one value, one
    expiry, and optionally the one tenant that may redeem them."""

    name = models.CharField(max_length=200, blank=True, help_text="The operator's note.")
    value_nanos = models.BigIntegerField()
    expires = models.DateTimeField(null=True, blank=True)
    # Only this tenant may redeem the batch's codes; any tenant when null.
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(value_nanos__gt=0), name="redemption_value_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} {self.name}".strip()

    def is_expired(self, now=None) -> bool:
        return self.expires is not None and self.expires <= (now or timezone.now())


class RedemptionCodeQuerySet(models.QuerySet):
    def unused(self) -> RedemptionCodeQuerySet:
        return self.filter(status=RedemptionCode.Status.UNUSED)


class RedemptionCode(models.Model):
    """One code. Only its keyed digest is stored (billing/redemption.py says
    which key): a dump of this table redeems nothing and tests no guess."""

    class Status(models.TextChoices):
        UNUSED = "unused"
        REDEEMED = "redeemed"
        VOIDED = "voided"

    batch = models.ForeignKey(RedemptionBatch, on_delete=models.PROTECT, related_name="codes")
    digest = models.CharField(max_length=64, unique=True)
    # The code's last four characters, so that people can tell codes apart.
    hint = models.CharField(max_length=8)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNUSED)
    redeemed_tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="redeemed_codes"
    )
    redeemed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    redeemed = models.DateTimeField(null=True, blank=True)
    # The credit: one ledger entry per code, never two (the column is unique).
    ledger_entry = models.OneToOneField(
        LedgerEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="redemption_code",
    )
    voided = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = RedemptionCodeQuerySet.as_manager()

    class Meta:
        constraints = [
            # A redeemed code names its tenant, time and credit; no other code has them.
            models.CheckConstraint(
                condition=(
                    models.Q(
                        status="redeemed",
                        redeemed_tenant__isnull=False,
                        redeemed__isnull=False,
                        ledger_entry__isnull=False,
                    )
                    | models.Q(
                        ~models.Q(status="redeemed"),
                        redeemed_tenant__isnull=True,
                        ledger_entry__isnull=True,
                    )
                ),
                name="redemption_code_redeemed_complete",
            ),
        ]
        indexes = [
            # A batch's page and its void: WHERE batch = ? (AND status = 'unused').
            models.Index(fields=["batch", "status"], name="redemption_code_batch"),
        ]

    def __str__(self) -> str:
        return f"…{self.hint} ({self.status})"
