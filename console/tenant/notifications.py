"""The tenant console's notifications page: owners set the balance below
which they are e-mailed (relay/notices/tenants.py sends it, once per
crossing); key expiry notices need no setting (7 and 1 days before)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView

from accounts.models import AuditEvent, Tenant
from billing import ledger
from billing.pricing import from_nanos, to_nanos
from console.tenant.forms import amount_field
from console.tenant.views import TenantPage


class ThresholdForm(forms.Form):
    threshold = amount_field(
        gettext_lazy("Low balance alert below"),
        help_text=gettext_lazy(
            "The owners get one e-mail when the balance falls below this, and another only "
            "after it was topped up above it and fell again. Empty: no alert."
        ),
    )


def set_threshold(*, actor, tenant: Tenant, threshold_nanos: int | None) -> bool:
    """Store the threshold (audited); a new threshold is a new crossing to watch."""
    with transaction.atomic():
        # Django's exclude() keeps the NULL rows: "changed" includes off -> on.
        updated = Tenant.objects.filter(pk=tenant.pk).exclude(
            low_balance_threshold_nanos=threshold_nanos
        )
        if not updated.update(
            low_balance_threshold_nanos=threshold_nanos, low_balance_notified=False
        ):
            return False
        AuditEvent.log(
            actor=actor,
            tenant=tenant,
            action="tenant.low_balance_threshold",
            target=tenant.slug,
            threshold_nanos=threshold_nanos,
        )
    return True


class NotificationsView(TenantPage, TemplateView):
    owner_only = True
    template_name = "console/notifications.html"

    def get_context_data(self, **kwargs):
        threshold = self.tenant.low_balance_threshold_nanos
        kwargs.setdefault(
            "form",
            ThresholdForm(
                initial={
                    "threshold": from_nanos(threshold).normalize()
                    if threshold is not None
                    else None
                }
            ),
        )
        balance = ledger.balance_nanos(self.tenant)
        return super().get_context_data(
            balance_nanos=balance,
            threshold_nanos=threshold,
            below=threshold is not None and balance < threshold,
            notice_days=settings.RELAY_KEY_EXPIRY_NOTICE_DAYS,
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        form = ThresholdForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        amount = form.cleaned_data["threshold"]
        nanos = to_nanos(amount) if amount is not None else None
        if set_threshold(actor=request.user, tenant=self.tenant, threshold_nanos=nanos):
            messages.success(request, _("Low balance alert saved."))
        return redirect("console:notifications")
