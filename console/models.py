"""What a person chose for themselves in the consoles, kept on the server so
that it follows them from one browser to the next."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Profile(models.Model):
    """One row per person, made the first time they choose something."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_profile"
    )
    # A code of settings.LANGUAGES ("en", "zh-hans"), or blank: follow the
    # browser. Not a choices field, so a language added later needs no migration;
    # console/language.py checks the code before it is stored or used.
    language = models.CharField(max_length=16, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.language or 'browser language'})"
