"""The tenant console's members page: owners add, re-role and remove members."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.generic import TemplateView

from accounts.models import Membership
from console.labels import label
from console.tenant import memberships
from console.tenant.forms import MemberAddForm, MemberRoleForm
from console.tenant.views import TenantPage


def _members(tenant):
    return Membership.objects.filter(tenant=tenant).select_related("user")


class MemberLookup:
    """``self.member``: a membership of the tenant, or 404, before any handler
    runs. List it after ``TenantPage`` in a view's bases."""

    def dispatch(self, request, *args, **kwargs):
        self.member = get_object_or_404(_members(self.tenant), pk=kwargs["member_id"])
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(member=self.member, **kwargs)

    def done(self):
        """Back to the members page, or the dashboard if the owner gave up
        being one (the members page would now be a 404 to them)."""
        if Membership.objects.filter(
            tenant=self.tenant, user=self.request.user, role=Membership.Role.OWNER
        ).exists():
            return redirect("console:members")
        return redirect("console:dashboard")


class MemberListView(TenantPage, TemplateView):
    """GET lists the members; POST adds one."""

    owner_only = True
    template_name = "console/members/list.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", MemberAddForm(tenant=self.tenant))
        members = _members(self.tenant).order_by("user__username")
        # One small form per row; distinct ids, the same field name as the role page.
        rows = [
            (m, MemberRoleForm(initial={"role": m.role}, auto_id=f"id_m{m.pk}_%s")) for m in members
        ]
        return super().get_context_data(rows=rows, **kwargs)

    def post(self, request, *args, **kwargs):
        form = MemberAddForm(request.POST, tenant=self.tenant)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        user, role = form.cleaned_data["username"], form.cleaned_data["role"]
        try:
            memberships.add_member(tenant=self.tenant, user=user, role=role, actor=request.user)
        except memberships.AlreadyMember:
            messages.error(
                request, _("%(username)s is already a member.") % {"username": user.get_username()}
            )
        else:
            messages.success(
                request,
                _("%(username)s added as %(role)s.")
                % {"username": user.get_username(), "role": label(role)},
            )
        return redirect("console:members")


class MemberRoleView(TenantPage, MemberLookup, TemplateView):
    owner_only = True
    template_name = "console/members/role.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", MemberRoleForm(initial={"role": self.member.role}))
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        form = MemberRoleForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        username = self.member.user.get_username()
        try:
            memberships.change_role(
                membership=self.member, role=form.cleaned_data["role"], actor=request.user
            )
        except memberships.LastOwner:
            messages.error(
                request,
                _("%(username)s is the last owner; make someone else an owner first.")
                % {"username": username},
            )
            return redirect("console:members")
        messages.success(
            request,
            _("%(username)s is now %(role)s.")
            % {"username": username, "role": label(form.cleaned_data["role"])},
        )
        return self.done()


class MemberRemoveView(TenantPage, MemberLookup, TemplateView):
    """GET asks for confirmation; POST removes."""

    owner_only = True
    template_name = "console/members/remove.html"

    def post(self, request, *args, **kwargs):
        username = self.member.user.get_username()
        try:
            memberships.remove_member(membership=self.member, actor=request.user)
        except memberships.LastOwner:
            messages.error(
                request,
                _("%(username)s is the last owner and cannot be removed.") % {"username": username},
            )
            return redirect("console:members")
        messages.success(request, _("%(username)s removed.") % {"username": username})
        return self.done()
