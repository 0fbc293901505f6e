"""The tenant console's notifications page: an owner sets the low-balance
alert (audited, in currency units), clears it, and is told of bad input."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Tenant
from tests.console.tenant.helpers import signed_in

pytestmark = pytest.mark.django_db


def test_an_owner_sets_and_clears_the_low_balance_alert(client, owner, tenant):
    page = signed_in(client, owner)
    url = reverse("console:notifications")
    assert "Low balance alert below" in page.get(url).content.decode()
    assert page.post(url, {"threshold": "12.5"}).status_code == 302
    tenant.refresh_from_db()
    assert tenant.low_balance_threshold_nanos == 12_500_000_000
    assert not tenant.low_balance_notified
    event = AuditEvent.objects.get(action="tenant.low_balance_threshold", tenant=tenant)
    assert event.actor == owner and event.detail == {"threshold_nanos": 12_500_000_000}
    assert 'value="12.5"' in page.get(url).content.decode()
    page.post(url, {"threshold": ""})
    tenant.refresh_from_db()
    assert tenant.low_balance_threshold_nanos is None
    # Saving the same value again changes (and audits) nothing.
    page.post(url, {"threshold": ""})
    assert AuditEvent.objects.filter(action="tenant.low_balance_threshold").count() == 2


def test_a_new_threshold_rearms_the_alert(client, owner, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(
        low_balance_threshold_nanos=1, low_balance_notified=True
    )
    signed_in(client, owner).post(reverse("console:notifications"), {"threshold": "3"})
    tenant.refresh_from_db()
    assert tenant.low_balance_threshold_nanos == 3 * 10**9 and not tenant.low_balance_notified


@pytest.mark.parametrize("bad", ["-1", "abc", "1e30", "0.0000000001"])
def test_bad_input_is_a_clear_error_not_a_500(client, owner, tenant, bad):
    response = signed_in(client, owner).post(reverse("console:notifications"), {"threshold": bad})
    assert response.status_code == 200
    assert 'class="errorlist"' in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.low_balance_threshold_nanos is None


def test_the_page_reads_in_chinese(client, owner, tenant):
    page = signed_in(client, owner).get(
        reverse("console:notifications"), HTTP_ACCEPT_LANGUAGE="zh-Hans"
    )
    text = page.content.decode()
    assert "余额低于此值时提醒" in text and "即将过期的令牌" in text
