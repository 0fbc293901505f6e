"""Operator console: usage reports across tenants, from the daily rollups only.

``/operator/reports/?start=YYYY-MM-DD&end=YYYY-MM-DD[&tenant=slug]`` shows
spend, tokens, requests and error rates by day, tenant, model, channel and
top keys; ``&export=csv`` gives the same rows as a CSV file.
"""

from __future__ import annotations

import csv
import dataclasses

from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext, pgettext_lazy
from django.views.generic import TemplateView

from billing import reports
from console import charts, formatting
from console.operator.forms import ReportForm
from console.operator.views import OperatorViewMixin
from console.reports import operator_report

CSV_HEADER = [
    "breakdown",
    "key",
    "name",
    "requests",
    "failed",
    "error_rate",
    "tokens",
    "spend",
    "spend_nanos",
]
# The header row in the reader's language (the names above in English).
CSV_HEADER_NAMES = {
    "breakdown": pgettext_lazy("report csv", "breakdown"),
    "key": pgettext_lazy("report csv", "key"),
    "name": pgettext_lazy("report csv", "name"),
    "requests": pgettext_lazy("report csv", "requests"),
    "failed": pgettext_lazy("report csv", "failed"),
    "error_rate": pgettext_lazy("report csv", "error_rate"),
    "tokens": pgettext_lazy("report csv", "tokens"),
    "spend": pgettext_lazy("report csv", "spend"),
    "spend_nanos": pgettext_lazy("report csv", "spend_nanos"),
}


def _unattributed_named(rows: list[reports.UsageRow]) -> list[reports.UsageRow]:
    """The row of requests no channel served, named in the reader's language
    (billing names it in English, for the operator API)."""
    label = _("(no channel: every channel failed)")
    return [dataclasses.replace(row, label=label) if row.key is None else row for row in rows]


def sections(report: reports.Report) -> list[tuple[str, str, list[reports.UsageRow]]]:
    """The report's tables in page order: (breakdown, heading, rows)."""
    return [
        ("day", _("By day"), report.by_day),
        ("tenant", _("By tenant"), report.by_tenant),
        ("model", _("By model"), report.by_model),
        ("channel", _("By channel"), _unattributed_named(report.by_channel)),
        (
            "key",
            ngettext(
                "Top %(count)d key by spend", "Top %(count)d keys by spend", len(report.top_keys)
            )
            % {"count": len(report.top_keys)},
            report.top_keys,
        ),
    ]


def error_rate_text(row: reports.UsageRow) -> str:
    rate = row.error_rate
    return "" if rate is None else f"{rate:.6f}"


class ReportView(OperatorViewMixin, TemplateView):
    template_name = "operator/reports.html"
    section = "reports"

    def get(self, request, *args, **kwargs):
        start, end = ReportForm.default_range()
        data = request.GET.copy()
        data.setdefault("start", start.isoformat())
        data.setdefault("end", end.isoformat())
        form = ReportForm(data)
        report = None
        if form.is_valid():
            tenant = form.cleaned_data["tenant"]
            report = operator_report(
                start=form.cleaned_data["start"],
                end=form.cleaned_data["end"],
                tenant_id=tenant.pk if tenant else None,
            )
            if request.GET.get("export") == "csv":
                return self.csv_response(report, tenant=tenant)
        return self.render_to_response(self.get_context_data(form=form, report=report))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        report = kwargs.get("report")
        if report is not None:
            context["sections"] = sections(report)
            spend = pgettext("chart", "spend")
            days = reports.every_day(report.by_day, start=report.start, end=report.end)
            context["daily_spend_chart"] = charts.stacked_bars(
                labels=[row.label for row in days],
                series=[charts.Series(spend, [row.cost_nanos for row in days])],
                colors=charts.colors_for([spend]),
                title=_("Spend per day"),
                format_value=formatting.money,
            )
            models = report.by_model
            context["model_spend_chart"] = charts.stacked_bars(
                labels=[row.label for row in models],
                series=[charts.Series(spend, [row.cost_nanos for row in models])],
                colors=charts.colors_for([spend]),
                title=_("Spend by model"),
                format_value=formatting.money,
            )
            query = self.request.GET.copy()
            query["export"] = "csv"
            context["csv_query"] = query.urlencode()
        return context

    def csv_response(self, report: reports.Report, *, tenant) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        scope = f"-{tenant.slug}" if tenant else ""
        response["Content-Disposition"] = (
            f'attachment; filename="usage{scope}-{report.start}-{report.end}.csv"'
        )
        writer = csv.writer(response)
        writer.writerow([str(CSV_HEADER_NAMES.get(name, name)) for name in CSV_HEADER])
        for breakdown, _heading, rows in sections(report):
            for row in rows:
                writer.writerow(csv_row(breakdown, row))
        writer.writerow(csv_row("total", report.total))
        return response


def csv_row(breakdown: str, row: reports.UsageRow) -> list:
    return [
        breakdown,
        "" if row.key is None else str(row.key),
        row.label,
        row.requests,
        row.failed,
        error_rate_text(row),
        row.tokens,
        formatting.units(row.cost_nanos),
        row.cost_nanos,
    ]
