"""Operator console: groups (分组) with their models and prices, and the base price list."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import ListView, TemplateView

from accounts.models import Group
from billing.models import BasePrice
from billing.pricing import from_nanos
from console.operator.forms import BasePriceForm, GroupForm, GroupModelFormSet
from console.operator.views import CreateOrEditMixin, OperatorViewMixin, form_error
from relay.operations import actions


class GroupListView(OperatorViewMixin, ListView):
    template_name = "operator/groups.html"
    section = "groups"

    def get_queryset(self):
        return (
            Group.objects.annotate(
                model_count=Count("models", distinct=True),
                tenant_count=Count("tenants", distinct=True),
            )
            .prefetch_related("channels")
            .order_by("name")
        )


class GroupEditView(OperatorViewMixin, CreateOrEditMixin, TemplateView):
    """Create (no pk) or edit a group with its model rows and channels."""

    template_name = "operator/group_form.html"
    section = "groups"

    edit_model = Group

    @property
    def group(self) -> Group | None:
        return self.object

    def _forms(self, data=None):
        if self.group is None:
            return GroupForm(data), GroupModelFormSet(data, prefix="models")
        # A copy: a ModelForm writes its data onto its instance while validating.
        form = GroupForm(
            data,
            instance=Group.objects.get(pk=self.group.pk),
            initial={"channels": list(self.group.channels.all())},
        )
        rows = [
            {
                "model": row.model,
                "price": None
                if row.price_per_mtok_nanos is None
                else from_nanos(row.price_per_mtok_nanos),
            }
            for row in self.group.models.order_by("model")
        ]
        # Bound, the rows come from the data alone: with initial rows, an
        # unchanged row would count as an untouched extra form and be dropped.
        return form, GroupModelFormSet(data, prefix="models", initial=None if data else rows)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if "form" not in context:
            context["form"], context["formset"] = self._forms()
        context["group"] = self.group
        if self.group is not None:
            context["effective_prices"] = sorted(actions.effective_prices(self.group).items())
            context["tenants"] = self.group.tenants.order_by("slug")
        context["base_prices"] = BasePrice.objects.order_by("model")
        return context

    def post(self, request, *args, **kwargs):
        form, formset = self._forms(request.POST)
        if form.is_valid() and formset.is_valid():
            data = form.cleaned_data
            try:
                group = actions.save_group(
                    actor=request.user,
                    group=self.group,
                    fields={name: data[name] for name in actions.GROUP_FIELDS},
                    models={row["model"]: row["price"] for row in formset.rows()},
                    channels=data["channels"],
                ).row
            except actions.ActionRefused as error:
                form_error(form, error)
            else:
                messages.success(request, _("Group %(name)s saved.") % {"name": group.name})
                return redirect("operator:group", pk=group.pk)
        return self.render_to_response(self.get_context_data(form=form, formset=formset))


class BasePriceView(OperatorViewMixin, TemplateView):
    """The base price list; the form adds a model or changes its price."""

    template_name = "operator/prices.html"
    section = "groups"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", BasePriceForm())
        context["prices"] = BasePrice.objects.order_by("model")
        return context

    def post(self, request):
        form = BasePriceForm(request.POST)
        if form.is_valid():
            price = actions.set_base_price(
                actor=request.user,
                model=form.cleaned_data["model"],
                price_per_mtok_nanos=form.cleaned_data["price"],
            ).row
            messages.success(request, _("Base price of %(model)s saved.") % {"model": price.model})
            return redirect("operator:prices")
        return self.render_to_response(self.get_context_data(form=form))


class BasePriceDeleteView(OperatorViewMixin, View):
    def post(self, request, pk):
        price = get_object_or_404(BasePrice, pk=pk)
        try:
            actions.delete_base_price(actor=request.user, price=price)
        except actions.ActionRefused as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request, _("Base price of %(model)s removed.") % {"model": price.model}
            )
        return redirect("operator:prices")
