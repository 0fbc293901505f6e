"""The config file is an audited door, like the consoles: each object it
creates or changes is an audit event with ``door: config``, never a secret."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from tests.relay.config.example import EXAMPLE, IMPORTED_SECRET, UPSTREAM_KEY, example


def config_events() -> list[tuple[str, str]]:
    return sorted(AuditEvent.objects.filter(detail__door="config").values_list("action", "target"))


@pytest.mark.django_db
def test_each_object_the_file_creates_or_changes_is_audited_as_the_config_doors_change(apply):
    apply(EXAMPLE)

    assert config_events() == sorted(
        [
            ("price.set", "text-embedding-3-small"),
            ("price.set", "text-embedding-3-large"),
            ("group.created", "default"),
            ("group.created", "vip"),
            ("channel.created", "openai-main"),
            ("channel.created", "local-bge"),
            ("tenant.created", "acme"),
            # The opening balance: the console's top-up (test_config_doors.py).
            ("balance.topped_up", "acme"),
            ("keys.issued", "acme/ci"),
            ("keys.issued", "acme/batch"),
        ]
    )
    assert all(event.actor is None for event in AuditEvent.objects.all())
    # Names of what changed, never a credential or a secret.
    details = str(list(AuditEvent.objects.values_list("detail", flat=True)))
    for secret in (UPSTREAM_KEY, IMPORTED_SECRET, "sk-local"):
        assert secret not in details

    apply(EXAMPLE)  # nothing changes: nothing is audited
    assert len(config_events()) == 10

    config = example()
    config["channels"]["local-bge"]["priority"] = 5
    config["channels"]["local-bge"]["api_key"] = "sk-local-rotated"
    apply(config)
    [updated] = AuditEvent.objects.filter(action="channel.updated", detail__door="config")
    assert updated.target == "local-bge"
    assert sorted(updated.detail["changed"]) == ["credential", "priority"]
    assert "sk-local-rotated" not in str(updated.detail)
