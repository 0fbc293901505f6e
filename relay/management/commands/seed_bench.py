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
# The batch rows (bench/batches.py): 1,024-number vectors, 96 inputs a call.
BATCH_MODEL = "bge-large-en-v1.5"
COHERE_MODEL = "embed-english-v3.0"
PRICE_PER_MTOK = "0.02"  # OpenAI's list price
# High enough never to refuse a request, low enough for PositiveIntegerField.
HIGH_LIMITS = {
    "limit_rpm": 1_000_000_000,
    "limit_tpm": 2_000_000_000,
    "limit_concurrency": 1_000_000,
}
BALANCE_NANOS = to_nanos("1000000")


class Command(BaseCommand):
    help = "Create the benchmark tenant with one group, channel and key per upstream."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--upstream",
            action="append",
            required=True,
            metavar="LABEL=URL",
            help="An upstream base URL (ending in /v1) and the label of its key.",
        )
        parser.add_argument(
            "--batches",
            metavar="ROOT",
            help="The fake upstream's root, for the batch rows (bench/batches.py): keys "
            "`split96` and `split96-cached` (an OpenAI-compatible channel that takes 96 "
            "inputs a call; the second group caches) and `cohere` (Cohere's dialect).",
        )

    @transaction.atomic
    def handle(self, *args, upstream: list[str], batches: str | None = None, **options) -> None:
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
                defaults={
                    "kind": "openai",
                    "base_url": url,
                    "credential": "sk-fake-upstream-credential",
                },
            )
            channel.groups.add(group)
            ChannelModel.objects.get_or_create(channel=channel, model=MODEL)
            tenant.groups.add(group)
            secrets.append((label, self._key(tenant, group, f"bench-{label}")))
        if batches:
            secrets += self._batch_channels(tenant, batches)
        for label, secret in secrets:
            self.stdout.write(f"key {label} {secret}")

    def _batch_channels(self, tenant: Tenant, root: str) -> list[tuple[str, str]]:
        """Channels of 96 inputs a call: OpenAI-compatible (two groups, one
        caching) and Cohere's dialect (one group)."""
        found = []
        for label, kind, model, url, cached in (
            ("split96", "openai", BATCH_MODEL, f"{root}/v1", False),
            ("split96-cached", "openai", BATCH_MODEL, f"{root}/v1", True),
            ("cohere", "cohere", COHERE_MODEL, f"{root}/cohere", False),
        ):
            BasePrice.objects.update_or_create(
                model=model, defaults={"price_per_mtok_nanos": to_nanos(PRICE_PER_MTOK)}
            )
            channel, _ = Channel.objects.update_or_create(
                name=f"bench-{kind}-96",
                defaults={
                    "kind": kind,
                    "base_url": url,
                    "items_per_call": 96,
                    "credential": "sk-fake-upstream-credential",
                },
            )
            ChannelModel.objects.get_or_create(channel=channel, model=model)
            group, _ = Group.objects.update_or_create(
                name=f"bench-{label}", defaults={**HIGH_LIMITS, "cache_enabled": cached}
            )
            GroupModel.objects.get_or_create(group=group, model=model)
            channel.groups.add(group)
            tenant.groups.add(group)
            found.append((label, self._key(tenant, group, f"bench-{label}")))
        return found

    @staticmethod
    def _key(tenant: Tenant, group: Group, name: str) -> str:
        secret = keys.generate_secret()
        key = ApiKey.objects.filter(tenant=tenant, name=name).first() or ApiKey(
            tenant=tenant, group=group, name=name
        )
        key.group = group
        key.set_secret(secret)
        key.status = ApiKey.Status.ACTIVE
        key.save()
        return secret
