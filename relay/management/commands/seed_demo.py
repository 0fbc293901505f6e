"""Seed a demo tenant, group, channel and key for ``python3 dev.py run``.

Idempotent; the demo key's secret is re-issued on every call (printed as the
last line) so the launcher can print a curl that works without any secret
being kept on disk.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import keys
from accounts.models import ApiKey, Group, GroupModel, Tenant
from billing import ledger
from billing.models import BasePrice, LedgerEntry
from billing.pricing import to_nanos
from relay.models import Channel, ChannelModel

# OpenAI's list prices per million tokens.
DEMO_PRICES = {
    "text-embedding-3-small": "0.02",
    "text-embedding-3-large": "0.13",
    "text-embedding-ada-002": "0.10",
}


class Command(BaseCommand):
    help = "Create the demo tenant, group, channel and key (and re-issue the key's secret)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--upstream", required=True, help="Base URL of the demo upstream.")

    @transaction.atomic
    def handle(self, *args, upstream: str, **options) -> None:
        for model, price in DEMO_PRICES.items():
            BasePrice.objects.update_or_create(
                model=model, defaults={"price_per_mtok_nanos": to_nanos(price)}
            )
        # The demo's own group: never an operator's `default` (the launcher
        # seeds only the database it made, and this keeps the demo apart anyway).
        group, _ = Group.objects.get_or_create(
            name="demo", defaults={"limit_rpm": 600, "limit_tpm": 1_000_000}
        )
        for model in DEMO_PRICES:
            GroupModel.objects.get_or_create(group=group, model=model)
        channel, _ = Channel.objects.update_or_create(
            name="demo-fake-upstream",
            defaults={
                "kind": Channel.Kind.OPENAI,
                "base_url": upstream,
                "credential": "sk-fake-upstream-credential",
            },
        )
        channel.groups.add(group)
        for model in DEMO_PRICES:
            ChannelModel.objects.get_or_create(channel=channel, model=model)
        tenant, _ = Tenant.objects.get_or_create(slug="demo", defaults={"name": "Demo tenant"})
        tenant.groups.add(group)
        if not LedgerEntry.objects.for_tenant(tenant).exists():
            ledger.top_up(tenant=tenant, amount_nanos=to_nanos("10"), reason="demo funds")

        secret = keys.generate_secret()
        key = ApiKey.objects.filter(tenant=tenant, name="demo").first()
        if key is None:
            key = ApiKey(tenant=tenant, group=group, name="demo")
        key.set_secret(secret)
        key.status = ApiKey.Status.ACTIVE
        key.save()
        self.stdout.write(f"demo tenant '{tenant}', group '{group}', channel '{channel}'")
        self.stdout.write(secret)
