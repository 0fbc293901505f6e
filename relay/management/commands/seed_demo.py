"""Seed a demo tenant, group, channels and key for ``python3 dev.py run``.

The demo group has one channel per provider kind, each at its dialect of the
fake upstream (relay/devtools/fake_upstream/), and a priced public model name
for each, so that the printed key can call ``gemini-embedding-001``,
``embed-v4.0``, ``titan-embed-text-v2`` and the others as well as OpenAI's
models. The Bedrock channel signs with the fake's test key pair. Everything
lives in the tenant ``demo`` and the group ``demo``; no other group is touched.

Idempotent; the demo key's secret is re-issued on every call (printed as the
last line, after a line listing the demo models) so the launcher can print a
curl that works without any secret being kept on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import keys
from accounts.models import ApiKey, Group, GroupModel, Tenant
from billing.models import LedgerEntry
from billing.pricing import to_nanos
from relay.devtools.fake_upstream.bedrock import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from relay.models import Channel, ChannelModel
from relay.operations import actions

GROUP = "demo"
TENANT = "demo"
BEARER = "sk-fake-upstream-credential"


@dataclass(frozen=True)
class DemoModel:
    name: str  # the public name clients ask for
    price: str  # per million tokens, in the operator's currency (demo prices)
    upstream: str = ""  # the provider's name, when it differs


@dataclass(frozen=True)
class DemoChannel:
    name: str
    kind: str
    path: str  # the fake's dialect, below its root
    models: tuple[DemoModel, ...]
    credential: str = BEARER


DEMO_CHANNELS = (
    DemoChannel(
        "demo-openai",
        "openai",
        "v1",
        (
            DemoModel("text-embedding-3-small", "0.02"),
            DemoModel("text-embedding-3-large", "0.13"),
            DemoModel("text-embedding-ada-002", "0.10"),
        ),
    ),
    DemoChannel(
        "demo-azure",
        "azure",
        "",
        (
            # The deployment's name goes in the URL (relay/providers/azure.py).
            DemoModel("azure-text-embedding-3-small", "0.02", "text-embedding-3-small"),
        ),
    ),
    DemoChannel("demo-gemini", "gemini", "gemini", (DemoModel("gemini-embedding-001", "0.15"),)),
    DemoChannel("demo-cohere", "cohere", "cohere", (DemoModel("embed-v4.0", "0.12"),)),
    DemoChannel("demo-voyage", "voyage", "voyage/v1", (DemoModel("voyage-3.5", "0.06"),)),
    DemoChannel("demo-jina", "jina", "jina/v1", (DemoModel("jina-embeddings-v3", "0.05"),)),
    DemoChannel("demo-mistral", "mistral", "mistral/v1", (DemoModel("mistral-embed", "0.10"),)),
    DemoChannel(
        "demo-ollama",
        "ollama",
        "ollama",
        (DemoModel("nomic-embed-text", "0.01", "nomic-embed-text:latest"),),
    ),
    DemoChannel(
        "demo-bedrock",
        "bedrock",
        "bedrock",
        (
            DemoModel("titan-embed-text-v2", "0.02", "amazon.titan-embed-text-v2:0"),
            DemoModel("cohere-embed-v4", "0.12", "cohere.embed-v4:0"),
        ),
        credential=f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}",
    ),
)
DEMO_MODELS = [model.name for channel in DEMO_CHANNELS for model in channel.models]


class Command(BaseCommand):
    help = "Create the demo tenant, group, channels and key (and re-issue the key's secret)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--upstream",
            required=True,
            help="The fake upstream's OpenAI base URL (ending in /v1); its other dialects "
            "are served beside it, at its root.",
        )

    @transaction.atomic
    def handle(self, *args, upstream: str, **options) -> None:
        root = upstream.rstrip("/")
        if not root.endswith("/v1"):
            raise CommandError("--upstream must be the fake upstream's base URL ending in /v1")
        root = root.removesuffix("/v1")
        group, _ = Group.objects.get_or_create(
            name=GROUP, defaults={"limit_rpm": 600, "limit_tpm": 1_000_000}
        )
        for demo in DEMO_CHANNELS:
            channel, _ = Channel.objects.update_or_create(
                name=demo.name,
                defaults={
                    "kind": demo.kind,
                    "base_url": f"{root}/{demo.path}".rstrip("/"),
                    "credential": demo.credential,
                },
            )
            channel.groups.add(group)
            for model in demo.models:
                # Priced on the demo group, so that no base price is changed.
                GroupModel.objects.update_or_create(
                    group=group,
                    model=model.name,
                    defaults={"price_per_mtok_nanos": to_nanos(model.price)},
                )
                ChannelModel.objects.update_or_create(
                    channel=channel,
                    model=model.name,
                    defaults={"upstream_model": model.upstream},
                )
        tenant, _ = Tenant.objects.get_or_create(slug=TENANT, defaults={"name": "Demo tenant"})
        tenant.groups.add(group)
        if not LedgerEntry.objects.for_tenant(tenant).exists():
            # The consoles' top-up (its ledger entry and audit event), once.
            actions.top_up(
                actor=None,
                door="seed",
                tenant=tenant,
                amount_nanos=to_nanos("10"),
                reason="demo funds",
            )

        secret = keys.generate_secret()
        key = ApiKey.objects.filter(tenant=tenant, name="demo").first()
        if key is None:
            key = ApiKey(tenant=tenant, group=group, name="demo")
        key.group = group
        key.set_secret(secret)
        key.status = ApiKey.Status.ACTIVE
        key.save()
        channels = ", ".join(demo.name for demo in DEMO_CHANNELS)
        self.stdout.write(f"demo tenant '{tenant}', group '{group}', channels {channels}")
        self.stdout.write("demo models: " + ", ".join(DEMO_MODELS))
        self.stdout.write(secret)
