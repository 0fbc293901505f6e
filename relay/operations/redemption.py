"""The operator's writes to redemption codes (兑换码): making a batch and
voiding unused codes, each with its audit event in the same transaction;
and the list of batches both operator doors show.

The store and the redemption itself are billing/redemption.py.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Tenant
from billing import redemption
from billing.models import RedemptionBatch, RedemptionCode
from relay.operations.actions import MAX_NANOS, ActionRefused, audit

MAX_CODES_PER_BATCH = 1000

# Actions this module writes (the audit page offers them as filters).
ACTIONS = ("codes.created", "codes.voided", "code.voided", "code.redeemed")


def batches() -> QuerySet[RedemptionBatch]:
    """The batches, newest first, each with its count of codes by status: the
    operator console's and the operator API's lists."""
    status = RedemptionCode.Status
    return (
        RedemptionBatch.objects.select_related("tenant")
        .annotate(
            unused=Count("codes", filter=Q(codes__status=status.UNUSED)),
            redeemed=Count("codes", filter=Q(codes__status=status.REDEEMED)),
            voided=Count("codes", filter=Q(codes__status=status.VOIDED)),
        )
        .order_by("-created", "-pk")
    )


def create_batch(
    *,
    actor,
    count: int,
    value_nanos: int,
    expires: dt.datetime | None = None,
    tenant: Tenant | None = None,
    name: str = "",
) -> redemption.MadeBatch:
    """Make ``count`` codes; the result holds them in the clear, once."""
    if not 1 <= count <= MAX_CODES_PER_BATCH:
        raise ActionRefused(
            _("Between 1 and %(max)s codes at once.") % {"max": MAX_CODES_PER_BATCH},
            field="count",
        )
    if not 0 < value_nanos <= MAX_NANOS:
        raise ActionRefused(_("A code's value must be more than zero."), field="value")
    if expires is not None and expires <= timezone.now():
        raise ActionRefused(_("The expiry must be in the future."), field="expires")
    with transaction.atomic():
        made = redemption.make_batch(
            count=count,
            value_nanos=value_nanos,
            expires=expires,
            tenant=tenant,
            name=name,
            created_by=actor,
        )
        audit(
            actor=actor,
            action="codes.created",
            target=f"batch {made.batch.pk}",
            tenant=tenant,
            count=count,
            value_nanos=value_nanos,
            name=name,
            expires=expires.isoformat() if expires else None,
        )
    return made


def void_code(*, actor, code: RedemptionCode) -> bool:
    """Void one unused code; False when it was redeemed or voided already."""
    with transaction.atomic():
        voided = redemption.void([code], by=actor)
        if voided:
            audit(
                actor=actor,
                action="code.voided",
                target=f"…{code.hint}",
                tenant=code.batch.tenant,
                batch=code.batch_id,
            )
    return bool(voided)


def void_batch(*, actor, batch: RedemptionBatch) -> int:
    """Void every code of the batch still unused; returns how many."""
    with transaction.atomic():
        voided = redemption.void(batch=batch, by=actor)
        if voided:
            audit(
                actor=actor,
                action="codes.voided",
                target=f"batch {batch.pk}",
                tenant=batch.tenant,
                count=voided,
            )
    return voided
