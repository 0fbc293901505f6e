"""API key secrets: generation, checksums, digests and the masked form.

A generated secret is ``sk-`` + 43 random base62 characters (256 bits) + a
6-character checksum of them: 52 characters. A mistyped or made-up key of
that shape fails the checksum and is refused before any cache or database
lookup. Secrets imported from another relay have other shapes and are
looked up as usual.

A secret is stored only as its SHA-256 digest. SHA-256 (not a slow password
hash) is right here: secrets carry 256 random bits, so there is nothing to
brute-force, and the digest is looked up on every request.
"""

from __future__ import annotations

import hashlib
import secrets

SECRET_PREFIX = "sk-"  # noqa: S105 (a prefix, not a secret)
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 43
_CHECKSUM_CHARS = 6
GENERATED_LENGTH = len(SECRET_PREFIX) + _RANDOM_CHARS + _CHECKSUM_CHARS
_BASE62_SET = frozenset(BASE62)


def _checksum(body: str) -> str:
    number = int.from_bytes(hashlib.sha256(body.encode()).digest()[:5], "big")
    out = []
    for _ in range(_CHECKSUM_CHARS):
        number, digit = divmod(number, 62)
        out.append(BASE62[digit])
    return "".join(out)


def generate_secret() -> str:
    body = "".join(secrets.choice(BASE62) for _ in range(_RANDOM_CHARS))
    return SECRET_PREFIX + body + _checksum(body)


def has_generated_shape(secret: str) -> bool:
    return (
        len(secret) == GENERATED_LENGTH
        and secret.startswith(SECRET_PREFIX)
        and _BASE62_SET.issuperset(secret[len(SECRET_PREFIX) :])
    )


def checksum_ok(secret: str) -> bool:
    body = secret[len(SECRET_PREFIX) : -_CHECKSUM_CHARS]
    return secret[-_CHECKSUM_CHARS:] == _checksum(body)


def refused_without_lookup(secret: str) -> bool:
    """A secret shaped like ours whose checksum is wrong: a typo, or a guess."""
    return has_generated_shape(secret) and not checksum_ok(secret)


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
