"""How long redemption codes take: making a batch, redeeming one, and fifty
sessions racing for one code.

    python -m bench.redemption   (needs DATABASE_URL and REDIS_URL; works in a
                                  throwaway tenant, then deletes its rows)

Times relay.operations.redemption.create_batch for 1,000 codes (an HMAC and a
row each, one bulk insert), billing.redemption.redeem one code after another
(a row lock, a ledger entry, the balance row, the audit event, then the live
balance in Redis), and 50 threads with connections of their own redeeming the
same code at once (one credit; the others wait for the lock, then refuse).
"""

from __future__ import annotations

import os
import statistics
import threading
import time

import django


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def measure(*, batches: int = 5, redemptions: int = 200, racers: int = 50) -> dict[str, float]:
    from django.db import connection

    from accounts.models import AuditEvent, Tenant
    from billing import live, live_sync, redemption
    from billing.models import Balance, LedgerEntry, RedemptionBatch, RedemptionCode
    from relay.operations import redemption as operations

    tenant = Tenant.objects.create(slug=f"bench-codes-{os.getpid()}", name="bench codes")
    figures: dict[str, float] = {}
    batch_ids: list[int] = []

    def make(count: int) -> list[str]:
        made = operations.create_batch(actor=None, count=count, value_nanos=10**9)
        batch_ids.append(made.batch.pk)
        return made.codes

    try:
        made_times = []
        for _ in range(batches):
            started = time.perf_counter()
            make(1000)
            made_times.append(time.perf_counter() - started)
        figures["batch_of_1000_s"] = statistics.median(made_times)

        codes = make(redemptions)
        times = []
        for code in codes:
            started = time.perf_counter()
            redemption.redeem(text=code, tenant=tenant, user=None)
            times.append(time.perf_counter() - started)
        times.sort()
        figures["redeem_p50_s"] = times[len(times) // 2]
        figures["redeem_p95_s"] = times[int(len(times) * 0.95)]

        [contested] = make(1)
        gate = threading.Barrier(racers + 1)
        credited = []

        def race() -> None:
            try:
                gate.wait()
                try:
                    credited.append(redemption.redeem(text=contested, tenant=tenant, user=None))
                except redemption.RedemptionRefused:
                    pass
            finally:
                connection.close()

        threads = [threading.Thread(target=race) for _ in range(racers)]
        for thread in threads:
            thread.start()
        gate.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        figures["race_of_50_s"] = time.perf_counter() - started
        figures["race_credits"] = len(credited)
    finally:
        RedemptionCode.objects.filter(batch_id__in=batch_ids).delete()
        RedemptionBatch.objects.filter(pk__in=batch_ids).delete()
        AuditEvent.objects.filter(tenant=tenant).delete()
        AuditEvent.objects.filter(
            action="codes.created", target__in=[f"batch {pk}" for pk in batch_ids]
        ).delete()
        LedgerEntry.objects.filter(tenant=tenant).delete()
        Balance.objects.filter(tenant=tenant).delete()
        live_sync.client().delete(live.tenant_key(tenant.pk))
        tenant.delete()
    return figures


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay.settings")
    django.setup()
    figures = measure()
    print(f"make a batch of 1,000 codes (median of 5): {_ms(figures['batch_of_1000_s'])}")
    print(f"redeem one code, p50:                      {_ms(figures['redeem_p50_s'])}")
    print(f"redeem one code, p95:                      {_ms(figures['redeem_p95_s'])}")
    print(
        f"50 sessions on one code, wall time:        {_ms(figures['race_of_50_s'])} "
        f"({figures['race_credits']:.0f} credit)"
    )


if __name__ == "__main__":
    main()
