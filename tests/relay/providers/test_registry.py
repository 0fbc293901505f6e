"""The one table of providers, and what every provider promises."""

from __future__ import annotations

import pytest

from relay.providers import KIND_CHOICES, PROVIDERS
from relay.providers.base import OPTIONS

KINDS = ["openai", "azure", "gemini", "cohere", "voyage", "jina", "mistral", "ollama", "bedrock"]


def test_every_kind_is_registered_once_with_its_label():
    assert list(PROVIDERS) == KINDS
    assert KIND_CHOICES == [(kind, PROVIDERS[kind].label) for kind in KINDS]
    assert len({label for _, label in KIND_CHOICES}) == len(KINDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", ["text-embedding-3-small", "embed-v4.0", "no-such-model"])
def test_capabilities_are_sane_for_any_model(kind, model):
    caps = PROVIDERS[kind].capabilities(model)
    assert caps.items_per_call >= 1
    assert caps.options <= set(OPTIONS)
    assert not caps.dimension_choices or caps.dimensions
    for limit in (caps.tokens_per_call, caps.tokens_per_item):
        assert limit is None or limit > 0
