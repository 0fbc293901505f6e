"""The config file writes through the consoles' own functions (relay/operations):
their base-URL guard, their price rule, their audit events and their top-up."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from accounts.models import AuditEvent, Group, Tenant
from billing.models import LedgerEntry
from relay.config.tenants import OPENING_BALANCE_REASON
from relay.models import Channel
from relay.operations import actions
from tests.helpers import balance_row
from tests.relay.config.example import EXAMPLE, example

METADATA_URL = "http://169.254.169.254/"
OPENING_NANOS = 25 * 10**9  # the example's balance: "25.00"


def consoles_refusal(**save) -> str:
    """What the operator console shows for the same change (its save function)."""
    with pytest.raises(actions.ActionRefused) as refused:
        save.pop("function")(actor=None, **save)
    return refused.value.message


@pytest.mark.django_db
def test_a_metadata_base_url_is_refused_with_the_consoles_reason_and_nothing_written(apply):
    reason = consoles_refusal(
        function=actions.save_channel,
        channel=None,
        fields={"name": "metadata", "kind": "openai", "base_url": METADATA_URL},
    )
    assert "cloud metadata" in reason
    config = example()
    config["channels"]["local-bge"]["base_url"] = METADATA_URL

    with pytest.raises(CommandError) as raised:
        apply(config)

    assert str(raised.value).endswith(f": channels.local-bge.base_url: {reason}")
    # Groups and prices came before the channel in the file: all rolled back.
    assert not Group.objects.exists() and not Channel.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_every_event_of_an_apply_is_the_config_doors_and_an_identical_apply_writes_none(apply):
    first = apply(EXAMPLE)
    events = AuditEvent.objects.count()

    second = apply(EXAMPLE)

    assert all(line.startswith("created ") for line in first)
    assert events >= len(first)
    assert AuditEvent.objects.exclude(detail__door="config").count() == 0
    assert all(line.startswith("unchanged ") for line in second) and len(second) == len(first)
    assert AuditEvent.objects.count() == events

    config = example()
    config["groups"]["vip"]["rpm"] = 7000
    config["tenants"]["acme"]["status"] = "suspended"
    lines = apply(config)

    assert "updated group vip (rpm)" in lines
    assert "updated tenant acme (status)" in lines
    # The consoles' own actions, marked with the door and no actor.
    [group] = AuditEvent.objects.filter(action="group.updated")
    [suspended] = AuditEvent.objects.filter(action="tenant.suspended")
    assert group.detail["changed"] == ["limit_rpm"] and group.detail["door"] == "config"
    assert suspended.detail["door"] == "config" and suspended.actor is None
    assert Tenant.objects.get(slug="acme").status == "suspended"


@pytest.mark.django_db
def test_a_price_in_the_file_follows_the_consoles_price_rule(apply):
    config = example()
    # Own price for one model, base price times the ratio for the other.
    config["groups"]["default"]["price_ratio"] = "1.5"
    config["groups"]["default"]["prices"] = {"text-embedding-3-small": "0.05"}
    apply(config)
    from_file = Group.objects.get(name="default")
    from_console = actions.save_group(
        actor=None,
        group=None,
        fields={"name": "console-twin", "price_ratio": "1.5"},
        models={"text-embedding-3-small": 50_000_000, "text-embedding-3-large": None},
    ).row
    from_console.refresh_from_db()  # the ratio as stored, as the file's group has it

    assert (
        actions.effective_prices(from_file)
        == actions.effective_prices(from_console)
        == {
            "text-embedding-3-small": 50_000_000,
            "text-embedding-3-large": 195_000_000,
        }
    )

    # A model nothing prices: refused by the file with the console's words.
    reason = consoles_refusal(
        function=actions.save_group,
        group=None,
        fields={"name": "unpriced"},
        models={"text-embedding-ada-002": None},
    )
    config["groups"]["vip"]["models"].append("text-embedding-ada-002")
    with pytest.raises(CommandError) as raised:
        apply(config)
    assert str(raised.value).endswith(f": groups.vip.models: {reason}")


def opening_entries(tenant: Tenant) -> list[tuple[str, int, str]]:
    return list(
        LedgerEntry.objects.for_tenant(tenant).values_list("kind", "amount_nanos", "reason")
    )


@pytest.mark.django_db
def test_the_opening_balance_is_one_top_up_like_the_consoles_and_never_credited_again(apply):
    apply(EXAMPLE)
    acme = Tenant.objects.get(slug="acme")

    assert opening_entries(acme) == [
        (LedgerEntry.Kind.TOPUP, OPENING_NANOS, OPENING_BALANCE_REASON)
    ]
    assert balance_row(acme) == OPENING_NANOS
    [event] = AuditEvent.objects.filter(action="balance.topped_up")
    assert (event.target, event.tenant, event.actor) == ("acme", acme, None)
    assert event.detail["amount_nanos"] == OPENING_NANOS and event.detail["door"] == "config"
    entry = LedgerEntry.objects.for_tenant(acme).get()
    assert event.detail["ledger_entry"] == entry.pk

    # Re-applied, even with another amount: the tenant has a ledger, so no credit.
    apply(EXAMPLE)
    config = example()
    config["tenants"]["acme"]["balance"] = "40.00"
    assert "unchanged tenant acme" in apply(config)

    assert opening_entries(acme) == [
        (LedgerEntry.Kind.TOPUP, OPENING_NANOS, OPENING_BALANCE_REASON)
    ]
    assert balance_row(acme) == OPENING_NANOS
    assert AuditEvent.objects.filter(action="balance.topped_up").count() == 1


@pytest.mark.django_db
def test_an_opening_balance_added_later_to_a_tenant_without_a_ledger_is_credited_once(apply):
    config = example()
    del config["tenants"]["acme"]["balance"]
    apply(config)
    acme = Tenant.objects.get(slug="acme")
    assert opening_entries(acme) == []

    config["tenants"]["acme"]["balance"] = "3"
    assert "updated tenant acme (opening balance)" in apply(config)
    assert "unchanged tenant acme" in apply(config)

    assert opening_entries(acme) == [(LedgerEntry.Kind.TOPUP, 3 * 10**9, OPENING_BALANCE_REASON)]


@pytest.mark.django_db
def test_a_channel_without_enabled_in_the_file_keeps_a_disable_channel_health_made(apply):
    """Re-applying the file at every deploy must not put back a channel the
    relay took out; `enabled: true` written in the file is a person's choice."""
    from relay.health.state import auto_disable

    apply(EXAMPLE)
    main = Channel.objects.get(name="openai-main")
    assert main.enabled
    assert auto_disable(channel_id=main.pk, reason="failures", detail="5 failures in a row")

    lines = apply(EXAMPLE)

    main.refresh_from_db()
    assert not main.enabled and main.disabled_reason == "failures"
    assert "unchanged channel openai-main" in lines

    config = example()
    config["channels"]["openai-main"]["enabled"] = True
    lines = apply(config)

    main.refresh_from_db()
    assert main.enabled and main.disabled_reason == ""
    assert "updated channel openai-main (enabled)" in lines
    [enabled] = AuditEvent.objects.filter(action="channel.enabled", target="openai-main")
    assert enabled.detail["door"] == "config"
