"""API key secrets: generation, digests and the masked form shown to people.

A secret is stored only as its SHA-256 digest. SHA-256 (not a slow password
hash) is right here: generated secrets carry 192 random bits, so there is
nothing to brute-force, and the digest is looked up on every request.
"""

from __future__ import annotations

import hashlib
import secrets

SECRET_PREFIX = "sk-"
# 32 URL-safe characters of 6 bits each: 192 bits of randomness.
_RANDOM_CHARS = 32


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_RANDOM_CHARS * 3 // 4)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    """The first characters kept for display: enough to tell keys apart."""
    return secret[:7]


def mask(secret: str) -> str:
    """OpenAI's masked form, ``sk-ab***...wxyz``; short strings reveal nothing."""
    if len(secret) < 12:
        return "***"
    return f"{secret[:5]}***...{secret[-4:]}"
