"""``python manage.py reconcile``: prove the books balance; exit 1 if not."""

from django.core.management.base import BaseCommand, CommandError

from billing.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "For every tenant: balance = sum of ledger, usage debits = usage record costs, "
        "live balance = PostgreSQL less queued debits, no stale holds; no usage event "
        "dead-lettered or unwritten past USAGE_PENDING_BOUND_S. Prints the drift and "
        "names each such event."
    )

    def handle(self, *args, **options) -> None:
        report = reconcile()
        self.stdout.write(
            f"{'tenant':<24}{'balance_nanos':>18}{'ledger':>10}{'usage':>10}"
            f"{'live':>10}{'holds':>7}"
        )
        total_drift = 0
        for check in report.tenants:
            live = "-" if check.live_drift is None else str(check.live_drift)
            self.stdout.write(
                f"{check.tenant:<24}{check.balance_nanos:>18}{check.ledger_drift:>10}"
                f"{check.usage_drift:>10}{live:>10}{check.stale_holds:>7}"
            )
            total_drift += (
                abs(check.ledger_drift) + abs(check.usage_drift) + abs(check.live_drift or 0)
            )
        stale = sum(check.stale_holds for check in report.tenants)
        self.stdout.write(
            f"tenants={len(report.tenants)} queued_events={report.queued_events} "
            f"drift={total_drift} stale_holds={stale} dead_letters={report.dead_letters}"
        )
        for letter in report.dead:
            self.stdout.write(
                f"dead-lettered: {letter.request_id} tenant_id={letter.tenant_id} "
                f"charged_nanos={letter.charged_live_nanos} entry={letter.entry_id} "
                f"reason={letter.reason}"
            )
        for request_id, age_s in report.overdue:
            self.stdout.write(f"overdue: {request_id} unwritten for {age_s:.0f}s")
        if not report.healthy:
            raise CommandError("the books do not balance (see the drift above)")
