"""Words for the codes both consoles show: statuses, roles, ledger kinds, the
source of a token count. The stored code stays as it is (English, stable, what
the API and the CSV files carry); a person reads it in their language.

``{{ key.state|label }}`` in templates; a code without a word shows as itself.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import pgettext_lazy

LABELS: dict[str, Promise] = {
    # States of keys, tenants, channels and requests (lower case: badges).
    "active": pgettext_lazy("state", "active"),
    "revoked": pgettext_lazy("state", "revoked"),
    "expired": pgettext_lazy("state", "expired"),
    "suspended": pgettext_lazy("state", "suspended"),
    "enabled": pgettext_lazy("state", "enabled"),
    "disabled": pgettext_lazy("state", "disabled"),
    # A channel the relay took out of rotation, and one it never takes out.
    "auto_disabled": pgettext_lazy("state", "auto-disabled"),
    "pinned": pgettext_lazy("state", "pinned"),
    "served": pgettext_lazy("state", "served"),
    "failed": pgettext_lazy("state", "failed"),
    # States of redemption codes ("expired" is above).
    "unused": pgettext_lazy("state", "unused"),
    "redeemed": pgettext_lazy("state", "redeemed"),
    "voided": pgettext_lazy("state", "voided"),
    # Roles in a tenant.
    "owner": pgettext_lazy("role", "owner"),
    "member": pgettext_lazy("role", "member"),
    # Kinds of ledger entries.
    "topup": pgettext_lazy("ledger", "top-up"),
    "adjustment": pgettext_lazy("ledger", "adjustment"),
    "usage": pgettext_lazy("ledger", "usage"),
    "refund": pgettext_lazy("ledger", "refund"),
    "redemption": pgettext_lazy("ledger", "redemption code"),
    # What a report's table is broken down by (its first column).
    "day": pgettext_lazy("breakdown", "day"),
    "tenant": pgettext_lazy("breakdown", "tenant"),
    "model": pgettext_lazy("breakdown", "model"),
    "channel": pgettext_lazy("breakdown", "channel"),
    "key": pgettext_lazy("breakdown", "key"),
    # Kinds of channels that need a word; the others keep their provider's name.
    "openai": pgettext_lazy("channel kind", "OpenAI-compatible"),
    # Where a usage record's token count came from.
    "prompt_tokens": pgettext_lazy("tokens", "upstream usage.prompt_tokens"),
    "total_tokens": pgettext_lazy("tokens", "upstream usage.total_tokens"),
    "counted": pgettext_lazy("tokens", "the relay's own count"),
}


def label(code: str | None, default: str | None = None) -> str:
    """The word for ``code``; else ``default`` (a model's own label), else the code."""
    if code is None:
        return ""
    word = LABELS.get(str(code))
    if word is not None:
        return str(word)
    return str(default) if default is not None else str(code)
