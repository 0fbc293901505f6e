"""Operator API: upstream channels (credential write-only) and the channel test."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from console.api import channel_serializers as s
from console.api.base import Pagination, StaffApi
from console.api.views.tenants import groups_named
from relay.health import probe as channel_probe
from relay.health import state as channel_health
from relay.health import tasks as health_tasks
from relay.models import Channel
from relay.operations import actions

TAG = "channels"


def channels():
    return Channel.objects.prefetch_related("groups", "models").order_by("priority", "name")


def _save(request, channel: Channel | None, data: dict) -> Channel:
    models = truncatable = None
    if "models" in data:
        models = {row["model"]: row["upstream_model"] for row in data["models"]}
        truncatable = [row["model"] for row in data["models"] if row["truncatable"]]
    return actions.save_channel(
        actor=request.user,
        channel=channel,
        fields={name: data[name] for name in actions.CHANNEL_FIELDS if name in data},
        credential=data.get("credential") or None,
        models=models,
        groups=groups_named(data["groups"]) if "groups" in data else None,
        truncatable=truncatable,
    ).row


@extend_schema(tags=[TAG], responses=s.ChannelOutput(many=True))
class ChannelListApi(StaffApi, generics.ListAPIView):
    serializer_class = s.ChannelOutput
    pagination_class = Pagination

    def get_queryset(self):
        return channels()


@extend_schema(tags=[TAG], request=s.ChannelCreateInput, responses={201: s.ChannelOutput})
class ChannelCreateApi(StaffApi):
    def post(self, request):
        channel = _save(request, None, self.body(s.ChannelCreateInput))
        return Response(
            s.ChannelOutput(channels().get(pk=channel.pk)).data, status=status.HTTP_201_CREATED
        )


@extend_schema(tags=[TAG], responses=s.ChannelOutput)
class ChannelDetailApi(StaffApi):
    def get(self, request, channel_id: int):
        return Response(s.ChannelOutput(self.get_or_404(channels(), channel_id)).data)


@extend_schema(tags=[TAG], request=s.ChannelUpdateInput, responses=s.ChannelOutput)
class ChannelUpdateApi(StaffApi):
    """Fields left out stay as they are (a blank credential keeps the stored one);
    ``enabled`` enables or disables the channel."""

    def post(self, request, channel_id: int):
        channel = self.get_or_404(Channel.objects.all(), channel_id)
        _save(request, channel, self.body(s.ChannelUpdateInput))
        return Response(s.ChannelOutput(channels().get(pk=channel.pk)).data)


@extend_schema(tags=[TAG], request=s.ChannelTestInput, responses=s.ChannelTestOutput)
class ChannelTestApi(StaffApi):
    """Send one real embeddings request through the channel; 200 either way,
    ``ok`` says whether the upstream answered well."""

    def post(self, request, channel_id: int):
        channel = self.get_or_404(Channel.objects.all(), channel_id)
        data = self.body(s.ChannelTestInput)
        result = channel_probe.probe(channel=channel, model=data.get("model"))
        return Response(s.ChannelTestOutput(result).data)


@extend_schema(tags=[TAG], request=s.ChannelPinInput, responses=s.ChannelOutput)
class ChannelPinApi(StaffApi):
    """Pin (``pinned: true``: never taken out of rotation by the relay) or unpin."""

    def post(self, request, channel_id: int):
        channel = self.get_or_404(Channel.objects.all(), channel_id)
        data = self.body(s.ChannelPinInput)
        channel_health.set_pinned(actor=request.user, channel=channel, pinned=data["pinned"])
        return Response(s.ChannelOutput(channels().get(pk=channel.pk)).data)


@extend_schema(tags=[TAG], request=s.TestAllInput, responses={202: s.TestAllOutput})
class ChannelTestAllApi(StaffApi):
    """Probe every channel with a real embeddings call, in the background; each
    result is written on its channel (``last_probe_*``), and a channel the
    relay took out that passes is put back."""

    def post(self, request):
        only = self.body(s.TestAllInput)["only_auto_disabled"]
        health_tasks.test_all.delay(only_auto_disabled=only)
        queued = Channel.objects.all()
        if only:
            queued = queued.auto_disabled()
        return Response(
            s.TestAllOutput({"queued": queued.count()}).data,
            status=status.HTTP_202_ACCEPTED,
        )
