"""What every operator API view shares: who may call it, what it speaks, how
it fails, and how its OpenAPI description lists those failures.

The project's DRF defaults are empty on purpose (the /v1/ views authenticate
relay keys themselves), so each view here names its authentication and
permission classes through these bases.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from console.api import serializers as s
from relay.operations.actions import ActionRefused

# The primary keys are BIGINT: a larger id in a URL names nothing.
MAX_ID = 2**63 - 1


class OperatorSchema(AutoSchema):
    """Every operation also documents the errors every view may answer:
    400 (bad input), 401 (no credentials), 403 (not allowed), 404 (no such
    object, or page), all JSON."""

    ERRORS = {
        "400": (OpenApiTypes.OBJECT, "Invalid input: field names to messages."),
        "401": (s.ErrorOutput, "No or invalid credentials."),
        "403": (s.ErrorOutput, "Signed in, but not allowed."),
        "404": (s.ErrorOutput, "No such object (or page)."),
    }

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, (schema, description) in self.ERRORS.items():
            if code not in responses:
                response = self._get_response_for_code(schema, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses


class Pagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (at most 500); anything else is a 400,
    not silently the first page."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def _positive(self, request, name: str, maximum: int | None = None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise exceptions.ValidationError({name: ["A whole number of at least 1."]})
        if maximum is not None and int(raw) > maximum:
            raise exceptions.ValidationError({name: [f"At most {maximum}."]})
        return int(raw)

    def get_page_size(self, request) -> int:
        return self._positive(request, self.page_size_query_param, self.max_page_size) or (
            self.page_size
        )

    def paginate_queryset(self, queryset, request, view=None):
        self._positive(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


class BaseApi(APIView):
    """JSON in, JSON out; domain refusals become 400s naming the field."""

    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    schema = OperatorSchema()

    def handle_exception(self, exc):
        if isinstance(exc, ActionRefused):
            exc = exceptions.ValidationError({exc.field or "non_field_errors": [exc.message]})
        return super().handle_exception(exc)

    @staticmethod
    def get_or_404(queryset, pk: int):
        if not 0 < pk <= MAX_ID:
            raise Http404
        obj = queryset.filter(pk=pk).first()
        if obj is None:
            raise Http404
        return obj

    def query(self, serializer_class):
        """Validated query parameters (400 on bad ones)."""
        # A plain dict, not the QueryDict: DRF reads an empty optional form
        # value as "not given", where the schema calls "?tenant=" invalid.
        serializer = serializer_class(data=self.request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def body(self, serializer_class):
        """The validated request body (400 on a bad one)."""
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class StaffApi(BaseApi):
    """Operators: a staff user's token (``Authorization: Token ...``) or session.

    Token first, so that a request without credentials gets 401 with a
    ``WWW-Authenticate: Token`` challenge rather than 403.
    """

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAdminUser]


class MemberApi(BaseApi):
    """A tenant's members (any signed-in user); views scope to their tenants."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


class NotFoundApi(BaseApi):
    """Every other path under /api/: a JSON 404, not the site's HTML page."""

    authentication_classes: list = []
    permission_classes: list = []
    schema = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise exceptions.NotFound()
