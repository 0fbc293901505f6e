"""The operator console (staff only): shared pieces, the overview and the audit log.

Views by noun live beside this module: operator_tenants.py, operator_pricing.py,
operator_channels.py and operator_reports.py. Every view is a
``OperatorViewMixin`` view, so a signed-out visitor is sent to sign in and a
signed-in non-staff user gets 403 on every URL under /operator/.
Changes go through relay/operations/actions.py, which writes the audit log.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404
from django.views.generic import ListView, TemplateView

from accounts.models import ApiKey, AuditEvent, Tenant
from billing import reports
from billing.models import Balance
from console.operator.forms import AuditFilterForm
from console.scoping import StaffViewMixin
from relay.models import Channel
from relay.operations import redemption
from relay.operations.actions import ACTIONS


class OperatorViewMixin(StaffViewMixin):
    """Staff only; ``section`` marks the current item of the navigation."""

    section = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["section"] = self.section
        return context


class CreateOrEditMixin:
    """One page both creates (no ``pk`` in the URL) and edits an object:
    ``self.object`` is the object, or None. Looked up only for staff, so a
    non-staff caller learns nothing about which ids exist."""

    edit_model = None

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.object = None

    def dispatch(self, request, *args, **kwargs):
        if "pk" in kwargs and request.user.is_authenticated and request.user.is_staff:
            self.object = get_object_or_404(self.edit_model, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)


def form_error(form, error) -> None:
    """Put an ``ActionRefused`` on its field of ``form`` (or on the whole form)."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


class HomeView(OperatorViewMixin, TemplateView):
    template_name = "operator/home.html"
    section = "home"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        today = dt.datetime.now(dt.UTC).date()
        context["today"] = reports.usage_by(breakdown="day", start=today, end=today)
        context["tenants"] = Tenant.objects.aggregate(
            total=Count("pk"), suspended=Count("pk", filter=Q(status=Tenant.Status.SUSPENDED))
        )
        context["held_nanos"] = Balance.objects.aggregate(s=Sum("balance_nanos"))["s"] or 0
        context["active_keys"] = ApiKey.objects.active().count()
        context["channels"] = Channel.objects.aggregate(
            total=Count("pk"), enabled=Count("pk", filter=Q(enabled=True))
        )
        return context


class AuditLogView(OperatorViewMixin, ListView):
    template_name = "operator/audit.html"
    section = "audit"
    paginate_by = 50

    def get_queryset(self):
        self.filter_form = AuditFilterForm(self.request.GET or None)
        events = AuditEvent.objects.select_related("actor", "tenant").order_by("-created", "-pk")
        if self.filter_form.is_valid():
            if self.filter_form.cleaned_data["tenant"]:
                events = events.filter(tenant=self.filter_form.cleaned_data["tenant"])
            if self.filter_form.cleaned_data["action"]:
                events = events.filter(action=self.filter_form.cleaned_data["action"])
        elif self.filter_form.is_bound:
            events = events.none()
        return events

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["filter_form"] = self.filter_form
        context["actions"] = ACTIONS + redemption.ACTIONS
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query"] = query.urlencode()
        return context
