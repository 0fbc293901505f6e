"""The guessing throttle in front of redemption (console/redemption.py): codes
that do not work are counted per person and per address in Redis; past the
limit every attempt is refused with a clear message, a good code included,
until the window ends. Codes that work do not count."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from billing import ledger
from billing.models import LedgerEntry
from billing.redemption import RedemptionRefused
from console import redemption as throttle
from relay.operations import redemption as operations
from tests.helpers import STARTING_BALANCE_NANOS

pytestmark = pytest.mark.django_db

WRONG = "ABCDE-FGHJK-MNPQR-STVWX"


def codes(count: int) -> list[str]:
    return operations.create_batch(actor=None, count=count, value_nanos=10**9).codes


def attempt(text: str, user, tenant, address: str = "203.0.113.7"):
    try:
        return throttle.redeem_throttled(text=text, tenant=tenant, user=user, address=address)
    except RedemptionRefused as refusal:
        return refusal


@pytest.fixture
def limits(settings):
    settings.REDEMPTION_ATTEMPTS_PER_USER = 3
    settings.REDEMPTION_ATTEMPTS_PER_ADDRESS = 5
    settings.REDEMPTION_THROTTLE_WINDOW_S = 600


def test_a_person_who_guesses_too_often_is_stopped_even_with_a_good_code(limits, tenant, owner):
    [good] = codes(1)
    assert [attempt(WRONG, owner, tenant).reason for _ in range(3)] == ["unknown"] * 3
    stopped = attempt(good, owner, tenant)
    assert stopped.reason == "throttled"
    assert stopped.message == "Too many codes that did not work. Try again in 10 minutes."
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS
    # The window ends: the good code works.
    redis.Redis.from_url(settings.REDIS_URL).delete(*throttle._keys(owner.pk, "203.0.113.7"))
    assert attempt(good, owner, tenant).status == "redeemed"


def test_an_address_is_stopped_across_people(
    limits, tenant, owner, member, outsider, outsider_tenant
):
    reasons = [
        attempt(WRONG, user, where).reason
        for user, where in [(owner, tenant), (member, tenant), (outsider, outsider_tenant)]
        for _ in range(2)
    ]
    # Five refused codes from one address, each person under their own limit of three.
    assert reasons == ["unknown"] * 5 + ["throttled"]
    # From another address each person still has their own limit.
    elsewhere = "198.51.100.1"
    assert attempt(WRONG, member, tenant, address=elsewhere).reason == "unknown"
    assert attempt(WRONG, member, tenant, address=elsewhere).reason == "throttled"


def test_codes_that_work_do_not_count(limits, tenant, owner):
    for code in codes(6):
        assert attempt(code, owner, tenant).status == "redeemed"
    assert attempt(WRONG, owner, tenant).reason == "unknown"
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDEMPTION).count() == 6


def test_the_message_reads_in_chinese(limits, tenant, owner):
    from django.utils import translation

    for _ in range(3):
        attempt(WRONG, owner, tenant)
    with translation.override("zh-hans"):
        assert attempt(WRONG, owner, tenant).message == "无效兑换码尝试次数过多，请 10 分钟后再试。"


def test_without_redis_nothing_is_redeemed(tenant, owner, settings, monkeypatch):
    [good] = codes(1)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(throttle.live_sync, "client", lambda: dead)
    refusal = attempt(good, owner, tenant)
    assert refusal.reason == "unavailable" and "right now" in refusal.message
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS
