"""Operator console: redemption codes (兑换码), made in batches.

The answer to the POST that makes a batch is the only page that ever shows
its codes (``Cache-Control: no-store``): the relay keeps only their digests
(billing/redemption.py). That page offers them to copy all at once and as a
CSV file, built into the page itself so that no later request can fetch them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext
from django.views import View
from django.views.generic import FormView, ListView

from accounts.models import Tenant
from billing.models import RedemptionBatch, RedemptionCode
from billing.redemption import MadeBatch
from console.formatting import units
from console.operator.forms import _money_field, _nanos
from console.operator.views import OperatorViewMixin, form_error
from relay.operations import redemption
from relay.operations.actions import ActionRefused


class CodeBatchForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        required=False,
        label=_("Note"),
        help_text=_("For you: what the codes are for (shown in lists, never to tenants)."),
    )
    count = forms.IntegerField(
        min_value=1,
        max_value=redemption.MAX_CODES_PER_BATCH,
        initial=10,
        label=_("How many codes"),
    )
    value = _money_field(_("Value of each code"), help_text=_("In currency units."))
    expires = forms.DateField(
        required=False,
        label=_("Valid until"),
        help_text=_(
            "The last day a code can be redeemed (inclusive, in the server's time "
            "zone). Blank: never expires."
        ),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("slug"),
        required=False,
        to_field_name="slug",
        empty_label=_("Any tenant"),
        label=_("Only for tenant"),
    )

    def clean(self):
        data = super().clean()
        if data.get("value") is not None:
            try:
                data["value_nanos"] = _nanos(data["value"])
            except forms.ValidationError as error:
                self.add_error("value", error)
                return data
            if data["value_nanos"] <= 0:
                self.add_error("value", _t("A code's value must be more than zero."))
        day = data.get("expires")
        # A code is good through its last day: it expires at the next midnight.
        data["expires_at"] = (
            timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))
            if day
            else None
        )
        return data


def batch_csv(made: MadeBatch) -> str:
    """The batch's codes as CSV text, headings in the reader's language.

    Starts with a byte order mark: spreadsheet programs otherwise read
    UTF-8 (the Chinese headings) as the system's legacy encoding.
    """
    batch = made.batch
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            pgettext("codes csv", "code"),
            pgettext("codes csv", "value"),
            pgettext("codes csv", "valid until"),
            pgettext("codes csv", "tenant"),
            pgettext("codes csv", "batch"),
        ]
    )
    expires = timezone.localtime(batch.expires).isoformat() if batch.expires else ""
    tenant = batch.tenant.slug if batch.tenant else ""
    for code in made.codes:
        writer.writerow([code, units(batch.value_nanos), expires, tenant, batch.pk])
    return "\ufeff" + out.getvalue()


class CodeBatchListView(OperatorViewMixin, FormView, ListView):
    """GET: the batches and the form; POST: make a batch and show its codes once."""

    template_name = "operator/codes.html"
    section = "codes"
    form_class = CodeBatchForm
    paginate_by = 50

    def get_queryset(self):
        return redemption.batches()

    def get(self, request, *args, **kwargs):
        self.object_list = self.get_queryset()
        return self.render_to_response(self.get_context_data())

    def post(self, request, *args, **kwargs):
        self.object_list = self.get_queryset()
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["now"] = timezone.now()
        return context

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            made = redemption.create_batch(
                actor=self.request.user,
                count=data["count"],
                value_nanos=data["value_nanos"],
                expires=data["expires_at"],
                tenant=data["tenant"],
                name=data["name"],
            )
        except ActionRefused as error:
            form_error(form, error)
            return self.form_invalid(form)
        response = self.response_class(
            request=self.request,
            template="operator/codes_created.html",
            context=self.get_context_data(
                batch=made.batch,
                codes=made.codes,
                csv_href="data:text/csv;charset=utf-8," + quote(batch_csv(made)),
                csv_name=f"codes-batch-{made.batch.pk}.csv",
            ),
        )
        # Never kept by a browser or proxy cache: this is the one copy of the codes.
        response["Cache-Control"] = "no-store"
        return response


class CodeBatchView(OperatorViewMixin, ListView):
    """One batch: each code's state, and who redeemed it when."""

    template_name = "operator/code_batch.html"
    section = "codes"
    paginate_by = 100

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.user.is_staff:
            self.batch = get_object_or_404(
                RedemptionBatch.objects.select_related("tenant"), pk=kwargs["pk"]
            )
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        return self.batch.codes.select_related(
            "redeemed_tenant", "redeemed_by", "voided_by"
        ).order_by("pk")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["batch"] = self.batch
        context["unused"] = self.batch.codes.unused().count()
        context["expired"] = self.batch.is_expired()
        return context


class CodeBatchVoidView(OperatorViewMixin, View):
    """POST: void every unused code of the batch."""

    def post(self, request, pk):
        batch = get_object_or_404(RedemptionBatch, pk=pk)
        voided = redemption.void_batch(actor=request.user, batch=batch)
        messages.success(
            request,
            ngettext("%(count)d unused code voided.", "%(count)d unused codes voided.", voided)
            % {"count": voided},
        )
        return redirect("operator:code_batch", pk=batch.pk)


class CodeVoidView(OperatorViewMixin, View):
    """POST: void one unused code (looked up through its batch)."""

    def post(self, request, pk, code_pk):
        code = get_object_or_404(
            RedemptionCode.objects.select_related("batch__tenant"), batch_id=pk, pk=code_pk
        )
        if redemption.void_code(actor=request.user, code=code):
            messages.success(request, _t("Code …%(hint)s voided.") % {"hint": code.hint})
        else:
            messages.error(
                request, _t("Code …%(hint)s was not unused; nothing changed.") % {"hint": code.hint}
            )
        return redirect("operator:code_batch", pk=pk)
