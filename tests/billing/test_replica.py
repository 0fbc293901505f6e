"""Reports may read a replica (DATABASE_REPLICA_URL); the money path never
does (billing/replica.py)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.conf import settings

from billing import reports
from billing.models import Balance, LedgerEntry, UsageRecord
from billing.replica import PrimaryUnlessAskedRouter, reports_db
from tests.helpers import ROOT


def test_nothing_is_read_from_the_replica_unless_asked():
    router = PrimaryUnlessAskedRouter()
    for model in (Balance, LedgerEntry, UsageRecord):
        assert router.db_for_read(model) == "default"
        assert router.db_for_write(model) == "default"
    assert router.allow_migrate("replica", "billing") is False
    assert router.allow_migrate("default", "billing") is True


def test_without_a_replica_reports_read_the_primary():
    assert reports_db() == "default"
    today = dt.date.today()
    assert reports.rollups(start=today, end=today).db == "default"


def test_with_a_replica_reports_read_it_and_the_money_path_does_not(monkeypatch):
    monkeypatch.setitem(settings.DATABASES, "replica", settings.DATABASES["default"])
    today = dt.date.today()
    assert reports.rollups(start=today, end=today).db == "replica"
    assert reports_db() == "replica"
    assert Balance.objects.all().db == "default"
    assert LedgerEntry.objects.all().db == "default"
    assert UsageRecord.objects.all().db == "default"


def test_the_replica_url_configures_a_second_database():
    env = {
        **os.environ,
        "DATABASE_REPLICA_URL": "postgres://reader@replica.example:5432/relay",
        "DJANGO_SETTINGS_MODULE": "relay.settings",
    }
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " r = settings.DATABASES['replica']; print(r['HOST'], r['USER'], r['TEST']['MIRROR'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.strip() == "replica.example reader default"


pytestmark = pytest.mark.django_db
