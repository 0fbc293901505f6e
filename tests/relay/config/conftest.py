"""Applying a config file as the operator does: ``manage.py apply_config FILE``."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command

from tests.relay.config.example import UPSTREAM_KEY


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)


@pytest.fixture
def apply(tmp_path):
    """Write ``config`` (YAML text or a dict) to a file, apply it, return the output lines."""

    def apply(config: str | dict) -> list[str]:
        path = tmp_path / "relay.yaml"
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        out = io.StringIO()
        call_command("apply_config", str(path), stdout=out)
        return out.getvalue().splitlines()

    return apply
