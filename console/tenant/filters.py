"""The usage filter: one function, used by the usage page and its CSV export,
so the rows a tenant sees and the rows they download can never disagree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.db.models import QuerySet
from django.http import Http404
from django.utils.http import urlencode

from accounts.models import Tenant
from billing import replica
from billing.models import UsageRecord
from console.tenant.forms import UsageFilterForm
from console.tenant.reports import today

FIELDS = ("key", "model", "status", "since", "until")
DEFAULT_DAYS = 30


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def usage_filter(
    tenant: Tenant, params: Mapping[str, str]
) -> tuple[QuerySet[UsageRecord], UsageFilterForm]:
    """The tenant's usage records that ``params`` select, newest first, and the
    bound form (its ``cleaned_data`` are the filters applied).

    With no filter given at all (a first visit), the last 30 days are shown;
    a filter form submitted with empty dates means every day. A key id that
    is not one of this tenant's keys is a 404, like everywhere else; any other
    invalid filter selects nothing (the form says why).
    """
    data = {name: params.get(name, "") for name in FIELDS}
    if not any(name in params for name in FIELDS):
        data["since"] = (today() - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat()
    form = UsageFilterForm(data, tenant=tenant)
    records = UsageRecord.objects.using(replica.reports_db()).for_tenant(tenant)
    if not form.is_valid():
        if "key" in form.errors:
            raise Http404("No such key.")
        return records.none(), form
    f = form.cleaned_data
    if f["key"] is not None:
        records = records.filter(api_key=f["key"])
    if f["model"]:
        records = records.filter(model=f["model"])
    if f["status"]:
        records = records.filter(status=f["status"])
    if f["since"]:
        records = records.filter(created__gte=_midnight(f["since"]))
    if f["until"]:
        records = records.filter(created__lt=_midnight(f["until"] + dt.timedelta(days=1)))
    return records.select_related("api_key").order_by("-created", "-pk"), form


def querystring(form: UsageFilterForm) -> str:
    """Every filter field of a valid form, empty ones too (so an empty date
    keeps meaning "every day" in links built from it, e.g. the CSV export)."""
    values = {}
    for name in FIELDS:
        value = form.cleaned_data.get(name)
        if value is None:
            value = ""
        elif hasattr(value, "pk"):
            value = value.pk
        elif isinstance(value, dt.date):
            value = value.isoformat()
        values[name] = value
    return urlencode(values)
