"""The tenant console's API keys: list, issue, detail, rename, revoke.

A key's secret exists in exactly one response: the one answering the POST
that issued it. It is never put in the session, a message, a redirect or a
log; afterwards only the masked form (``sk-abcd...wxyz``) is shown.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.debug import sensitive_variables
from django.views.generic import TemplateView

from accounts.models import ApiKey, AuditEvent
from billing.models import UsageRecord
from console.tenant import reports
from console.tenant.forms import LIMITS, KeyIssueForm, KeyRenameForm
from console.tenant.views import PAGE_SIZE, TenantPage

# Form nonces of the keys issued lately, per session: a reload of the page
# showing a new secret re-posts the form, and must not issue a second key.
ISSUED_NONCES = "console_issued_key_nonces"
ISSUED_NONCES_KEPT = 20
# A key's own limits, named on its page.
LIMIT_NAMES = {
    "limit_rpm": pgettext_lazy("limit", "rpm"),
    "limit_tpm": pgettext_lazy("limit", "tpm"),
    "limit_concurrency": pgettext_lazy("limit", "concurrency"),
}


def state(key: ApiKey) -> str:
    if key.status == ApiKey.Status.REVOKED:
        return "revoked"
    if key.expires is not None and key.expires <= timezone.now():
        return "expired"
    return "active"


def audit_target(key: ApiKey) -> str:
    return f"{key.name[:180]} ({key.masked})"


class KeyLookup:
    """``self.key``: one of the tenant's keys, or 404, before any handler runs
    (so another tenant's key id is a 404 whatever the method).

    List it after ``TenantPage`` in a view's bases: it needs ``self.tenant``.
    """

    def dispatch(self, request, *args, **kwargs):
        self.key = get_object_or_404(
            ApiKey.objects.for_tenant(self.tenant).select_related("group"), pk=kwargs["key_id"]
        )
        self.key.state = state(self.key)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(key=self.key, **kwargs)


class KeyListView(TenantPage, TemplateView):
    template_name = "console/keys/list.html"

    def get_context_data(self, **kwargs):
        keys = (
            ApiKey.objects.for_tenant(self.tenant)
            .select_related("group")
            .order_by("-created", "-pk")
        )
        page = Paginator(keys, PAGE_SIZE).get_page(self.request.GET.get("page"))
        ids = [key.pk for key in page]
        month = reports.by_key(self.tenant, ids, start=reports.today().replace(day=1))
        ever = reports.by_key(self.tenant, ids)
        for key in page:
            key.state = state(key)
            key.month = month.get(key.pk, {})
            key.spent_nanos = ever.get(key.pk, {}).get("cost_nanos", 0)
        return super().get_context_data(page_obj=page, **kwargs)


class KeyIssueView(TenantPage, TemplateView):
    template_name = "console/keys/issue.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault(
            "form",
            KeyIssueForm(tenant=self.tenant, initial={"nonce": secrets.token_urlsafe(16)}),
        )
        groups = self.tenant.groups.prefetch_related("models").order_by("name")
        return super().get_context_data(groups=groups, **kwargs)

    @method_decorator(sensitive_variables("secret"))
    def post(self, request, *args, **kwargs):
        form = KeyIssueForm(request.POST, tenant=self.tenant)
        with timezone.override(dt.UTC):  # the expiry is typed in UTC
            valid = form.is_valid()
        if not valid:
            return self.render_to_response(self.get_context_data(form=form))
        issued = request.session.get(ISSUED_NONCES, {})
        nonce = form.cleaned_data["nonce"]
        if nonce and nonce in issued:
            existing = ApiKey.objects.for_tenant(self.tenant).filter(pk=issued[nonce]).first()
            if existing is not None:
                messages.info(
                    request,
                    _(
                        "That form was already sent: key %(key)s exists. "
                        "Its secret was shown once, when it was created."
                    )
                    % {"key": existing},
                )
                return redirect("console:key_detail", key_id=existing.pk)
        data = form.cleaned_data
        with transaction.atomic():
            key, secret = ApiKey.issue(
                tenant=self.tenant, group=data["group"], name=data["name"], **form.key_fields()
            )
            AuditEvent.log(
                actor=request.user,
                tenant=self.tenant,
                action="key.issued",
                target=audit_target(key),
                group=key.group.name,
            )
        if nonce:
            issued[nonce] = key.pk
            request.session[ISSUED_NONCES] = dict(list(issued.items())[-ISSUED_NONCES_KEPT:])
        key.state = state(key)
        example_model = (
            key.allowed_models
            or list(key.group.models.order_by("model").values_list("model", flat=True)[:1])
            or ["text-embedding-3-small"]
        )[0]
        response = TemplateResponse(
            request,
            "console/keys/created.html",
            self.get_context_data(key=key, secret=secret, example_model=example_model),
        )
        # Nothing between here and the browser may keep the page with the secret.
        add_never_cache_headers(response)
        return response


class KeyDetailView(TenantPage, KeyLookup, TemplateView):
    template_name = "console/keys/detail.html"

    def get_context_data(self, **kwargs):
        key = self.key
        rows = reports.rollups(self.tenant).filter(api_key=key)
        report = reports.daily_by_model(rows, end=reports.today(), days=30)
        recent = (
            UsageRecord.objects.for_tenant(self.tenant)
            .filter(api_key=key)
            .order_by("-created", "-pk")[:25]
        )
        limits = [
            (LIMIT_NAMES[name], getattr(key, name), getattr(key.group, name)) for name in LIMITS
        ]
        return super().get_context_data(
            report=report,
            used_days=[day for day in report.by_day if day["requests"]],
            recent=recent,
            spent_nanos=reports.totals(rows)["cost_nanos"],
            limits=limits,
            rename_form=KeyRenameForm(initial={"name": key.name}),
            **kwargs,
        )


class KeyRenameView(TenantPage, KeyLookup, TemplateView):
    template_name = "console/keys/rename.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", KeyRenameForm(initial={"name": self.key.name}))
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        form = KeyRenameForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        key, old_name = self.key, self.key.name
        with transaction.atomic():
            key.name = form.cleaned_data["name"]
            key.save(update_fields=["name"])
            AuditEvent.log(
                actor=request.user,
                tenant=self.tenant,
                action="key.renamed",
                target=audit_target(key),
                old_name=old_name,
            )
        messages.success(request, _("Key renamed to %(name)s.") % {"name": key.name})
        return redirect("console:key_detail", key_id=key.pk)


class KeyRevokeView(TenantPage, KeyLookup, TemplateView):
    """GET asks for confirmation; POST revokes. Owners only."""

    owner_only = True
    template_name = "console/keys/revoke.html"

    def post(self, request, *args, **kwargs):
        with transaction.atomic():
            # Locked: two owners revoking at once must not log it twice.
            key = ApiKey.objects.select_for_update().get(pk=self.key.pk)
            if key.status == ApiKey.Status.REVOKED:
                messages.info(request, _("Key %(key)s was already revoked.") % {"key": key})
                return redirect("console:key_detail", key_id=key.pk)
            key.revoke()
            AuditEvent.log(
                actor=request.user,
                tenant=self.tenant,
                action="key.revoked",
                target=audit_target(key),
            )
        messages.success(
            request, _("Key %(key)s revoked; it stops working within seconds.") % {"key": key}
        )
        return redirect("console:key_detail", key_id=key.pk)
