import asyncio

import pytest

from accounts import keys
from accounts.models import ApiKey
from relay.catalog import keys as keys_catalog
from relay.contract.errors import InvalidApiKey
from relay.limits import flood
from relay.pipeline import auth
from tests.helpers import SMALL, embed

pytestmark = pytest.mark.django_db(transaction=True)


def test_generated_secrets_are_sk_prefixed_carry_256_random_bits_and_a_valid_checksum():
    secret = keys.generate_secret()
    assert secret.startswith("sk-") and len(secret) == keys.GENERATED_LENGTH
    assert keys.has_generated_shape(secret) and keys.checksum_ok(secret)
    assert len({keys.generate_secret() for _ in range(1000)}) == 1000


def mistyped(secret: str) -> str:
    return secret[:10] + ("A" if secret[10] != "A" else "B") + secret[11:]


def test_a_mistyped_generated_key_gets_401_with_the_key_masked(relay, secret):
    typo = mistyped(secret)
    response = embed(relay, typo, {"model": SMALL, "input": "hi"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert typo not in response.text


def test_a_mistyped_generated_key_is_refused_before_any_lookup(monkeypatch):
    def no_lookup(*args, **kwargs):
        raise AssertionError("looked the key up")

    monkeypatch.setattr(keys_catalog, "_load_async", no_lookup)
    monkeypatch.setattr(flood, "check_invalid_key_flood", no_lookup)
    typo = mistyped(keys.generate_secret())
    with pytest.raises(InvalidApiKey):
        asyncio.run(auth.authenticate(f"Bearer {typo}"))


def test_an_imported_secret_of_another_shape_keeps_working(relay, tenant, group, channel):
    imported = "sk-" + "x" * 48  # new-api / one-api shape: 51 characters
    ApiKey.import_secret(tenant=tenant, group=group, name="migrated", secret=imported)
    assert embed(relay, imported, {"model": SMALL, "input": "hi"}).status_code == 200


def test_importing_a_secret_that_collides_with_the_generated_shape_is_refused(tenant, group):
    fake = "sk-" + "a" * (keys.GENERATED_LENGTH - 3)
    assert keys.refused_without_lookup(fake)
    with pytest.raises(ValueError, match="checksum"):
        ApiKey.import_secret(tenant=tenant, group=group, name="bad", secret=fake)
