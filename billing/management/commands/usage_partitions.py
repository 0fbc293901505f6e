"""``python manage.py usage_partitions``: list the usage records' monthly
partitions, create the months ahead, and drop (optionally archiving) the
months past retention. The daily rollups are kept whatever is dropped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from billing import partitions


class Command(BaseCommand):
    help = (
        "Usage records' monthly partitions: list them, create the next months "
        "(--ahead), drop months older than --keep-months (archived first to "
        "--archive-dir as gzipped CSV when given). Rollups are kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--ahead", type=int, default=None, help="create this month's partition and the next N"
        )
        parser.add_argument(
            "--keep-months",
            type=int,
            default=None,
            help="drop partitions that ended more than N whole months ago",
        )
        parser.add_argument(
            "--archive-dir",
            type=Path,
            default=None,
            help="write each partition to DIR/<table>.csv.gz before dropping it",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be dropped, drop nothing"
        )

    def handle(self, *args, ahead, keep_months, archive_dir, dry_run, **options) -> None:
        if ahead is not None:
            if ahead < 0:
                raise CommandError("--ahead must be 0 or more")
            for name in partitions.ensure_ahead(months=ahead):
                self.stdout.write(f"created {name}")
        if keep_months is not None:
            if keep_months < 1:
                raise CommandError("--keep-months must be at least 1 (this month is kept)")
            cutoff = partitions.month_of(dt.datetime.now(dt.UTC).date())
            for _ in range(keep_months - 1):
                cutoff = dt.date(cutoff.year - (cutoff.month == 1), (cutoff.month - 2) % 12 + 1, 1)
            verb = "would drop" if dry_run else "dropped"
            for name in partitions.drop_before(cutoff, archive_dir=archive_dir, dry_run=dry_run):
                archived = (
                    f" (archived to {archive_dir / (name + '.csv.gz')})"
                    if (archive_dir and not dry_run)
                    else ""
                )
                self.stdout.write(f"{verb} {name}{archived}")
        with connection.cursor() as cursor:
            for name, lower, upper in partitions.partitions():
                cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608 (our own names)
                self.stdout.write(f"{name}  {lower} .. {upper}  {cursor.fetchone()[0]} records")
            cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT}")  # noqa: S608
            self.stdout.write(
                f"{partitions.DEFAULT}  (outside every month)  {cursor.fetchone()[0]} records"
            )
