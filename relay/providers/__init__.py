"""Upstream providers, one module each behind the interface in ``base``,
registered here by channel kind. A provider translates; it does no I/O.

May import ``relay.contract`` and ``relay.lib``.
"""

from relay.providers.azure import AzureProvider
from relay.providers.base import Provider, UpstreamCall
from relay.providers.openai import OpenAIProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "azure": AzureProvider(),
}

__all__ = ["PROVIDERS", "Provider", "UpstreamCall"]
