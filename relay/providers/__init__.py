"""Upstream providers, one module each behind the interface in ``base``,
registered here by channel kind (docs/providers.md).

A provider translates and declares; it does no I/O. ``build`` turns one
call's worth of a request into the provider's HTTP call, ``parse`` its
success body into float32 vectors and the tokens it billed, and
``capabilities`` says per model what one call may carry and what the
provider does itself, so that the batch engine splits requests and converts
the rest. ``PROVIDERS`` maps a channel's kind to its provider;
``KIND_CHOICES`` is the same table as choices for the Channel model.

Kinds: openai (and every OpenAI-compatible server), azure, gemini, cohere,
voyage, jina, mistral, ollama, bedrock.

May import ``relay.contract`` and ``relay.lib``.
"""

from relay.providers.azure import AzureProvider
from relay.providers.base import Provider, UpstreamCall
from relay.providers.bedrock import BedrockProvider
from relay.providers.cohere import CohereProvider
from relay.providers.gemini import GeminiProvider
from relay.providers.jina import JinaProvider
from relay.providers.mistral import MistralProvider
from relay.providers.ollama import OllamaProvider
from relay.providers.openai import OpenAIProvider
from relay.providers.voyage import VoyageProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "azure": AzureProvider(),
    "gemini": GeminiProvider(),
    "cohere": CohereProvider(),
    "voyage": VoyageProvider(),
    "jina": JinaProvider(),
    "mistral": MistralProvider(),
    "ollama": OllamaProvider(),
    "bedrock": BedrockProvider(),
}

KIND_CHOICES = [(kind, provider.label) for kind, provider in PROVIDERS.items()]

__all__ = ["KIND_CHOICES", "PROVIDERS", "Provider", "UpstreamCall"]
