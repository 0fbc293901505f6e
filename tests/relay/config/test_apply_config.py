"""manage.py apply_config: the operator's YAML file becomes rows, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError

from accounts import keys
from accounts.models import ApiKey, Group, GroupModel, Tenant
from billing.models import BasePrice
from relay.models import Channel, ChannelModel
from tests.helpers import ROOT
from tests.relay.config.example import EXAMPLE, IMPORTED_SECRET, UPSTREAM_KEY, example


def snapshot() -> dict:
    """Every row apply_config may touch, in a comparable form."""
    return {
        "base_prices": sorted(BasePrice.objects.values_list("model", "price_per_mtok_nanos")),
        "groups": sorted(Group.objects.values_list()),
        "group_models": sorted(
            GroupModel.objects.values_list("group__name", "model", "price_per_mtok_nanos")
        ),
        "channels": sorted(Channel.objects.values_list()),
        "channel_models": sorted(
            ChannelModel.objects.values_list("channel__name", "model", "upstream_model")
        ),
        "channel_groups": sorted(
            Channel.groups.through.objects.values_list("channel__name", "group__name")
        ),
        "tenants": sorted(Tenant.objects.values_list()),
        "tenant_groups": sorted(
            Tenant.groups.through.objects.values_list("tenant__slug", "group__name")
        ),
        "keys": sorted(ApiKey.objects.values_list(), key=repr),
    }


@pytest.mark.django_db
def test_a_first_apply_creates_everything(apply):
    lines = apply(EXAMPLE)

    assert lines[:7] == [
        "created base price text-embedding-3-small",
        "created base price text-embedding-3-large",
        "created group default",
        "created group vip",
        "created channel openai-main",
        "created channel local-bge",
        "created tenant acme",
    ]
    assert lines[7] == "created key acme/ci"
    assert len(lines) == 9

    assert dict(BasePrice.objects.values_list("model", "price_per_mtok_nanos")) == {
        "text-embedding-3-small": 20_000_000,
        "text-embedding-3-large": 130_000_000,
    }
    default = Group.objects.get(name="default")
    assert (
        default.price_ratio,
        default.limit_rpm,
        default.limit_tpm,
        default.limit_concurrency,
    ) == (
        Decimal("1"),
        600,
        1_000_000,
        50,
    )
    vip = Group.objects.get(name="vip")
    assert (vip.limit_rpm, vip.limit_tpm, vip.limit_concurrency) == (6000, None, None)
    assert sorted(
        GroupModel.objects.values_list("group__name", "model", "price_per_mtok_nanos")
    ) == [
        ("default", "text-embedding-3-large", None),
        ("default", "text-embedding-3-small", None),
        ("vip", "text-embedding-3-small", 16_000_000),
    ]

    main = Channel.objects.get(name="openai-main")
    assert (main.kind, main.base_url, main.credential) == (
        "openai",
        "https://api.openai.com/v1",
        UPSTREAM_KEY,
    )
    assert (main.priority, main.weight, main.enabled) == (0, 10, True)
    assert sorted(main.groups.values_list("name", flat=True)) == ["default", "vip"]
    local = Channel.objects.get(name="local-bge")
    assert (local.credential, local.priority, local.weight, local.enabled) == (
        "sk-local",
        1,
        1,
        False,
    )
    assert list(local.groups.values_list("name", flat=True)) == ["default"]
    assert sorted(ChannelModel.objects.values_list("channel__name", "model", "upstream_model")) == [
        ("local-bge", "text-embedding-3-small", "BAAI/bge-m3"),
        ("openai-main", "text-embedding-3-large", ""),
        ("openai-main", "text-embedding-3-small", ""),
    ]

    acme = Tenant.objects.get(slug="acme")
    assert (acme.name, acme.status) == ("Acme Corp", "active")
    assert sorted(acme.groups.values_list("name", flat=True)) == ["default", "vip"]

    ci = ApiKey.objects.get(tenant=acme, name="ci")
    assert ci.digest == keys.digest(IMPORTED_SECRET)
    assert (ci.group, ci.imported, ci.status) == (default, True, "active")


@pytest.mark.django_db
def test_a_generated_secret_is_printed_once_and_only_its_digest_is_stored(apply):
    first = apply(EXAMPLE)
    second = apply(EXAMPLE)

    prefix = "created key acme/batch: "
    suffix = "  (shown once; store it now)"
    [line] = [line for line in first if line.startswith(prefix)]
    assert line.endswith(suffix)
    secret = line[len(prefix) : -len(suffix)]
    assert secret.startswith("sk-") and len(secret) > 20

    batch = ApiKey.objects.get(name="batch")
    assert batch.digest == keys.digest(secret)
    assert (batch.group.name, batch.limit_rpm, batch.allowed_models, batch.imported) == (
        "vip",
        60,
        ["text-embedding-3-small"],
        False,
    )
    assert batch.expires == datetime(2027, 1, 1, tzinfo=UTC)
    assert "unchanged key acme/batch" in second
    assert secret not in "\n".join(second)


@pytest.mark.django_db
def test_a_second_apply_prints_only_unchanged_and_changes_nothing(apply):
    apply(EXAMPLE)
    before = snapshot()

    lines = apply(EXAMPLE)

    assert lines == [
        "unchanged base price text-embedding-3-small",
        "unchanged base price text-embedding-3-large",
        "unchanged group default",
        "unchanged group vip",
        "unchanged channel openai-main",
        "unchanged channel local-bge",
        "unchanged tenant acme",
        "unchanged key acme/ci",
        "unchanged key acme/batch",
    ]
    assert snapshot() == before


@pytest.mark.django_db
def test_changed_prices_priorities_and_models_are_reported_as_updated(apply):
    apply(EXAMPLE)
    config = example()
    config["base_prices"]["text-embedding-3-small"] = "0.025"
    config["groups"]["vip"]["prices"]["text-embedding-3-small"] = 0.018
    config["groups"]["default"]["models"] = ["text-embedding-3-small"]
    config["channels"]["openai-main"]["priority"] = 2
    config["channels"]["openai-main"]["weight"] = 5
    config["channels"]["local-bge"]["models"] = {"text-embedding-3-small": "BAAI/bge-large"}
    config["tenants"]["acme"]["groups"] = ["default"]

    lines = apply(config)

    assert "updated base price text-embedding-3-small (price)" in lines
    assert "unchanged base price text-embedding-3-large" in lines
    assert "updated group vip (prices)" in lines
    assert "updated group default (models)" in lines
    assert "updated channel openai-main (priority, weight)" in lines
    assert "updated channel local-bge (models)" in lines
    assert "updated tenant acme (groups)" in lines
    assert BasePrice.objects.get(model="text-embedding-3-small").price_per_mtok_nanos == 25_000_000
    assert GroupModel.objects.get(group__name="vip").price_per_mtok_nanos == 18_000_000
    # The model no longer listed for the group is gone; its base price stays.
    assert list(
        GroupModel.objects.filter(group__name="default").values_list("model", flat=True)
    ) == ["text-embedding-3-small"]
    assert ChannelModel.objects.get(channel__name="local-bge").upstream_model == "BAAI/bge-large"


@pytest.mark.django_db
def test_nothing_absent_from_the_file_is_deleted(apply):
    apply(EXAMPLE)
    config = example()
    del config["channels"]["local-bge"]
    del config["keys"][1]

    lines = apply(config)

    assert not [line for line in lines if "local-bge" in line or "batch" in line]
    assert Channel.objects.filter(name="local-bge").exists()
    assert ApiKey.objects.filter(name="batch", status="active").exists()


@pytest.mark.django_db
def test_a_changed_secret_replaces_the_old_one_without_being_printed(apply):
    apply(EXAMPLE)
    config = example()
    config["keys"][0]["secret"] = "sk-imported-replaced-9876543210"

    lines = apply(config)

    assert "updated key acme/ci (secret)" in lines
    assert "sk-imported-replaced" not in "\n".join(lines)
    ci = ApiKey.objects.get(name="ci")
    assert ci.digest == keys.digest("sk-imported-replaced-9876543210")
    assert ci.imported


@pytest.mark.django_db
def test_status_revoked_revokes_the_key_and_a_revoked_key_stays_revoked(apply):
    apply(EXAMPLE)
    config = example()
    config["keys"][0]["status"] = "revoked"

    assert "updated key acme/ci (status)" in apply(config)
    ci = ApiKey.objects.get(name="ci")
    assert ci.status == "revoked" and ci.revoked is not None

    config["keys"][0]["status"] = "active"
    with pytest.raises(CommandError, match=r"keys\[0\] \(acme/ci\)\.status: the key is revoked"):
        apply(config)


@pytest.mark.django_db
def test_the_credential_never_appears_in_the_output(apply, monkeypatch):
    first = apply(EXAMPLE)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-rotated-do-not-print")
    config = example()
    config["channels"]["local-bge"]["api_key"] = "sk-local-rotated"

    second = apply(config)

    output = "\n".join(first + second)
    for credential in (UPSTREAM_KEY, "sk-upstream-rotated", "sk-local"):
        assert credential not in output
    assert "updated channel openai-main (credential)" in second
    assert "updated channel local-bge (credential)" in second
    assert Channel.objects.get(name="openai-main").credential == "sk-upstream-rotated-do-not-print"


def _unknown_kind(config):
    config["channels"]["openai-main"]["kind"] = "anthropic"


def _unknown_channel_group(config):
    config["channels"]["local-bge"]["groups"] = ["default", "gold"]


def _unknown_key_group(config):
    config["keys"][1]["group"] = "gold"


def _typo_field(config):
    config["channels"]["openai-main"]["prority"] = 3


def _typo_top_level(config):
    config["channel"] = {}


def _short_secret(config):
    config["keys"][0]["secret"] = "sk-short"


def _secret_without_prefix(config):
    config["keys"][0]["secret"] = "pk-0123456789abcdefghijkl"


def _price_for_unlisted_model(config):
    config["groups"]["vip"]["prices"]["text-embedding-3-large"] = "0.1"


def _model_without_any_price(config):
    config["groups"]["vip"]["models"].append("text-embedding-ada-002")


def _key_model_outside_its_group(config):
    config["keys"][1]["models"] = ["text-embedding-3-large"]


def _sub_nano_price(config):
    config["base_prices"]["text-embedding-3-large"] = "0.0000000001"


def _ftp_base_url(config):
    config["channels"]["local-bge"]["base_url"] = "ftp://127.0.0.1/v1"


def _metadata_base_url(config):
    config["channels"]["local-bge"]["base_url"] = "http://169.254.169.254/v1"


def _zero_weight(config):
    config["channels"]["local-bge"]["weight"] = 0


def _naive_expiry(config):
    config["keys"][1]["expires"] = "2027-01-01T00:00:00"


def _unknown_tenant(config):
    config["keys"][0]["tenant"] = "globex"


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (_unknown_kind, "channels.openai-main.kind: unknown kind 'anthropic'"),
        (_unknown_channel_group, "channels.local-bge.groups: unknown group 'gold'"),
        (_unknown_key_group, r"keys\[1\] \(acme/batch\)\.group: unknown group 'gold'"),
        (_typo_field, "channels.openai-main.prority: unknown field"),
        (_typo_top_level, "channel: unknown top-level key"),
        (_short_secret, r"keys\[0\] \(acme/ci\)\.secret: must start with \"sk-\""),
        (_secret_without_prefix, r"keys\[0\] \(acme/ci\)\.secret: must start with \"sk-\""),
        (_price_for_unlisted_model, "groups.vip.prices.text-embedding-3-large: not one of"),
        # The consoles' own refusal (relay.operations' save_group).
        (
            _model_without_any_price,
            "groups.vip.models: text-embedding-ada-002: no price; give a price here",
        ),
        (
            _key_model_outside_its_group,
            r"keys\[1\] \(acme/batch\)\.models: text-embedding-3-large is not a model of group vip",
        ),
        (_sub_nano_price, "base_prices.text-embedding-3-large: .* more precise than 9 decimal"),
        (_ftp_base_url, "channels.local-bge.base_url: must start with http:// or https://"),
        (
            _metadata_base_url,
            "channels.local-bge.base_url: upstream address 169.254.169.254 "
            "is not allowed.* cloud metadata addresses are never allowed",
        ),
        (_zero_weight, "channels.local-bge.weight: expected a whole number from 1"),
        (_naive_expiry, r"keys\[1\] \(acme/batch\)\.expires: needs a timezone"),
        (_unknown_tenant, r"keys\[0\] \(globex/ci\)\.tenant: unknown tenant 'globex'"),
    ],
)
@pytest.mark.django_db
def test_a_bad_file_is_refused_and_changes_nothing(apply, break_it, message):
    apply(EXAMPLE)
    before = snapshot()
    config = example()
    # A change that would be written before the defect is reached: it must be rolled back.
    config["base_prices"]["text-embedding-3-small"] = "0.03"
    break_it(config)

    with pytest.raises(CommandError, match=message):
        apply(config)

    assert snapshot() == before


@pytest.mark.django_db
def test_a_missing_environment_variable_is_refused_and_changes_nothing(apply, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")

    with pytest.raises(
        CommandError, match="channels.openai-main.api_key_env: .* OPENAI_API_KEY is not set"
    ):
        apply(EXAMPLE)

    assert not Group.objects.exists() and not BasePrice.objects.exists()


@pytest.mark.django_db
def test_a_name_given_twice_is_refused(apply):
    text = EXAMPLE.replace("  vip:", "  default:", 1)

    with pytest.raises(CommandError, match="line 9: default is given twice"):
        apply(text)


@pytest.mark.django_db
def test_a_bad_secret_is_not_repeated_in_the_error(apply):
    config = example()
    config["keys"][0]["secret"] = "sk-almost-a-secret"

    with pytest.raises(CommandError) as raised:
        apply(config)

    assert "sk-almost" not in str(raised.value)


@pytest.mark.django_db
def test_a_channel_without_a_credential_in_the_file_keeps_the_stored_one(apply):
    apply(EXAMPLE)
    config = example()
    del config["channels"]["local-bge"]["api_key"]

    assert "unchanged channel local-bge" in apply(config)
    assert Channel.objects.get(name="local-bge").credential == "sk-local"


@pytest.mark.django_db
def test_the_example_in_the_docs_applies_twice(apply, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_KEY", "azure-credential")
    docs = (ROOT / "docs" / "config.md").read_text()
    documented = docs.split("```yaml\n", 1)[1].split("```", 1)[0]

    first = apply(documented)
    second = apply(documented)

    assert all(line.startswith("created ") for line in first)
    assert "created key globex/old (revoked)" in first
    assert all(line.startswith("unchanged ") for line in second)
    assert ApiKey.objects.get(name="old").status == "revoked"
    assert ChannelModel.objects.get(channel__name="azure-east").upstream_model == (
        "embed-large-deployment"
    )
