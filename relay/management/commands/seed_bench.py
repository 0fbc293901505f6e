"""Seed the benchmark's tenant: one group, channel and key per upstream.

    python manage.py seed_bench --upstream fast=http://127.0.0.1:9100/v1 \
                                --upstream slow=http://127.0.0.1:9200/v1

For each ``LABEL=URL`` a group ``bench-LABEL`` (every limit set, and set far
above anything a benchmark can reach, so the limiter's script still runs on
every request), a channel to URL, and a key; the tenant gets limits as high
and a balance no benchmark can spend. Prints ``key LABEL SECRET`` per key
(secrets are re-issued on every call and kept nowhere else).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import keys
from accounts.models import ApiKey, Group, GroupModel, Tenant
from billing import ledger
from billing.models import Balance, BasePrice
from billing.pricing import to_nanos
from relay.models import Channel, ChannelModel

MODEL = "text-embedding-3-small"
PRICE_PER_MTOK = "0.02"  # OpenAI's list price
# High enough never to refuse a request, low enough for PositiveIntegerField.
HIGH_LIMITS = {"limit_rpm": 1_000_000_000, "limit_tpm": 2_000_000_000,
               "limit_concurrency": 1_000_000}
BALANCE_NANOS = to_nanos("1000000")


class Command(BaseCommand):
    help = "Create the benchmark tenant with one group, channel and key per upstream."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--upstream", action="append", required=True, metavar="LABEL=URL",
            help="An upstream base URL (ending in /v1) and the label of its key.",
        )

    @transaction.atomic
    def handle(self, *args, upstream: list[str], **options) -> None:
        BasePrice.objects.update_or_create(
            model=MODEL, defaults={"price_per_mtok_nanos": to_nanos(PRICE_PER_MTOK)}
        )
        tenant, _ = Tenant.objects.update_or_create(
            slug="bench", defaults={"name": "Benchmark tenant", **HIGH_LIMITS}
        )
        balance = Balance.objects.filter(tenant=tenant).values_list("balance_nanos", flat=True)
        if (balance.first() or 0) < BALANCE_NANOS // 2:
            ledger.top_up(tenant=tenant, amount_nanos=BALANCE_NANOS, reason="benchmark funds")
        secrets = []
        for spec in upstream:
            label, _, url = spec.partition("=")
            if not label or not url.startswith("http://127.0.0.1:"):
                raise CommandError(f"expected LABEL=http://127.0.0.1:PORT/v1, got {spec!r}")
            group, _ = Group.objects.update_or_create(name=f"bench-{label}", defaults=HIGH_LIMITS)
            GroupModel.objects.get_or_create(group=group, model=MODEL)
            channel, _ = Channel.objects.update_or_create(
                name=f"bench-{label}",
                defaults={"kind": "openai", "base_url": url,
                          "credential": "sk-fake-upstream-credential"},
            )
            channel.groups.add(group)
            ChannelModel.objects.get_or_create(channel=channel, model=MODEL)
            tenant.groups.add(group)
            secret = keys.generate_secret()
            key = ApiKey.objects.filter(tenant=tenant, name=f"bench-{label}").first()
            if key is None:
                key = ApiKey(tenant=tenant, group=group, name=f"bench-{label}")
            key.group = group
            key.set_secret(secret)
            key.status = ApiKey.Status.ACTIVE
            key.save()
            secrets.append((label, secret))
        for label, secret in secrets:
            self.stdout.write(f"key {label} {secret}")
