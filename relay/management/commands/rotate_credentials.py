"""Re-encrypt every channel credential under the newest CREDENTIALS_KEYS key."""

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from relay.lib.credentials import rotate_all


class Command(BaseCommand):
    help = (
        "Re-encrypt channel credentials under the first key in CREDENTIALS_KEYS. Put the new "
        "key first (keep the old ones), deploy, run this, then remove the old keys."
    )

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            count = rotate_all(connection)
        self.stdout.write(f"re-encrypted {count} channel credential(s) under the newest key")
