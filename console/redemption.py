"""Redeeming a code from the tenant console or the operator API: the guessing
throttle (Redis) in front of billing.redemption.redeem.

Every attempt takes one from the person's and from the address's allowance,
in one Lua step that refuses when either is spent, before anything is looked
up; a code that redeems gives its attempt back. So only refused attempts
count (unknown, used, voided, expired codes), and fifty attempts sent at once
cannot all slip past the check before the first is counted. The window starts
at the first refused attempt and lasts REDEMPTION_THROTTLE_WINDOW_S.

Redis unreachable: redemption is refused (fails closed), since the throttle
is what makes guessing codes pointless.
"""

from __future__ import annotations

import logging
import math

import redis
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Tenant
from billing import live_sync
from billing.models import RedemptionCode
from billing.redemption import RedemptionRefused, redeem

log = logging.getLogger(__name__)

# KEYS: the person's counter, the address's counter.
# ARGV: person's limit, address's limit, window (s).
# Returns 0 when admitted, else the seconds until the fuller counter resets.
TAKE = """
for i = 1, 2 do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = tonumber(ARGV[3]) end
    return ttl
  end
end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
return 0
"""

GIVE_BACK = """
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
"""


def _keys(user_id: int, address: str) -> list[str]:
    # One hash tag: the script reads both, and on a Redis Cluster its keys
    # must share a slot (guesses are rare; one slot carries them all).
    return [f"{{redeem}}:fail:user:{user_id}", f"{{redeem}}:fail:addr:{address}"]


def redeem_throttled(*, text: str, tenant: Tenant, user, address: str) -> RedemptionCode:
    """Redeem, unless this person or address has guessed too often lately."""
    keys = _keys(user.pk, address)
    conn = live_sync.client()
    try:
        wait_s = conn.eval(
            TAKE,
            2,
            *keys,
            settings.REDEMPTION_ATTEMPTS_PER_USER,
            settings.REDEMPTION_ATTEMPTS_PER_ADDRESS,
            settings.REDEMPTION_THROTTLE_WINDOW_S,
        )
    except redis.RedisError as exc:
        log.warning("redemption throttle not reachable (%s); redemption refused", exc)
        raise RedemptionRefused(
            _("Codes cannot be redeemed right now. Try again in a few minutes."),
            reason="unavailable",
        ) from None
    if wait_s:
        minutes = max(1, math.ceil(int(wait_s) / 60))
        raise RedemptionRefused(
            ngettext(
                "Too many codes that did not work. Try again in %(minutes)d minute.",
                "Too many codes that did not work. Try again in %(minutes)d minutes.",
                minutes,
            )
            % {"minutes": minutes},
            reason="throttled",
        )
    code = redeem(text=text, tenant=tenant, user=user)
    try:
        conn.eval(GIVE_BACK, 2, *keys)
    except redis.RedisError as exc:  # the credit stands; the attempt stays counted
        log.warning("redemption throttle not reachable after a redemption: %s", exc)
    return code
