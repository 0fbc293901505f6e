"""Operator console: upstream channels, their models and groups, and the test button.

The credential is write-only: the form's password input is never rendered
with a value, and no template receives it.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from billing import reports
from console.labels import label
from console.operator.forms import ChannelForm, ChannelModelFormSet, ChannelTestForm
from console.operator.views import CreateOrEditMixin, OperatorViewMixin, form_error
from relay.health import probe as channel_probe
from relay.health import state as channel_health
from relay.health import tasks as health_tasks
from relay.models import Channel
from relay.operations import actions


def recent_since() -> dt.date:
    """Error rates cover yesterday and today (UTC): the rollups are daily, so
    this is the last 24 to 48 hours, read without touching usage records."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


class ChannelListView(OperatorViewMixin, TemplateView):
    template_name = "operator/channels.html"
    section = "channels"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        since = recent_since()
        usage = reports.usage_by_channel_since(since)
        attempts = reports.attempts_by_channel_since(since)
        channels = list(
            Channel.objects.prefetch_related("groups", "models").order_by("priority", "name")
        )
        context["rows"] = [
            (
                channel,
                usage.get(channel.pk) or reports.UsageRow(key=channel.pk, label=channel.name),
                attempts.get(channel.pk) or reports.ChannelAttempts(),
            )
            for channel in channels
        ]
        # Requests that failed on every channel are recorded without one.
        context["unattributed"] = usage.get(None)
        context["since"] = since
        return context


class ChannelEditView(OperatorViewMixin, CreateOrEditMixin, TemplateView):
    """Create (no pk) or edit a channel with its models and groups."""

    template_name = "operator/channel_form.html"
    section = "channels"

    edit_model = Channel

    @property
    def channel(self) -> Channel | None:
        return self.object

    def _forms(self, data=None):
        if self.channel is None:
            return ChannelForm(data), ChannelModelFormSet(data, prefix="models")
        # A copy: a ModelForm writes its data onto its instance while validating.
        form = ChannelForm(data, instance=Channel.objects.get(pk=self.channel.pk))
        rows = [
            {
                "model": row.model,
                "upstream_model": row.upstream_model,
                "truncatable": row.truncatable,
            }
            for row in self.channel.models.order_by("model")
        ]
        # Bound, the rows come from the data alone: with initial rows, an
        # unchanged row would count as an untouched extra form and be dropped.
        return form, ChannelModelFormSet(data, prefix="models", initial=None if data else rows)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if "form" not in context:
            context["form"], context["formset"] = self._forms()
        context["channel"] = self.channel
        if self.channel is not None:
            context["has_credential"] = bool(self.channel.credential)
            context["test_form"] = kwargs.get("test_form") or ChannelTestForm(channel=self.channel)
            context["usage"] = reports.usage_by_channel_since(recent_since()).get(self.channel.pk)
            context["since"] = recent_since()
        return context

    def post(self, request, *args, **kwargs):
        form, formset = self._forms(request.POST)
        if form.is_valid() and formset.is_valid():
            data = form.cleaned_data
            try:
                channel = actions.save_channel(
                    actor=request.user,
                    channel=self.channel,
                    fields={name: data[name] for name in actions.CHANNEL_FIELDS},
                    credential=data["credential"] or None,
                    models={row["model"]: row["upstream_model"] for row in formset.rows()},
                    groups=data["groups"],
                    truncatable=[row["model"] for row in formset.rows() if row["truncatable"]],
                ).row
            except actions.ActionRefused as error:
                form_error(form, error)
            else:
                messages.success(request, _("Channel %(name)s saved.") % {"name": channel.name})
                return redirect("operator:channel", pk=channel.pk)
        return self.render_to_response(self.get_context_data(form=form, formset=formset))


class ChannelToggleView(OperatorViewMixin, View):
    """POST ``enabled=1`` or ``enabled=0``."""

    def post(self, request, pk):
        channel = get_object_or_404(Channel, pk=pk)
        enabled = request.POST.get("enabled") == "1"
        if actions.set_channel_enabled(actor=request.user, channel=channel, enabled=enabled):
            state = label("enabled" if enabled else "disabled")
            messages.success(
                request, _("Channel %(name)s %(state)s.") % {"name": channel.name, "state": state}
            )
        if request.POST.get("next") == "list":
            return redirect("operator:channels")
        return redirect("operator:channel", pk=channel.pk)


class ChannelPinView(OperatorViewMixin, View):
    """POST ``pinned=1`` (never taken out of rotation by the relay) or ``pinned=0``."""

    def post(self, request, pk):
        channel = get_object_or_404(Channel, pk=pk)
        pinned = request.POST.get("pinned") == "1"
        if channel_health.set_pinned(actor=request.user, channel=channel, pinned=pinned):
            if pinned:
                text = _("Channel %(name)s pinned: the relay will not take it out of rotation.")
            else:
                text = _("Channel %(name)s unpinned.")
            messages.success(request, text % {"name": channel.name})
        if request.POST.get("next") == "list":
            return redirect("operator:channels")
        return redirect("operator:channel", pk=channel.pk)


class ChannelTestAllView(OperatorViewMixin, View):
    """POST: probe every channel in the background (relay/health/watch.py)."""

    def post(self, request):
        health_tasks.test_all.delay()
        messages.success(
            request,
            _(
                "Testing all %(count)s channels with a real embeddings call each. Reload this page "
                "in a minute: each channel shows its result under Health."
            )
            % {"count": Channel.objects.count()},
        )
        return redirect("operator:channels")


class ChannelTestView(OperatorViewMixin, TemplateView):
    """POST sends one real embeddings request through the channel and shows the result."""

    template_name = "operator/channel_test.html"
    section = "channels"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.user.is_staff:
            self.channel = get_object_or_404(Channel, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, pk):
        return redirect("operator:channel", pk=pk)

    def post(self, request, pk):
        form = ChannelTestForm(request.POST, channel=self.channel)
        if form.is_valid():
            result = channel_probe.probe(channel=self.channel, model=form.cleaned_data["model"])
        elif not form.fields["model"].choices:
            result = channel_probe.probe(channel=self.channel)  # says it serves no models
        else:
            result = None
        return self.render_to_response(
            self.get_context_data(channel=self.channel, form=form, result=result)
        )
