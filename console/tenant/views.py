"""The tenant console: dashboard, usage (page and CSV) and audit log.

Keys and members have modules of their own (keys_views.py, members_views.py).
Every view gets its tenant through ``TenantViewMixin`` (console/scoping.py)
and reads tenant objects only through querysets scoped to that tenant.

Who may do what: owners and members may see everything here, issue and
rename keys; only owners may revoke keys, manage members and read the audit
log. Owner-only views set ``owner_only = True`` and give members a 404.
"""

from __future__ import annotations

import logging

import redis
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.generic import TemplateView, View

from accounts.models import AuditEvent, Membership
from billing import ledger, live_sync
from console.formatting import currency_name
from console.scoping import TenantViewMixin
from console.tenant import csv_export, reports
from console.tenant.filters import querystring, usage_filter

log = logging.getLogger(__name__)

PAGE_SIZE = 50


class TenantPage(TenantViewMixin):
    """A page of the tenant console: adds what the navigation needs."""

    @property
    def is_owner(self) -> bool:
        return self.membership.role == Membership.Role.OWNER

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            is_owner=self.is_owner,
            # The currency as the reader names it (USD, 美元), for column headings.
            currency_code=currency_name(),
            # For the tenant switcher (shown when there is more than one).
            memberships=Membership.objects.filter(user=self.request.user)
            .select_related("tenant")
            .order_by("tenant__slug"),
        )
        return context


def _live_balance_nanos(tenant_id: int) -> tuple[int, int] | None:
    """(balance, held) as the request path sees them; None when not loaded or
    Redis is unreachable (the dashboard still shows the book balance)."""
    try:
        return live_sync.live_balance(tenant_id)
    except redis.RedisError as exc:
        log.warning("live balance of tenant %s not readable: %s", tenant_id, exc)
        return None


class DashboardView(TenantPage, TemplateView):
    template_name = "console/dashboard.html"

    def get_context_data(self, **kwargs):
        day = reports.today()
        rows = reports.rollups(self.tenant)
        report = reports.daily_by_model(rows, end=day, days=30)
        live = _live_balance_nanos(self.tenant.pk)
        return super().get_context_data(
            today=day,
            balance_nanos=ledger.balance_nanos(self.tenant),
            live_balance_nanos=live[0] if live else None,
            live_held_nanos=live[1] if live else None,
            spend_today=reports.totals(rows.filter(day=day)),
            spend_month=reports.totals(rows.filter(day__gte=day.replace(day=1), day__lte=day)),
            report=report,
            top_keys=reports.top_keys(self.tenant, start=report.days[0], end=day),
            **kwargs,
        )


class UsageView(TenantPage, TemplateView):
    template_name = "console/usage.html"

    def get_context_data(self, **kwargs):
        records, form = usage_filter(self.tenant, self.request.GET)
        # Totals over every filtered record, not just this page.
        sums = records.aggregate(
            count=Count("pk"), tokens=Sum("tokens"), cost_nanos=Sum("cost_nanos")
        )
        paginator = Paginator(records, PAGE_SIZE)
        paginator.count = sums["count"]  # known already: spare a second COUNT(*)
        page = paginator.get_page(self.request.GET.get("page"))
        valid = form.is_valid()
        return super().get_context_data(
            form=form,
            page_obj=page,
            totals={name: value or 0 for name, value in sums.items()},
            filters=querystring(form) if valid else "",
            known_models=reports.rollups(self.tenant)
            .values_list("model", flat=True)
            .order_by("model")
            .distinct(),
            **kwargs,
        )


class UsageCsvView(TenantPage, View):
    """The usage page's filtered records, every page of them, as CSV."""

    def get(self, request, *args, **kwargs):
        records, _form = usage_filter(self.tenant, request.GET)
        response = StreamingHttpResponse(
            csv_export.body(records, request), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="usage-{self.tenant.slug}.csv"'
        return response


class AuditView(TenantPage, TemplateView):
    """The tenant's sensitive changes (keys issued, revoked; members changed)."""

    owner_only = True
    template_name = "console/audit.html"

    def get_context_data(self, **kwargs):
        events = (
            AuditEvent.objects.filter(tenant=self.tenant)
            .select_related("actor")
            .order_by("-created", "-pk")
        )
        page = Paginator(events, PAGE_SIZE).get_page(self.request.GET.get("page"))
        members = set(
            Membership.objects.filter(tenant=self.tenant).values_list("user_id", flat=True)
        )
        for event in page:
            # The operator's staff are not named to tenants.
            event.who = (
                event.actor.get_username()
                if event.actor_id in members
                else _("your provider")
                if event.actor_id
                else _("system")
            )
        return super().get_context_data(page_obj=page, **kwargs)
