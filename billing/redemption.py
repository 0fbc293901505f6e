"""Redemption codes (兑换码): making them, finding one from what a person typed,
and redeeming it into a tenant's balance exactly once.

A code is 20 characters of Crockford's base 32 (100 random bits), shown as
``XXXXX-XXXXX-XXXXX-XXXXX``. Only an HMAC-SHA256 of it is stored, keyed by
a key derived from ``SECRET_KEY`` (Django's ``salted_hmac`` with this
module's salt; ``SECRET_KEY_FALLBACKS`` are tried too, so the secret key can
rotate without stranding unused codes). ``SECRET_KEY`` is never in the
database, so a dump of it can neither redeem a code nor check a guess offline.

The operator's writes (making and voiding batches, with their audit events)
are relay/operations/redemption.py; the guessing throttle is the consoles'
(console/redemption.py). This module is the store and the money.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from accounts.models import AuditEvent, Tenant
from billing import ledger
from billing.models import LedgerEntry, RedemptionBatch, RedemptionCode

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
LENGTH = 20
GROUP = 5
SALT = "billing.redemption.code"
# What people mistype for Crockford's letters (and the separators they add).
_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


class RedemptionRefused(Exception):
    """The code credits nothing; ``message`` says why, for people (translated
    when raised), ``reason`` for programs and logs."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def normalize(text: str) -> str | None:
    """The code's characters as stored, or None when ``text`` cannot be a code."""
    raw = text.strip().upper().translate(_READS_AS)
    if len(raw) != LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    return raw


def digest(raw: str, secret: str | bytes | None = None) -> str:
    return salted_hmac(SALT, raw, secret=secret, algorithm="sha256").hexdigest()


def _digests(raw: str) -> list[str]:
    """The digest under the current key and under every fallback key."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [digest(raw, key) for key in keys]


@dataclass(frozen=True)
class MadeBatch:
    batch: RedemptionBatch
    codes: list[str]  # in the clear: exist only in this object, never stored

    def __repr__(self) -> str:  # the codes never reach a log line
        return f"MadeBatch(batch={self.batch.pk}, codes=<{len(self.codes)} hidden>)"


def make_batch(
    *,
    count: int,
    value_nanos: int,
    expires=None,
    tenant: Tenant | None = None,
    name: str = "",
    created_by=None,
) -> MadeBatch:
    """Store ``count`` new codes of one batch; call inside the caller's transaction."""
    batch = RedemptionBatch.objects.create(
        name=name,
        value_nanos=value_nanos,
        expires=expires,
        tenant=tenant,
        created_by=created_by,
    )
    codes = [new_code() for _ in range(count)]
    RedemptionCode.objects.bulk_create(
        RedemptionCode(batch=batch, digest=digest(normalize(code)), hint=code[-4:])
        for code in codes
    )
    return MadeBatch(batch=batch, codes=codes)


def void(codes: Iterable[RedemptionCode] | None = None, *, batch=None, by=None) -> int:
    """Void unused codes (these, or a whole batch's); returns how many.

    A conditional UPDATE: a redemption holding the row's lock commits first
    and the code is then no longer unused, so a code is never both.
    """
    query = RedemptionCode.objects.unused()
    query = (
        query.filter(batch=batch)
        if batch is not None
        else query.filter(pk__in=[code.pk for code in codes or ()])
    )
    return query.update(status=RedemptionCode.Status.VOIDED, voided=timezone.now(), voided_by=by)


def redeem(*, text: str, tenant: Tenant, user) -> RedemptionCode:
    """Credit ``tenant`` with the code's value, once; RedemptionRefused otherwise.

    The code's row is locked (SELECT ... FOR UPDATE) before its status is
    read: of many sessions redeeming one code at once, the first commits the
    credit and the others, let through one by one, find it redeemed.
    """
    raw = normalize(text)
    if raw is None:
        raise RedemptionRefused(
            _(
                "That is not a redemption code: it has 20 letters and digits, "
                "like ABCDE-FGHJK-MNPQR-STVWX."
            ),
            reason="malformed",
        )
    with transaction.atomic():
        code = (
            RedemptionCode.objects.select_for_update(of=("self",))
            .select_related("batch")
            .filter(digest__in=_digests(raw))
            .first()
        )
        _check(code, tenant)
        now = timezone.now()
        entry = ledger.post(
            tenant=tenant,
            kind=LedgerEntry.Kind.REDEMPTION,
            amount_nanos=code.batch.value_nanos,
            reason=f"…{code.hint} (#{code.batch_id})",
            created_by=user,
        )
        code.status = RedemptionCode.Status.REDEEMED
        code.redeemed_tenant, code.redeemed_by, code.redeemed = tenant, user, now
        code.ledger_entry = entry
        code.save(
            update_fields=[
                "status",
                "redeemed_tenant",
                "redeemed_by",
                "redeemed",
                "ledger_entry",
            ]
        )
        AuditEvent.log(
            actor=user,
            action="code.redeemed",
            target=f"…{code.hint}",
            tenant=tenant,
            batch=code.batch_id,
            amount_nanos=code.batch.value_nanos,
            ledger_entry=entry.pk,
        )
    return code


def _check(code: RedemptionCode | None, tenant: Tenant) -> None:
    if code is None:
        raise RedemptionRefused(
            _("No such redemption code. Check what you typed."), reason="unknown"
        )
    if code.status == RedemptionCode.Status.REDEEMED:
        raise RedemptionRefused(_("This code has been redeemed already."), reason="redeemed")
    if code.status == RedemptionCode.Status.VOIDED:
        raise RedemptionRefused(
            _("This code was voided by the provider and credits nothing."), reason="voided"
        )
    if code.batch.is_expired():
        raise RedemptionRefused(_("This code expired and credits nothing."), reason="expired")
    if code.batch.tenant_id is not None and code.batch.tenant_id != tenant.pk:
        raise RedemptionRefused(_("This code is for another account."), reason="other_tenant")
