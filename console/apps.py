from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

import relay

# Where a wheel carries its catalogs (pyproject.toml): compiled when it was
# built, so the installer's file times say nothing about which is newer.
SHIPPED = Path(relay.__file__).resolve().parent / "shipped"


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Web console and operator API"

    def ready(self) -> None:
        from console import language  # noqa: F401 (connects the sign-in receiver)

        checks.register(catalogs_compiled)


def catalogs_compiled(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every message file has its compiled catalog, as new as itself: without
    it the consoles fall back to English without a word."""
    problems = []
    for locale_dir in map(Path, settings.LOCALE_PATHS):
        for po in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
            mo = po.with_suffix(".mo")
            stale = (
                mo.exists()
                and not po.resolve().is_relative_to(SHIPPED)
                and mo.stat().st_mtime < po.stat().st_mtime
            )
            if not mo.exists() or stale:
                problems.append(
                    checks.Warning(
                        f"{mo} is missing or older than {po.name}: that language shows in English.",
                        hint="python -m relay.devtools.locales (dev.py run and test do it).",
                        id="console.W001",
                    )
                )
    return problems
