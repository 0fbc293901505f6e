"""``python manage.py dead_letters``: list, requeue or discard the usage
events PostgreSQL refused (billing/dead_letters.py, docs/operator.md)."""

from django.core.management.base import BaseCommand, CommandError

from billing import dead_letters, streams


class Command(BaseCommand):
    help = (
        "List the usage events PostgreSQL refused. --requeue ENTRY... (or --requeue-all) "
        "puts them back for the drain once their cause is fixed; --discard ENTRY... drops "
        "ones settled by hand."
    )

    def add_arguments(self, parser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--requeue", nargs="+", metavar="ENTRY", default=None)
        action.add_argument("--requeue-all", action="store_true")
        action.add_argument("--discard", nargs="+", metavar="ENTRY", default=None)

    def handle(self, *args, requeue=None, requeue_all=False, discard=None, **options) -> None:
        conn = streams.client()
        try:
            if requeue_all or requeue:
                moved = dead_letters.requeue(conn, None if requeue_all else requeue)
                self._show("requeued", moved)
            elif discard:
                self._show("discarded", dead_letters.discard(conn, discard))
            else:
                self._show("dead-lettered", dead_letters.buried(conn))
        except KeyError as exc:
            raise CommandError(f"no such dead letter: {exc.args[0]}") from None

    def _show(self, verb: str, letters: list[dead_letters.DeadLetter]) -> None:
        for letter in letters:
            self.stdout.write(
                f"{letter.entry_id}  {letter.request_id}  "
                f"tenant_id={letter.tenant_id}  charged_nanos={letter.charged_live_nanos}  "
                f"reason={letter.reason}"
            )
        self.stdout.write(f"{verb}: {len(letters)}")
