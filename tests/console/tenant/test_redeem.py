"""The tenant console's redemption page (/console/redeem/): an owner redeems a
code and sees the balance move; a member cannot; refusals are clear."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing import ledger
from billing.models import LedgerEntry, RedemptionCode
from relay.operations import redemption as operations
from tests.console.tenant.helpers import signed_in
from tests.helpers import STARTING_BALANCE_NANOS

pytestmark = pytest.mark.django_db

VALUE = 20 * 10**9


def a_code(**fields) -> str:
    return operations.create_batch(actor=None, count=1, value_nanos=VALUE, **fields).codes[0]


def test_an_owner_redeems_a_code_and_sees_the_balance_move(client, owner, tenant):
    signed_in(client, owner)
    code = a_code()
    before = client.get(reverse("console:redeem")).content.decode()
    assert "100.00 USD" in before
    response = client.post(reverse("console:redeem"), {"code": code}, follow=True)
    page = response.content.decode()
    assert f"Code …{code[-4:]} redeemed: 20.00 USD added. The balance is now 120.00 USD." in page
    assert '<div class="big" id="balance">120.00 USD</div>' in page
    assert f"…{code[-4:]}" in page.split('id="redeemed"')[1]
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS + VALUE
    dashboard = client.get(reverse("console:dashboard")).content.decode()
    assert '<div class="big" id="balance">120.00 USD</div>' in dashboard


def test_the_page_reads_in_chinese(client, owner, tenant):
    signed_in(client, owner)
    code = a_code()
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
    response = client.post(reverse("console:redeem"), {"code": code}, follow=True, **zh)
    page = response.content.decode()
    assert "兑换成功：已充值 20.00 美元，当前余额 120.00 美元。" in page
    again = client.post(reverse("console:redeem"), {"code": code}, **zh).content.decode()
    assert "该兑换码已被兑换。" in again


def test_refused_codes_say_why_and_credit_nothing(client, owner, tenant, outsider_tenant):
    signed_in(client, owner)
    voided = a_code()
    operations.void_code(actor=None, code=RedemptionCode.objects.get())
    theirs = a_code(tenant=outsider_tenant)
    for text, message in [
        (voided, "This code was voided by the provider and credits nothing."),
        (theirs, "This code is for another account."),
        ("ABCDE-FGHJK-MNPQR-STVWX", "No such redemption code. Check what you typed."),
        ("hello", "That is not a redemption code"),
        ("", "This field is required."),
    ]:
        response = client.post(reverse("console:redeem"), {"code": text})
        assert response.status_code == 200
        assert message in response.content.decode(), text
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDEMPTION).exists()


def test_a_member_gets_404_and_cannot_redeem(client, member, tenant):
    signed_in(client, member)
    code = a_code()
    assert client.get(reverse("console:redeem")).status_code == 404
    assert client.post(reverse("console:redeem"), {"code": code}).status_code == 404
    assert RedemptionCode.objects.get().status == "unused"
    dashboard = client.get(reverse("console:dashboard")).content.decode()
    assert reverse("console:redeem") not in dashboard


def test_signed_out_visitors_are_sent_to_sign_in(client, tenant):
    code = a_code()
    response = client.post(reverse("console:redeem"), {"code": code})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert RedemptionCode.objects.get().status == "unused"
