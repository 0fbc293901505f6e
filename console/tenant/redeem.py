"""The tenant console's redemption page: an owner types a code (兑换码) and its
value is added to the tenant's balance (billing/redemption.py, through the
guessing throttle of console/redemption.py). Owners only: it moves money."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.generic import FormView

from billing import ledger
from billing.models import RedemptionCode
from billing.redemption import RedemptionRefused
from console.formatting import money
from console.redemption import redeem_throttled
from console.tenant.forms import RedeemForm
from console.tenant.views import TenantPage
from relay.lib.addresses import client_ip


class RedeemView(TenantPage, FormView):
    owner_only = True
    template_name = "console/redeem.html"
    form_class = RedeemForm

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            balance_nanos=ledger.balance_nanos(self.tenant),
            redeemed=RedemptionCode.objects.filter(redeemed_tenant=self.tenant)
            .select_related("batch", "redeemed_by")
            .order_by("-redeemed", "-pk")[:20],
            **kwargs,
        )

    def form_valid(self, form):
        try:
            code = redeem_throttled(
                text=form.cleaned_data["code"],
                tenant=self.tenant,
                user=self.request.user,
                address=client_ip(self.request.META),
            )
        except RedemptionRefused as refusal:
            form.add_error("code", refusal.message)
            return self.form_invalid(form)
        messages.success(
            self.request,
            _("Code …%(hint)s redeemed: %(value)s added. The balance is now %(balance)s.")
            % {
                "hint": code.hint,
                "value": money(code.batch.value_nanos),
                "balance": money(ledger.balance_nanos(self.tenant)),
            },
        )
        return redirect("console:redeem")
