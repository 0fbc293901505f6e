"""Upstream providers, one module each, registered here by channel kind."""

from relay.providers.azure import AzureProvider
from relay.providers.base import Provider, UpstreamCall
from relay.providers.openai import OpenAIProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "azure": AzureProvider(),
}

__all__ = ["PROVIDERS", "Provider", "UpstreamCall"]
