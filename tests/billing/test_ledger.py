"""The PostgreSQL ledger: every movement of money is an entry, the balance is
always their sum and never below zero, and usage is debited exactly once."""

import itertools
import uuid

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import ApiKey, Tenant
from billing import ledger
from billing.ledger import InsufficientBalance
from billing.models import Balance, LedgerEntry, UsageRecord
from billing.pricing import cost_nanos
from billing.usage import record_usage
from billing.usage_events import UsageEvent
from tests.helpers import SMALL_PRICE_NANOS, balance_row, usage_event

pytestmark = pytest.mark.django_db(transaction=True)

_slugs = itertools.count()


def new_tenant(name: str = "ledger") -> Tenant:
    slug = f"{name}-{next(_slugs)}-{uuid.uuid4().hex[:8]}"
    return Tenant.objects.create(slug=slug, name=slug)


def ledger_sum(tenant: Tenant) -> int:
    return LedgerEntry.objects.filter(tenant=tenant).aggregate(s=Sum("amount_nanos"))["s"] or 0


def usage_debits(tenant: Tenant) -> int:
    entries = LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE)
    return -(entries.aggregate(s=Sum("amount_nanos"))["s"] or 0)


def record_costs(tenant: Tenant) -> int:
    return UsageRecord.objects.filter(tenant=tenant).aggregate(s=Sum("cost_nanos"))["s"] or 0


# --- a property over random sequences of money movements -----------------------------

AMOUNT = st.integers(min_value=1, max_value=10**12)

served_or_failed = st.sampled_from([UsageRecord.Status.SERVED, UsageRecord.Status.FAILED])
usage_item = st.tuples(
    st.integers(min_value=0, max_value=2_000_000),  # tokens
    st.sampled_from([SMALL_PRICE_NANOS, 130_000_000, 100_000_000, 0, 7]),  # price per Mtok
    served_or_failed,
    # What the live balance charged: None (not charged live: bill tokens x price)
    # or a figure of its own (it may have charged less than the tokens' cost).
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**8)),
)

STEP = st.one_of(
    st.tuples(st.just("top_up"), AMOUNT),
    st.tuples(st.just("refund"), AMOUNT),
    st.tuples(st.just("adjust"), st.integers(min_value=-(10**12), max_value=10**12)),
    st.tuples(st.just("usage"), st.lists(usage_item, min_size=1, max_size=4), st.booleans()),
    st.tuples(st.just("replay"), st.integers(min_value=0)),
)


def expected_cost(tokens: int, price: int, status: str, charge: int | None) -> int:
    if status != UsageRecord.Status.SERVED:
        return 0
    return charge if charge is not None else cost_nanos(tokens, price)


@settings(
    max_examples=50,
    deadline=None,
    # The group is shared by all examples on purpose; each example has a tenant of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_the_balance_is_always_the_sum_of_the_ledger_and_never_negative(group, steps):
    tenant = new_tenant("prop")
    api_key, _secret = ApiKey.issue(tenant=tenant, group=group, name="prop")
    Balance.objects.get_or_create(tenant=tenant)
    expected = 0
    batches: list[list[tuple[UsageEvent, int | None]]] = []

    for step in steps:
        kind = step[0]
        entries_before = LedgerEntry.objects.filter(tenant=tenant).count()
        if kind == "top_up":
            ledger.top_up(tenant=tenant, amount_nanos=step[1], reason="prop")
            expected += step[1]
        elif kind == "refund":
            ledger.refund(tenant=tenant, amount_nanos=step[1], reason="prop")
            expected += step[1]
        elif kind == "adjust":
            amount = step[1]
            if expected + amount < 0:
                with pytest.raises(InsufficientBalance):
                    ledger.adjust(tenant=tenant, amount_nanos=amount, reason="overdraft")
                # A refused debit changes nothing at all.
                assert LedgerEntry.objects.filter(tenant=tenant).count() == entries_before
            else:
                ledger.adjust(tenant=tenant, amount_nanos=amount, reason="correction")
                expected += amount
        elif kind == "usage":
            items, live_applied = step[1], step[2]
            batch = [
                (usage_event(api_key, tokens=tokens, price=price, status=status), charge)
                for tokens, price, status, charge in items
            ]
            batches.append(batch)
            owed = sum(
                expected_cost(e.tokens, e.price_per_mtok_nanos, e.status, c) for e, c in batch
            )
            written = record_usage(batch, live_applied=live_applied)
            assert {r.request_id for r in written} == {e.request_id for e, _c in batch}
            # The debit never takes the balance below zero: what the balance
            # cannot cover is not billed.
            expected -= min(owed, expected)
        elif kind == "replay" and batches:
            batch = batches[step[1] % len(batches)]
            assert record_usage(batch, live_applied=True) == []
            assert LedgerEntry.objects.filter(tenant=tenant).count() == entries_before

        assert balance_row(tenant) == ledger_sum(tenant) == expected
        assert balance_row(tenant) >= 0
        assert usage_debits(tenant) == record_costs(tenant)


# --- usage is debited once ----------------------------------------------------------------


def test_recording_the_same_usage_twice_writes_one_record_each_and_one_debit(group):
    tenant = new_tenant()
    ledger.top_up(tenant=tenant, amount_nanos=10**9, reason="funds")
    api_key, _secret = ApiKey.issue(tenant=tenant, group=group, name="twice")
    events = [usage_event(api_key, tokens=tokens) for tokens in (9, 2, 1000)]
    batch = [(event, None) for event in events]

    first = record_usage(batch, live_applied=True)
    second = record_usage(batch, live_applied=True)
    # The same event twice within one batch is one request, too.
    third = record_usage([(events[0], None), (events[0], None)], live_applied=True)

    assert len(first) == 3
    assert second == third == []
    for event in events:
        assert UsageRecord.objects.filter(request_id=event.request_id).count() == 1
    [debit] = LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE)
    total = sum(cost_nanos(t, SMALL_PRICE_NANOS) for t in (9, 2, 1000))
    assert debit.amount_nanos == -total
    assert debit.request_count == 3
    assert usage_debits(tenant) == record_costs(tenant) == total
    assert balance_row(tenant) == 10**9 - total


def test_a_usage_record_costs_what_the_live_balance_charged(group):
    tenant = new_tenant()
    ledger.top_up(tenant=tenant, amount_nanos=10**9, reason="funds")
    api_key, _secret = ApiKey.issue(tenant=tenant, group=group, name="charged")
    charged = usage_event(api_key, tokens=1000)  # worth 20,000 nanos
    uncharged = usage_event(api_key, tokens=1000)
    failed = usage_event(api_key, tokens=1000, status=UsageRecord.Status.FAILED)

    record_usage([(charged, 7_000), (uncharged, None), (failed, 40)], live_applied=True)

    costs = dict(UsageRecord.objects.values_list("request_id", "cost_nanos"))
    assert costs == {charged.request_id: 7_000, uncharged.request_id: 20_000, failed.request_id: 0}
    assert usage_debits(tenant) == 27_000
    assert balance_row(tenant) == 10**9 - 27_000


def test_usage_beyond_the_balance_is_cut_to_the_balance_not_overdrawn(group):
    tenant = new_tenant()
    ledger.top_up(tenant=tenant, amount_nanos=50, reason="funds")
    api_key, _secret = ApiKey.issue(tenant=tenant, group=group, name="short")

    record_usage(
        [
            (usage_event(api_key, tokens=2), None),  # 40
            (usage_event(api_key, tokens=2), None),
        ],
        live_applied=True,
    )  # 40

    assert balance_row(tenant) == 0
    assert usage_debits(tenant) == record_costs(tenant) == 50


# --- what the ledger refuses ---------------------------------------------------------------


def test_an_adjustment_without_a_reason_is_refused():
    tenant = new_tenant()
    ledger.top_up(tenant=tenant, amount_nanos=1_000, reason="funds")

    for reason in ("", "   "):
        with pytest.raises(ValueError, match="reason"):
            ledger.adjust(tenant=tenant, amount_nanos=-10, reason=reason)

    assert LedgerEntry.objects.filter(tenant=tenant).count() == 1
    assert balance_row(tenant) == 1_000


@pytest.mark.parametrize("amount", [0, -1, -(10**9)])
def test_a_top_up_must_be_positive(amount):
    tenant = new_tenant()

    with pytest.raises(ValueError, match="positive"):
        ledger.top_up(tenant=tenant, amount_nanos=amount, reason="funds")

    assert not LedgerEntry.objects.filter(tenant=tenant).exists()
    assert ledger.balance_nanos(tenant) == 0


def test_a_debit_larger_than_the_balance_raises_and_changes_nothing():
    tenant = new_tenant()
    ledger.top_up(tenant=tenant, amount_nanos=1_000, reason="funds")

    with pytest.raises(InsufficientBalance):
        ledger.adjust(tenant=tenant, amount_nanos=-1_001, reason="too much")
    with pytest.raises(InsufficientBalance):
        ledger.post(tenant=tenant, kind=LedgerEntry.Kind.USAGE, amount_nanos=-1_001)

    assert LedgerEntry.objects.filter(tenant=tenant).count() == 1
    assert balance_row(tenant) == ledger_sum(tenant) == 1_000
    ledger.adjust(tenant=tenant, amount_nanos=-1_000, reason="exactly all of it")
    assert balance_row(tenant) == 0
