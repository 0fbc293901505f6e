"""Usage records in monthly partitions (billing/partitions.py): each record
in its month's table, months created ahead, old months dropped or archived
while the rollups keep counting them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from billing import partitions
from billing.models import DailyUsage, UsageRecord
from billing.usage import record_usage
from tests.helpers import funded_key, usage_event

pytestmark = pytest.mark.django_db(transaction=True)


def month_ms(year: int, month: int) -> int:
    return int(dt.datetime(year, month, 15, 12, tzinfo=dt.UTC).timestamp() * 1000)


def table_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM billing_usagerecord WHERE request_id = %s",
            [request_id],
        )
        return cursor.fetchone()[0]


def names() -> list[str]:
    return [name for name, _lower, _upper in partitions.partitions()]


def test_the_table_is_partitioned_with_this_month_and_three_ahead(group):
    month = partitions.month_of(dt.datetime.now(dt.UTC))
    expected = []
    for _ in range(4):
        expected.append(partitions.name_of(month))
        month = partitions.next_month(month)
    assert set(expected) <= set(names())


def test_a_record_lands_in_its_months_partition(group):
    _tenant, api_key, _secret = funded_key(group, requests=10)
    event = usage_event(api_key)
    record_usage([(event, None)], live_applied=True)
    this_month = partitions.month_of(dt.datetime.now(dt.UTC))
    assert table_of(event.request_id) == partitions.name_of(this_month)


def test_a_redelivered_event_is_still_refused_once(group):
    _tenant, api_key, _secret = funded_key(group, requests=10)
    event = usage_event(api_key)
    assert len(record_usage([(event, None)], live_applied=True)) == 1
    assert record_usage([(event, None)], live_applied=True) == []
    assert UsageRecord.objects.filter(request_id=event.request_id).count() == 1


def test_creating_a_month_moves_its_records_out_of_the_default_partition(group):
    _tenant, api_key, _secret = funded_key(group, requests=10)
    far = dataclasses.replace(usage_event(api_key), created_ms=month_ms(2031, 5))
    record_usage([(far, None)], live_applied=True)
    assert table_of(far.request_id) == partitions.DEFAULT

    assert partitions.create_month(dt.date(2031, 5, 1)) is True
    assert partitions.create_month(dt.date(2031, 5, 1)) is False  # once

    assert table_of(far.request_id) == "billing_usagerecord_2031_05"
    assert UsageRecord.objects.filter(request_id=far.request_id).count() == 1


def test_the_periodic_task_creates_months_ahead_and_is_scheduled(group):
    from billing.tasks import create_usage_partitions

    schedule = settings.CELERY_BEAT_SCHEDULE["create-usage-partitions"]
    assert schedule["task"] == "billing.tasks.create_usage_partitions"
    assert partitions.ensure_ahead(dt.date(2032, 11, 20), months=2) == [
        "billing_usagerecord_2032_11",
        "billing_usagerecord_2032_12",
        "billing_usagerecord_2033_01",
    ]
    create_usage_partitions()  # today's months exist already: nothing to do, no error
    assert "billing_usagerecord_2033_01" in names()


def test_retention_archives_and_drops_old_months_and_the_rollups_keep_them(group, tmp_path):
    _tenant, api_key, _secret = funded_key(group, requests=10)
    partitions.create_month(dt.date(2020, 1, 1))
    old = dataclasses.replace(usage_event(api_key), created_ms=month_ms(2020, 1))
    new = usage_event(api_key)
    record_usage([(old, None), (new, None)], live_applied=True)
    rolled_up = DailyUsage.objects.filter(day=dt.date(2020, 1, 15)).get()

    out = io.StringIO()
    call_command(
        "usage_partitions", "--keep-months", "2", "--archive-dir", str(tmp_path), stdout=out
    )

    assert "dropped billing_usagerecord_2020_01" in out.getvalue()
    assert "billing_usagerecord_2020_01" not in names()
    assert not UsageRecord.objects.filter(request_id=old.request_id).exists()
    assert UsageRecord.objects.filter(request_id=new.request_id).exists()
    archived = gzip.decompress((tmp_path / "billing_usagerecord_2020_01.csv.gz").read_bytes())
    assert old.request_id in archived.decode()
    # Reports read the rollups: the dropped month still counts there.
    assert DailyUsage.objects.filter(pk=rolled_up.pk, requests=1).exists()


def test_a_dry_run_drops_nothing(group):
    partitions.create_month(dt.date(2019, 6, 1))
    out = io.StringIO()
    call_command("usage_partitions", "--keep-months", "1", "--dry-run", stdout=out)
    assert "would drop billing_usagerecord_2019_06" in out.getvalue()
    assert "billing_usagerecord_2019_06" in names()


def test_a_duplicate_request_id_is_known_as_a_race_in_any_partition(group):
    from django.db import IntegrityError

    from billing.usage import _copy, _raced_on_request_id, _record

    _tenant, api_key, _secret = funded_key(group, requests=10)
    event = usage_event(api_key)
    _copy([_record(event, None)])
    with pytest.raises(IntegrityError) as refused:
        _copy([_record(event, None)])
    assert _raced_on_request_id(refused.value)


def test_a_record_written_by_copy_holds_every_value_of_its_event(group):
    from billing.usage import Row

    _tenant, api_key, _secret = funded_key(group, requests=10)
    event = dataclasses.replace(
        usage_event(api_key),
        channel_id=None,
        served_model="text-embedding-3-small-2",
        cached_items=1,
        cached_tokens=4,
        cached_price_per_mtok_nanos=10_000_000,
        end_user="ü" * 300,  # cut to the column's 256
        created_ms=month_ms(2026, 11),
    )
    record_usage([(event, 123)], live_applied=True)

    columns = {f.column for f in UsageRecord._meta.concrete_fields if not f.primary_key}
    assert set(Row._fields) == columns  # COPY names every column
    record = UsageRecord.objects.get(request_id=event.request_id)
    written = {name: getattr(record, name) for name in Row._fields}
    expected = {
        name: getattr(event, name)
        for name in Row._fields
        if name not in ("cost_nanos", "end_user", "created")
    }
    assert written == {
        **expected,
        "cost_nanos": 123,  # what the live balance charged
        "end_user": "ü" * 256,
        "created": dt.datetime(2026, 11, 15, 12, tzinfo=dt.UTC),
    }
