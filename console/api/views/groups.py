"""Operator API: groups with their models and prices, and the base price list."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from accounts.models import Group
from billing.models import BasePrice
from console.api import serializers as s
from console.api.base import Pagination, StaffApi
from relay.models import Channel
from relay.operations import actions
from relay.operations.actions import ActionRefused

TAG = "groups"


def groups():
    return Group.objects.prefetch_related("models", "channels").order_by("name")


def channels_named(names: list[str]) -> list[Channel]:
    found = {channel.name: channel for channel in Channel.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        raise ActionRefused(f"Unknown channel(s): {', '.join(missing)}.", field="channels")
    return [found[name] for name in dict.fromkeys(names)]


def _save(request, group: Group | None, data: dict) -> Group:
    models = None
    if "models" in data:
        models = {row["model"]: row["price_per_mtok_nanos"] for row in data["models"]}
    return actions.save_group(
        actor=request.user,
        group=group,
        fields={name: data[name] for name in actions.GROUP_FIELDS if name in data},
        models=models,
        channels=channels_named(data["channels"]) if "channels" in data else None,
    ).row


@extend_schema(tags=[TAG], responses=s.GroupOutput(many=True))
class GroupListApi(StaffApi, generics.ListAPIView):
    serializer_class = s.GroupOutput
    pagination_class = Pagination

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "base_prices": actions.base_prices()}

    def get_queryset(self):
        return groups()


@extend_schema(tags=[TAG], request=s.GroupCreateInput, responses={201: s.GroupOutput})
class GroupCreateApi(StaffApi):
    """A model listed without a price needs a base price (400 otherwise)."""

    def post(self, request):
        group = _save(request, None, self.body(s.GroupCreateInput))
        return Response(
            s.GroupOutput(groups().get(pk=group.pk)).data, status=status.HTTP_201_CREATED
        )


@extend_schema(tags=[TAG], responses=s.GroupOutput)
class GroupDetailApi(StaffApi):
    def get(self, request, group_id: int):
        return Response(s.GroupOutput(self.get_or_404(groups(), group_id)).data)


@extend_schema(tags=[TAG], request=s.GroupUpdateInput, responses=s.GroupOutput)
class GroupUpdateApi(StaffApi):
    """Fields left out stay as they are; ``models``, when given, is the whole list."""

    def post(self, request, group_id: int):
        group = self.get_or_404(Group.objects.all(), group_id)
        _save(request, group, self.body(s.GroupUpdateInput))
        return Response(s.GroupOutput(groups().get(pk=group.pk)).data)


@extend_schema(tags=[TAG], responses=s.BasePriceOutput(many=True))
class BasePriceListApi(StaffApi, generics.ListAPIView):
    serializer_class = s.BasePriceOutput
    pagination_class = Pagination

    def get_queryset(self):
        return BasePrice.objects.order_by("model")


@extend_schema(tags=[TAG], request=s.BasePriceInput, responses=s.BasePriceOutput)
class BasePriceSetApi(StaffApi):
    """Add a model to the base price list or change its price."""

    def post(self, request):
        data = self.body(s.BasePriceInput)
        price = actions.set_base_price(
            actor=request.user,
            model=data["model"],
            price_per_mtok_nanos=data["price_per_mtok_nanos"],
        ).row
        return Response(s.BasePriceOutput(price).data)


@extend_schema(tags=[TAG], request=None, responses={204: None})
class BasePriceDeleteApi(StaffApi):
    """Refused (400) while a group prices the model from this base price."""

    def post(self, request, price_id: int):
        price = self.get_or_404(BasePrice.objects.all(), price_id)
        actions.delete_base_price(actor=request.user, price=price)
        return Response(status=status.HTTP_204_NO_CONTENT)
