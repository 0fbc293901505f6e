"""``manage.py apply_config relay.yaml``: make the database match the operator's file.

The file's schema is in docs/config.md; the work is in relay/config/.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay.config.apply import apply_config
from relay.config.loader import load
from relay.config.read import ConfigError


class Command(BaseCommand):
    help = (
        "Create or update the groups, channels, tenants and keys a YAML file describes, "
        "in one transaction, and print one line per object. Deletes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The YAML file (see docs/config.md).")

    def handle(self, *args, path: Path, **options) -> None:
        try:
            config = load(path=path)
            lines = apply_config(config=config)
        except ConfigError as error:
            # The message names the entry and field; a traceback would add nothing.
            raise CommandError(f"{path}: {error}") from None
        # Printed only after the commit: a generated secret shown for a key
        # that was rolled back would be worse than none.
        for line in lines:
            self.stdout.write(line)
