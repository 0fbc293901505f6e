"""Channel credentials encrypted at rest.

Provider keys are the most valuable thing the relay stores, so a database
dump alone must not reveal them. They are encrypted with Fernet under keys
from ``CREDENTIALS_KEYS`` (comma-separated, newest first), separate from
SECRET_KEY so rotating one never touches the other. Rotation without
downtime: put a new key first (old ones stay, so existing rows still
decrypt), deploy, run ``python manage.py rotate_credentials``, then drop the
old key.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "Set CREDENTIALS_KEYS (generate one with: python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "CREDENTIALS_KEYS holds a key that is not a Fernet key."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.CREDENTIALS_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    try:
        return fernet().decrypt(stored.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A channel credential cannot be decrypted with CREDENTIALS_KEYS "
            "(was a key removed before rotate_credentials ran?)."
        ) from exc


def rotate(stored: str) -> str:
    """The same secret re-encrypted under the newest key."""
    return fernet().rotate(stored.encode()).decode() if stored else ""


class EncryptedTextField(models.TextField):
    """A text field stored encrypted; Python code sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value


def rotate_all(connection) -> int:
    """Re-encrypt every stored credential under the newest key, in SQL
    (bypassing the field, which would encrypt the ciphertext again)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, credential FROM relay_channel WHERE credential <> ''")
        rows = cursor.fetchall()
        for channel_id, stored in rows:
            cursor.execute(
                "UPDATE relay_channel SET credential = %s WHERE id = %s",
                [rotate(stored), channel_id],
            )
    return len(rows)
