"""Why a channel failed, as channel health counts it (relay/health/,
docs/operator.md "Channel health").

- ``credential``: the upstream refused the channel's credential (401/403 in
  any dialect, a provider's own "bad key" answer such as Gemini's 400
  ``API_KEY_INVALID``, or a credential the provider cannot use at all).
- ``quota``: the upstream account has run out of money or quota (402, or a
  403 or 429 whose words say so: OpenAI's ``insufficient_quota``, "exceeded your
  current quota", "insufficient balance"...).
- ``failures``: broken or unreachable (timeouts, connection errors, 5xx,
  404, an unreadable answer): counted, and only a run of them disables.
- None: not the channel's fault. A 429 without quota words is a rate limit:
  the channel is busy, and taking it out would only push its load elsewhere.

Worded in the providers' own error bodies, whatever their shape, so the
pipeline never branches on a provider's name.
"""

from __future__ import annotations

CREDENTIAL = "credential"
QUOTA = "quota"
FAILURES = "failures"

CREDENTIAL_STATUSES = {401, 403}
# Lowercase phrases of out-of-money answers: OpenAI and Azure
# (insufficient_quota, "You exceeded your current quota, please check your
# plan and billing details"), Gemini's free tier (the same words), Jina and
# SiliconFlow-style relays ("insufficient balance"), Cohere's trial keys,
# and the Chinese relays' 余额不足 / 额度.
QUOTA_WORDS = (
    "insufficient_quota",
    "current quota",
    "insufficient balance",
    "insufficient_balance",
    "billing",
    "out of credits",
    "credit balance",
    "payment required",
    "trial key",
    "余额不足",
    "额度",
)


def of_status(status: int, body: bytes, *, blamed_on_channel: bool = False) -> str | None:
    """The cause of an upstream's non-200 answer (see the module's docstring)."""
    if status == 402 or status in (403, 429) and _says_quota(body):
        return QUOTA
    if status in CREDENTIAL_STATUSES:
        return CREDENTIAL
    if status == 429:
        return None
    if blamed_on_channel:  # a 4xx the provider says is the channel's own (a bad key)
        return CREDENTIAL
    return FAILURES


def _says_quota(body: bytes) -> bool:
    text = body[:4000].decode("utf-8", "replace").lower()
    return any(word in text for word in QUOTA_WORDS)
