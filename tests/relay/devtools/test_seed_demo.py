"""``python3 dev.py run``'s demo (relay/management/commands/seed_demo.py):
one channel per provider kind at its dialect of the fake upstream, a priced
public model for each that answers through the relay, all in the demo's own
tenant and group."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from django.core.management import call_command

from accounts.models import ApiKey, AuditEvent, Group, GroupModel, Tenant
from billing.models import LedgerEntry
from relay.models import Channel
from relay.providers import PROVIDERS
from tests.clients.channels import as_float32, expected
from tests.helpers import embed
from tests.relay.api.helpers import decoded

pytestmark = pytest.mark.django_db(transaction=True)

# Every demo model, as the seed lists them, and the vector size the fake answers for it.
DEMO_MODELS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "azure-text-embedding-3-small": 1536,
    "gemini-embedding-001": 3072,
    "embed-v4.0": 1536,
    "voyage-3.5": 1024,
    "jina-embeddings-v3": 1024,
    "mistral-embed": 1024,
    "nomic-embed-text": 768,
    "titan-embed-text-v2": 1024,
    "cohere-embed-v4": 1536,
}
TEXTS = ["hello world", "naïve café"]


def seed(fake) -> tuple[list[str], str]:
    """The seed's lines, and the demo key's secret (its last line)."""
    said = io.StringIO()
    call_command("seed_demo", upstream=f"{fake.url}/v1", stdout=said)
    *lines, secret = said.getvalue().strip().splitlines()
    return lines, secret


def test_every_demo_model_answers_with_its_vectors_through_the_relay(relay, fake_upstream):
    lines, secret = seed(fake_upstream)
    assert lines[-1] == "demo models: " + ", ".join(DEMO_MODELS)
    fake_upstream.reset()
    for model, size in DEMO_MODELS.items():
        answer = embed(relay, secret, {"model": model, "input": TEXTS, "encoding_format": "base64"})
        assert answer.status_code == 200, (model, answer.text)
        rows = [decoded(item["embedding"]) for item in answer.json()["data"]]
        assert np.array_equal(as_float32(rows), expected(TEXTS, size)), model
    # Each went to its own dialect (OpenAI's and Azure's paths share the root).
    reached = set(httpx.get(f"{fake_upstream.url}/_stats").json())
    assert reached == {""} | {f"{kind}:" for kind in PROVIDERS if kind not in ("openai", "azure")}


def test_the_demo_has_a_channel_of_every_kind_in_its_own_tenant_and_group(fake_upstream):
    default = Group.objects.create(name="default")
    GroupModel.objects.create(group=default, model="text-embedding-3-small", price_per_mtok_nanos=7)
    _lines, first = seed(fake_upstream)
    _lines, second = seed(fake_upstream)  # again, as every start does
    assert first != second  # the secret is re-issued
    demo = Group.objects.get(name="demo")
    channels = Channel.objects.filter(groups=demo)
    assert sorted(channel.kind for channel in channels) == sorted(PROVIDERS)
    assert sorted(demo.models.values_list("model", flat=True)) == sorted(DEMO_MODELS)
    assert not demo.models.filter(price_per_mtok_nanos__isnull=True).exists()
    key = ApiKey.objects.get(name="demo")
    assert (key.tenant.slug, key.group) == ("demo", demo)
    # A group named default is left as it was.
    assert list(default.models.values_list("model", "price_per_mtok_nanos")) == [
        ("text-embedding-3-small", 7)
    ]
    assert not default.channels.exists() and not default.api_keys.exists()
    assert not default.tenants.exists()


def test_the_demo_funds_are_one_audited_top_up_however_often_it_seeds(fake_upstream):
    seed(fake_upstream)
    seed(fake_upstream)

    demo = Tenant.objects.get(slug="demo")
    assert list(LedgerEntry.objects.for_tenant(demo).values_list("kind", "amount_nanos")) == [
        (LedgerEntry.Kind.TOPUP, 10 * 10**9)
    ]
    [event] = AuditEvent.objects.filter(action="balance.topped_up", tenant=demo)
    assert (event.actor, event.detail["door"]) == (None, "seed")
