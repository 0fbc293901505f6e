"""The one door to a tenant's objects in the console.

Every tenant console view gets its tenant from ``current_membership``, never
from an id in the URL alone; lookups of tenant-owned objects go through
``for_tenant()`` querysets with that tenant, so another tenant's ids give 404.
"""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.http import Http404

from accounts.models import Membership, Tenant

SESSION_TENANT = "console_tenant_id"


def current_membership(request) -> Membership:
    """The signed-in user's membership in the tenant they are working in.

    A user may belong to several tenants; the one chosen is kept in the
    session (``?tenant=<slug>`` switches), defaulting to the first.
    """
    memberships = Membership.objects.filter(user=request.user).select_related("tenant")
    wanted = request.GET.get("tenant")
    if wanted:
        membership = memberships.filter(tenant__slug=wanted).first()
        if membership is None:
            raise Http404("No such tenant.")
        request.session[SESSION_TENANT] = membership.tenant_id
        return membership
    chosen = request.session.get(SESSION_TENANT)
    membership = (memberships.filter(tenant_id=chosen).first() if chosen else None) or (
        memberships.order_by("tenant__slug").first()
    )
    if membership is None:
        raise Http404("You are not a member of any tenant.")
    return membership


class TenantViewMixin(LoginRequiredMixin):
    """For tenant console views: ``self.tenant`` and ``self.membership``."""

    owner_only = False

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.membership = current_membership(request)
        self.tenant: Tenant = self.membership.tenant
        if self.owner_only and self.membership.role != Membership.Role.OWNER:
            # Not 403: a member need not learn which owner-only pages exist.
            raise Http404("Only the tenant's owners may do this.")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(tenant=self.tenant, membership=self.membership)
        return context


class StaffViewMixin(LoginRequiredMixin, UserPassesTestMixin):
    """For operator console views: staff only."""

    def test_func(self) -> bool:
        return self.request.user.is_staff
