"""Notices: operators e-mailed (in each one's language) and a signed webhook
on a channel taken out and put back; owners e-mailed once per crossing of
their low-balance threshold, and once per notice before a key expires.
Mail is Django's locmem backend; the webhook a local HTTP server that checks
the signature as a receiver would."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import ApiKey, Membership
from billing import ledger
from console.models import Profile
from relay.health import state
from relay.models import Channel
from relay.notices import channels as channel_notices
from relay.notices import tasks, tenants, webhook
from tests.helpers import make_channel

pytestmark = pytest.mark.django_db
SECRET = "whsec-test-0123456789"


@pytest.fixture
def operators(django_user_model):
    sam = django_user_model.objects.create_user("sam", "sam@relay.test", "pw", is_staff=True)
    li = django_user_model.objects.create_user("li", "li@relay.test", "pw", is_staff=True)
    Profile.objects.create(user=li, language="zh-hans")
    django_user_model.objects.create_user("nobody", "nobody@relay.test", "pw")  # not staff
    return sam, li


@pytest.fixture
def channel(group, fake_upstream) -> Channel:
    channel = make_channel(group, fake_upstream.base_url(), name="primary")
    state.auto_disable(
        channel_id=channel.pk, reason="quota", detail="429 You exceeded your current quota"
    )
    channel.refresh_from_db()
    return channel


class Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        # What a receiver does: recompute the signature over "<timestamp>.<body>".
        timestamp = self.headers["X-Relay-Timestamp"]
        expected = hmac.new(
            SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        valid = hmac.compare_digest(self.headers["X-Relay-Signature"], f"sha256={expected}")
        self.received.append((valid, json.loads(body)))
        self.send_response(204 if valid else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.RELAY_NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    settings.RELAY_NOTIFY_WEBHOOK_SECRET = SECRET
    yield Receiver.received
    server.shutdown()


def test_operators_are_emailed_in_their_own_language_when_a_channel_is_taken_out(
    operators, channel
):
    tasks.channel_changed(channel.pk, "disabled")
    sent = {message.to[0]: message for message in mail.outbox}
    assert set(sent) == {"sam@relay.test", "li@relay.test"}
    english, chinese = sent["sam@relay.test"], sent["li@relay.test"]
    assert english.subject == "Channel primary was taken out of rotation"
    assert "Reason: Upstream quota exhausted" in english.body
    assert "429 You exceeded your current quota" in english.body
    assert chinese.subject == "渠道 primary 已被移出轮换"
    assert "原因：上游额度已用尽" in chinese.body
    assert channel.credential not in english.body + chinese.body


def test_the_configured_addresses_replace_the_staff_list(operators, channel, settings):
    settings.RELAY_NOTIFY_EMAILS = ["oncall@relay.test", "LI@relay.test"]
    tasks.channel_changed(channel.pk, "enabled")
    sent = {message.to[0]: message.subject for message in mail.outbox}
    assert sent == {
        "oncall@relay.test": "Channel primary is back in rotation",
        "LI@relay.test": "渠道 primary 已恢复轮换",
    }


def test_the_webhook_gets_a_signed_event_a_receiver_can_verify(receiver, channel):
    status = webhook.post(channel_notices.event(channel, "disabled"))
    assert status == 204
    [(valid, event)] = receiver
    assert valid
    assert event["event"] == "channel.disabled"
    assert event["channel"] == {"id": channel.pk, "name": "primary", "kind": "openai"}
    assert event["reason"] == "quota" and event["detail"].startswith("429 ")
    assert event["at"] == channel.disabled_at.isoformat()


def test_a_webhook_with_the_wrong_secret_fails_verification(receiver, channel, settings):
    settings.RELAY_NOTIFY_WEBHOOK_SECRET = "not-the-receivers-secret"
    with pytest.raises(Exception, match="401"):
        webhook.post(channel_notices.event(channel, "enabled"))
    assert receiver[0][0] is False


def test_no_webhook_url_means_no_call(channel, settings):
    settings.RELAY_NOTIFY_WEBHOOK_URL = ""
    assert webhook.post(channel_notices.event(channel, "enabled")) is None


# --- Tenants -------------------------------------------------------------------------


@pytest.fixture
def owners(tenant, owner, member, django_user_model):
    owner.email = "olivia@acme.test"
    owner.save()
    member.email = "max@acme.test"  # a member, not an owner: never e-mailed
    member.save()
    wei = django_user_model.objects.create_user("wei", "wei@acme.test", "pw")
    Membership.objects.create(tenant=tenant, user=wei, role=Membership.Role.OWNER)
    Profile.objects.create(user=wei, language="zh-hans")
    return owner, wei


def move(tenant, nanos: int) -> None:
    ledger.adjust(tenant=tenant, amount_nanos=nanos, reason="test")


def test_owners_hear_of_a_low_balance_once_per_crossing(tenant, owners):
    balance = ledger.balance_nanos(tenant)
    tenant.low_balance_threshold_nanos = balance - 100
    tenant.save()
    assert tenants.check_low_balances() == []  # above it
    move(tenant, -200)
    assert tenants.check_low_balances() == [tenant.pk]
    sent = {message.to[0]: message for message in mail.outbox}
    assert set(sent) == {"olivia@acme.test", "wei@acme.test"}  # owners only
    assert "below" in sent["olivia@acme.test"].subject
    assert "余额低于" in sent["wei@acme.test"].subject
    # Still below, lower still: no second notice for the same crossing.
    move(tenant, -50)
    assert tenants.check_low_balances() == []
    assert len(mail.outbox) == 2
    # Topped up above it, then below again: a new crossing, a new notice.
    move(tenant, 1000)
    assert tenants.check_low_balances() == []
    move(tenant, -1000)
    assert tenants.check_low_balances() == [tenant.pk]
    assert len(mail.outbox) == 4


def test_a_tenant_without_a_threshold_is_never_told(tenant, owners):
    move(tenant, -ledger.balance_nanos(tenant))
    assert tenants.check_low_balances() == [] and mail.outbox == []


def expiring(tenant, group, *, in_hours: float) -> ApiKey:
    key, _secret = ApiKey.issue(
        tenant=tenant,
        group=group,
        name=f"k{in_hours}",
        expires=timezone.now() + dt.timedelta(hours=in_hours),
    )
    return key


def test_owners_hear_of_an_expiring_key_seven_days_and_one_day_before_once_each(
    tenant, group, owners
):
    key = expiring(tenant, group, in_hours=24 * 10)
    now = timezone.now()
    assert tenants.check_expiring_keys(now) == []  # 10 days out
    six_days_out = key.expires - dt.timedelta(days=6, hours=23)
    assert tenants.check_expiring_keys(six_days_out) == [(key.pk, 7)]
    assert tenants.check_expiring_keys(six_days_out) == []  # once
    assert tenants.check_expiring_keys(six_days_out + dt.timedelta(days=3)) == []
    last_day = key.expires - dt.timedelta(hours=20)
    assert tenants.check_expiring_keys(last_day) == [(key.pk, 1)]
    assert tenants.check_expiring_keys(last_day + dt.timedelta(hours=1)) == []
    sent = [(m.to[0], m.subject) for m in mail.outbox]
    assert sorted(sent) == sorted(
        [
            ("olivia@acme.test", "API key k240 expires soon"),
            ("wei@acme.test", "令牌 k240 即将过期"),
        ]
        * 2
    )
    assert "in 20 hours" in mail.outbox[-2].body or "in 20 hours" in mail.outbox[-1].body


def test_a_key_issued_inside_the_last_day_gets_only_the_last_notice(tenant, group, owners):
    key = expiring(tenant, group, in_hours=5)
    assert tenants.check_expiring_keys() == [(key.pk, 1)]
    assert tenants.check_expiring_keys() == []


def test_revoked_keys_and_keys_without_expiry_are_never_noticed(tenant, group, owners):
    key = expiring(tenant, group, in_hours=30)
    key.revoke()
    ApiKey.issue(tenant=tenant, group=group, name="forever")
    assert tenants.check_expiring_keys() == [] and mail.outbox == []
