"""Operator console: tenants, their balances and ledger, their keys."""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import pgettext, pgettext_lazy
from django.views import View
from django.views.generic import FormView, ListView, TemplateView

from accounts.models import ApiKey, AuditEvent, Tenant
from billing import ledger
from billing.models import Balance, LedgerEntry
from console.labels import label
from console.operator.forms import BalanceForm, IssueKeysForm, MemberForm, TenantForm
from console.operator.views import OperatorViewMixin, form_error
from relay.operations import actions

# What "Saved (...)" names: the tenant's fields, in the reader's language.
CHANGED_FIELDS = {
    "name": pgettext_lazy("field", "name"),
    "limit_rpm": pgettext_lazy("field", "limit_rpm"),
    "limit_tpm": pgettext_lazy("field", "limit_tpm"),
    "limit_concurrency": pgettext_lazy("field", "limit_concurrency"),
    "groups": pgettext_lazy("field", "groups"),
}


class TenantMixin(OperatorViewMixin):
    """``self.tenant`` from the URL (staff may see every tenant)."""

    section = "tenants"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.user.is_staff:
            self.tenant = get_object_or_404(Tenant, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tenant"] = self.tenant
        context["balance_nanos"] = ledger.balance_nanos(self.tenant)
        return context


class TenantListView(OperatorViewMixin, ListView):
    template_name = "operator/tenants.html"
    section = "tenants"
    paginate_by = 50

    def get_queryset(self):
        # A subquery, not a join: counted for the page's tenants only.
        active_keys = (
            ApiKey.objects.filter(tenant=OuterRef("pk"), status=ApiKey.Status.ACTIVE)
            .order_by()
            .values("tenant")
            .annotate(n=Count("pk"))
            .values("n")
        )
        tenants = Tenant.objects.annotate(
            balance_nanos=Coalesce("balance__balance_nanos", Value(0)),
            active_keys=Coalesce(Subquery(active_keys), Value(0)),
        ).order_by("slug")
        query = self.request.GET.get("q", "").strip()
        if query:
            tenants = tenants.filter(Q(slug__icontains=query) | Q(name__icontains=query))
        return tenants.prefetch_related("groups")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["q"] = self.request.GET.get("q", "")
        context["query"] = urlencode({"q": context["q"]}) if context["q"] else ""
        context["page_balance_nanos"] = sum(t.balance_nanos for t in context["object_list"])
        context["held_nanos"] = Balance.objects.aggregate(s=Sum("balance_nanos"))["s"] or 0
        return context


class TenantCreateView(OperatorViewMixin, FormView):
    template_name = "operator/tenant_form.html"
    section = "tenants"
    form_class = TenantForm

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            tenant = actions.create_tenant(
                actor=self.request.user,
                slug=data["slug"],
                groups=data["groups"],
                **{name: data[name] for name in actions.TENANT_FIELDS},
            )
        except actions.ActionRefused as error:
            form_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, _("Tenant %(slug)s created.") % {"slug": tenant.slug})
        return redirect("operator:tenant", pk=tenant.pk)


class TenantEditView(TenantMixin, FormView):
    template_name = "operator/tenant_form.html"
    form_class = TenantForm

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        # A copy: a ModelForm writes its data onto its instance while validating.
        kwargs["instance"] = Tenant.objects.get(pk=self.tenant.pk)
        return kwargs

    def form_valid(self, form):
        data = form.cleaned_data
        changed = actions.update_tenant(
            actor=self.request.user,
            tenant=self.tenant,
            groups=data["groups"],
            **{name: data[name] for name in actions.TENANT_FIELDS},
        )
        separator = pgettext("list separator", ", ")
        fields = separator.join(str(CHANGED_FIELDS.get(name, name)) for name in changed)
        messages.success(
            self.request,
            _("Saved (%(fields)s).") % {"fields": fields} if changed else _("Nothing changed."),
        )
        return redirect("operator:tenant", pk=self.tenant.pk)


class TenantDetailView(TenantMixin, TemplateView):
    template_name = "operator/tenant_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["balance_form"] = kwargs.get("balance_form") or BalanceForm()
        context["groups"] = self.tenant.groups.order_by("name")
        context["ledger"] = (
            LedgerEntry.objects.for_tenant(self.tenant)
            .select_related("created_by")
            .order_by("-created", "-pk")[:10]
        )
        context["keys"] = ApiKey.objects.for_tenant(self.tenant).aggregate(
            total=Count("pk"), active=Count("pk", filter=Q(status=ApiKey.Status.ACTIVE))
        )
        context["member_form"] = kwargs.get("member_form") or MemberForm()
        context["members"] = self.tenant.memberships.select_related("user").order_by(
            "user__username"
        )
        context["events"] = (
            AuditEvent.objects.filter(tenant=self.tenant)
            .select_related("actor")
            .order_by("-created", "-pk")[:10]
        )
        return context


class TenantMemberView(TenantMixin, View):
    """POST: add a member (or change a member's role) from the tenant page."""

    def get(self, request, pk):
        return redirect("operator:tenant", pk=pk)

    def post(self, request, pk):
        form = MemberForm(request.POST)
        if form.is_valid():
            try:
                actions.add_member(actor=request.user, tenant=self.tenant, **form.cleaned_data)
            except actions.ActionRefused as error:
                messages.error(request, error.message)
            else:
                messages.success(
                    request,
                    _("%(username)s can sign in now.")
                    % {"username": form.cleaned_data["username"]},
                )
        else:
            messages.error(
                request, _("Check the member form: %(errors)s") % {"errors": form.errors.as_text()}
            )
        return redirect("operator:tenant", pk=self.tenant.pk)


class TenantStatusView(TenantMixin, View):
    """POST ``status=suspended|active``."""

    def post(self, request, pk):
        status = request.POST.get("status", "")
        try:
            changed = actions.set_tenant_status(
                actor=request.user, tenant=self.tenant, status=status
            )
        except actions.ActionRefused as error:
            messages.error(request, error.message)
        else:
            if changed:
                messages.success(
                    request,
                    _("Tenant %(slug)s is now %(status)s.")
                    % {"slug": self.tenant.slug, "status": label(status)},
                )
        return redirect("operator:tenant", pk=self.tenant.pk)


class TenantBalanceView(TenantMixin, FormView):
    """Top up or adjust; on a refusal the tenant page shows the form's errors."""

    template_name = "operator/tenant_detail.html"
    form_class = BalanceForm

    def get(self, request, pk):
        return redirect("operator:tenant", pk=pk)

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            if data["kind"] == LedgerEntry.Kind.TOPUP:
                actions.top_up(
                    actor=self.request.user,
                    tenant=self.tenant,
                    amount_nanos=data["amount_nanos"],
                    reason=data["reason"],
                )
            else:
                actions.adjust(
                    actor=self.request.user,
                    tenant=self.tenant,
                    amount_nanos=data["amount_nanos"],
                    reason=data["reason"],
                )
        except actions.ActionRefused as error:
            form_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, _("Balance updated."))
        return redirect("operator:tenant", pk=self.tenant.pk)

    def form_invalid(self, form):
        view = TenantDetailView()
        view.setup(self.request, pk=self.tenant.pk)
        view.tenant = self.tenant
        context = view.get_context_data(balance_form=form)
        return self.render_to_response(context)


class TenantLedgerView(TenantMixin, ListView):
    template_name = "operator/ledger.html"
    paginate_by = 50

    def get_queryset(self):
        return (
            LedgerEntry.objects.for_tenant(self.tenant)
            .select_related("created_by")
            .order_by("-created", "-pk")
        )


class TenantKeysView(TenantMixin, ListView):
    template_name = "operator/keys.html"
    paginate_by = 50

    def get_queryset(self):
        return (
            ApiKey.objects.for_tenant(self.tenant)
            .select_related("group")
            .order_by("-created", "-pk")
        )


class IssueKeysView(TenantMixin, FormView):
    """The POST answer is the CSV itself: the only time the secrets exist in the clear."""

    template_name = "operator/keys_issue.html"
    form_class = IssueKeysForm

    def get_initial(self):
        return {"group": self.tenant.groups.order_by("name").first()}

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            issued = actions.issue_keys(
                actor=self.request.user,
                tenant=self.tenant,
                group=data["group"],
                count=data["count"],
                name_prefix=data["name_prefix"],
            )
        except actions.ActionRefused as error:
            form_error(form, error)
            return self.form_invalid(form)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        filename = f"keys-{self.tenant.slug}-{data['group'].name}-{data['name_prefix']}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        # Never kept by a browser or proxy cache: this is the one copy of the secrets.
        response["Cache-Control"] = "no-store"
        writer = csv.writer(response)
        writer.writerow(
            [
                pgettext("keys csv", "name"),
                pgettext("keys csv", "secret"),
                pgettext("keys csv", "prefix"),
            ]
        )
        for item in issued:
            writer.writerow([item.key.name, item.secret, item.key.prefix])
        return response


class RevokeKeyView(TenantMixin, View):
    def post(self, request, pk, key_pk):
        # Looked up through the tenant: a key id of another tenant gives 404.
        key = get_object_or_404(ApiKey.objects.for_tenant(self.tenant), pk=key_pk)
        if actions.revoke_key(actor=request.user, key=key):
            messages.success(
                request,
                _("Key %(name)s (%(masked)s) revoked.") % {"name": key.name, "masked": key.masked},
            )
        return redirect(reverse("operator:tenant_keys", kwargs={"pk": self.tenant.pk}))
