"""The operator console's channels: a credential stored but never rendered, enabled
and disabled, tested against the upstream (and the egress guard), their error
rate; and an edit page saved unchanged changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, GroupModel
from billing.models import ChannelDaily
from relay.models import Channel
from tests.console.operator.helpers import events, operator_urls
from tests.helpers import LARGE, SMALL, make_channel

pytestmark = pytest.mark.django_db

CREDENTIAL = "sk-upstream-TOP-SECRET-credential-7f3a9c"


def channel_post(
    name: str,
    base_url: str,
    *,
    credential: str = "",
    groups=(),
    rows: list[tuple[str, str]] = ((SMALL, ""),),
    **fields,
) -> dict:
    data = {
        "name": name,
        "kind": "openai",
        "base_url": base_url,
        "credential": credential,
        "priority": "0",
        "weight": "1",
        "enabled": "on",
        "groups": [g.pk for g in groups],
        "models-TOTAL_FORMS": str(len(rows)),
        "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
    }
    for index, (model, upstream) in enumerate(rows):
        data[f"models-{index}-model"] = model
        data[f"models-{index}-upstream_model"] = upstream
    data.update(fields)
    return data


# --- Channels --------------------------------------------------------------------


def test_a_channel_credential_is_stored_but_never_rendered(staff_client, group, fake_upstream):
    response = staff_client.post(
        reverse("operator:channel_create"),
        channel_post(
            "backup",
            fake_upstream.base_url(),
            credential=CREDENTIAL,
            groups=[group],
            rows=[(SMALL, ""), (LARGE, "large-v3")],
        ),
    )
    channel = Channel.objects.get(name="backup")
    assert response.status_code == 302
    assert channel.credential == CREDENTIAL
    assert dict(channel.models.values_list("model", "upstream_model")) == {
        SMALL: "",
        LARGE: "large-v3",
    }
    # Blank on edit keeps it; every page an operator can open leaves it out.
    staff_client.post(
        reverse("operator:channel", args=[channel.pk]),
        channel_post("backup", fake_upstream.base_url(), groups=[group], priority="5"),
    )
    channel.refresh_from_db()
    assert channel.credential == CREDENTIAL and channel.priority == 5
    pages = [staff_client.get(url) for url in operator_urls(staff_client)]
    pages.append(
        staff_client.post(reverse("operator:channel_test", args=[channel.pk]), {"model": SMALL})
    )
    pages.append(
        staff_client.post(
            reverse("operator:channel", args=[channel.pk]),
            channel_post("backup", "not a url", credential=CREDENTIAL),
        )
    )
    for page in pages:
        assert page.status_code in (200, 302, 405), page.request["PATH_INFO"]
        assert CREDENTIAL not in page.content.decode(), page.request["PATH_INFO"]
    assert sum(page.status_code == 200 for page in pages) >= 17
    for event in AuditEvent.objects.all():
        assert CREDENTIAL not in str(event.detail) + event.target
    assert [e.action for e in AuditEvent.objects.filter(target="backup").order_by("pk")] == [
        "channel.created",
        "channel.updated",
    ]


def test_a_new_credential_replaces_the_old_one(staff_client, channel, group):
    staff_client.post(
        reverse("operator:channel", args=[channel.pk]),
        channel_post(
            "main",
            channel.base_url,
            credential="sk-replacement-0002",
            groups=[group],
            rows=[(model, "") for model in (SMALL, LARGE, "text-embedding-ada-002")],
        ),
    )
    channel.refresh_from_db()
    assert channel.credential == "sk-replacement-0002"
    [event] = events("channel.updated")
    assert event.detail["changed"] == ["credential"]


def test_enabling_and_disabling_a_channel_is_audited(staff_client, channel):
    staff_client.post(reverse("operator:channel_toggle", args=[channel.pk]), {"enabled": "0"})
    channel.refresh_from_db()
    assert not channel.enabled
    staff_client.post(reverse("operator:channel_toggle", args=[channel.pk]), {"enabled": "1"})
    channel.refresh_from_db()
    assert channel.enabled
    assert [e.action for e in AuditEvent.objects.order_by("pk")] == [
        "channel.disabled",
        "channel.enabled",
    ]


def test_the_channel_test_shows_success_and_latency(staff_client, channel):
    response = staff_client.post(
        reverse("operator:channel_test", args=[channel.pk]), {"model": SMALL}
    )
    page = response.content.decode()
    assert "Success" in page
    assert re.search(r'id="latency">\d+ ms<', page)
    assert "<dd>1536</dd>" in page  # dimensions
    assert "prompt_tokens 10, total_tokens 10" in page


def test_the_channel_test_shows_the_upstream_error(staff_client, group, fake_upstream):
    broken = make_channel(group, fake_upstream.base_url("status=503"), name="broken")
    response = staff_client.post(
        reverse("operator:channel_test", args=[broken.pk]), {"model": SMALL}
    )
    page = response.content.decode()
    assert "Failed" in page and "Upstream status 503" in page
    assert re.search(r'id="latency">\d+ ms<', page)


def test_the_channel_test_of_an_unreachable_upstream_says_so(staff_client, group):
    dead = make_channel(group, "http://127.0.0.1:9/v1", name="dead")
    response = staff_client.post(reverse("operator:channel_test", args=[dead.pk]), {"model": SMALL})
    assert "Connection error" in response.content.decode()


def test_the_channel_test_obeys_the_egress_guard(staff_client, group):
    # Saved past the form's validation, as an old row might be.
    metadata = make_channel(group, "http://169.254.169.254/v1", name="metadata")
    response = staff_client.post(
        reverse("operator:channel_test", args=[metadata.pk]), {"model": SMALL}
    )
    assert "Refused by the egress guard" in response.content.decode()
    refused = staff_client.post(
        reverse("operator:channel_create"),
        channel_post("inside", "http://169.254.169.254/latest", groups=[group]),
    )
    assert refused.status_code == 200 and "not allowed" in refused.content.decode()
    assert not Channel.objects.filter(name="inside").exists()


def test_channels_show_their_recent_error_rate(staff_client, tenant, group, channel):
    today = dt.datetime.now(dt.UTC).date()
    ChannelDaily.objects.create(day=today, channel_id=channel.pk, attempts=8, failures=2)
    ChannelDaily.objects.create(
        day=today - dt.timedelta(days=5), channel_id=channel.pk, attempts=100, failures=100
    )
    page = staff_client.get(reverse("operator:channels")).content.decode()
    assert "25.00%" in page  # 2 of 8; the old day is outside the window


class _FormValues(HTMLParser):
    """What a browser would submit from the page's main form (``class="card stacked"``)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._in_form = False
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and "stacked" in (attrs.get("class") or ""):
            self._in_form = True
        if not self._in_form or not attrs.get("name") and tag != "option":
            return
        if tag == "input" and attrs.get("type") not in ("submit", "button"):
            checkable = attrs.get("type") in ("checkbox", "radio")
            if checkable and "checked" not in attrs:
                return
            value = attrs.get("value", "on" if checkable else "")
            self.data.setdefault(attrs["name"], []).append(value or "")
        elif tag == "select":
            self._select = attrs["name"]
        elif tag == "option" and self._select and "selected" in attrs:
            self.data.setdefault(self._select, []).append(attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None


def resubmit(client, url: str):
    scraper = _FormValues()
    scraper.feed(client.get(url).content.decode())
    return client.post(url, scraper.data)


def test_saving_an_edit_page_unchanged_changes_nothing(staff_client, tenant, group, channel):
    ChannelModel = channel.models.model
    ChannelModel.objects.filter(channel=channel, model=LARGE).update(upstream_model="large-v3")
    GroupModel.objects.filter(group=group, model=SMALL).update(price_per_mtok_nanos=25_000_000)
    before = (
        list(channel.models.order_by("model").values_list("model", "upstream_model")),
        list(group.models.order_by("model").values_list("model", "price_per_mtok_nanos")),
        channel.credential,
    )
    for url in (
        reverse("operator:channel", args=[channel.pk]),
        reverse("operator:group", args=[group.pk]),
        reverse("operator:tenant_edit", args=[tenant.pk]),
    ):
        assert resubmit(staff_client, url).status_code == 302, url
    channel.refresh_from_db()
    after = (
        list(channel.models.order_by("model").values_list("model", "upstream_model")),
        list(group.models.order_by("model").values_list("model", "price_per_mtok_nanos")),
        channel.credential,
    )
    assert after == before
    assert list(AuditEvent.objects.values_list("action", "detail")) == []
