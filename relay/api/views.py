"""The OpenAI-compatible endpoints under /v1/, and health checks."""

from __future__ import annotations

import hmac
import logging

import orjson
from adrf.views import APIView
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpResponse, JsonResponse

from relay.catalog.routes import group_routes
from relay.connections import pools
from relay.contract.errors import (
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    RelayError,
    ServerError,
    ServiceUnavailable,
    error_response,
)
from relay.lib import addresses, metrics
from relay.lib.db import off_loop
from relay.pipeline import auth
from relay.pipeline.embed import embed
from relay.pipeline.trace import Trace

log = logging.getLogger(__name__)


def _json(payload: dict) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), content_type="application/json")


def relay_error(exc: Exception, path: str) -> tuple[RelayError, str]:
    """The error to answer ``exc`` with, and the error code its log line gets.

    Called from the ``except`` block of both routes to a view's answer (RelayView
    below and relay/api/embeddings_route.py): anything but a RelayError is a bug,
    logged here with its traceback and answered as OpenAI's 500, never as the
    traceback itself.
    """
    if isinstance(exc, RelayError):
        return exc, exc.code or exc.type
    if isinstance(exc, OperationalError | InterfaceError):
        # PostgreSQL down or restarting (a key not in this process's cache
        # cannot be checked): the client may retry, as with Redis down.
        log.warning("database unavailable on %s: %s", path, exc)
        error = ServiceUnavailable("The relay cannot reach its database; retry shortly.")
        return error, "database_unavailable"
    log.exception("unhandled error on %s", path)
    error = ServerError("The relay had an internal error while processing your request.")
    return error, "server_error"


class RelayView(APIView):
    """An async DRF view that answers every failure in OpenAI's envelope.

    DRF's ``initial()`` (authenticators, permissions, throttles, content
    negotiation) is skipped: keys are checked by the pipeline against its own
    cache, and adrf would run ``initial()`` through ``sync_to_async``, a
    thread hop on every request of the hot path.
    """

    # The OpenAI-compatible API is documented by OpenAI's own reference; the
    # operator API's OpenAPI schema (/api/schema/) leaves it out.
    schema = None
    # Views whose requests are logged one line each and counted in metrics.
    traced = False

    async def options(self, request, *args, **kwargs):
        # DRF's own is synchronous (awaited here it failed with a 500): the
        # answer is the Allow header, which finalize_response adds.
        return HttpResponse(status=204)

    async def async_dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        self.trace = Trace(request_id=request._request.request_id) if self.traced else None
        error_code = None
        try:
            handler = getattr(self, request.method.lower(), None)
            if request.method.lower() not in self.http_method_names or handler is None:
                raise MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}.")
            response = await handler(request, *args, **kwargs)
        except Exception as exc:
            error, error_code = relay_error(exc, request.path)
            response = error_response(error)
        if self.trace is not None:
            self.trace.finish(response.status_code, error_code)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response


# Under relay/asgi.py a POST never gets here: relay/api/embeddings_route.py answers
# it straight from ASGI, the same way. This view answers the other methods (405,
# in the envelope) and POST under any other server (WSGI, runserver), and its
# Allow and Vary headers are the ones both routes send. (A comment, not a
# docstring: DRF would show a docstring to clients as the view's description.)
class EmbeddingsView(RelayView):
    traced = True

    async def post(self, request):
        # Bodies over RELAY_MAX_BODY_BYTES never get here: relay/api/handler.py
        # refuses them while they arrive.
        served = await embed(
            authorization=request.META.get("HTTP_AUTHORIZATION"),
            body=request._request.body,
            client_ip=addresses.client_ip(request.META),
            trace=self.trace,
        )
        if served.streamed is not None:
            # Off the ASGI route (WSGI, runserver) a big answer is gathered
            # whole; a failure midway is then still answered in the envelope.
            try:
                served.body = b"".join([piece async for piece in served.streamed])
            finally:
                await served.streamed.aclose()
            served.settled = served.streamed.settled
        await served.settled
        response = HttpResponse(served.body, content_type="application/json")
        for name, value in served.headers.items():
            response[name] = value
        return response


def _model_object(model: str, created: int) -> dict:
    return {"id": model, "object": "model", "created": created, "owned_by": "system"}


class ModelsView(RelayView):
    async def get(self, request, model: str | None = None):
        key = await auth.authenticate(
            request.META.get("HTTP_AUTHORIZATION"), addresses.client_ip(request.META)
        )
        routes = await group_routes(key.group_id)
        names = sorted(m for m in (routes.models if routes else {}) if key.may_use(m))
        if model is not None:
            if model not in names:
                raise ModelNotFound(model)
            return _json(_model_object(model, 0))
        return _json({"object": "list", "data": [_model_object(name, 0) for name in names]})


class V1NotFoundView(RelayView):
    async def _not_found(self, request, *args, **kwargs):
        raise NotFound(f"Invalid URL ({request.method} {request.path}).")

    get = post = put = patch = delete = _not_found


async def metrics_view(request):
    """Prometheus exposition; see METRICS_TOKEN in relay/settings.py."""
    token = settings.METRICS_TOKEN
    if token:
        allowed = hmac.compare_digest(request.META.get("HTTP_AUTHORIZATION", ""), f"Bearer {token}")
    else:
        allowed = request.META.get("REMOTE_ADDR") in ("127.0.0.1", "::1")
    if not allowed:
        return JsonResponse({"error": "metrics need the METRICS_TOKEN bearer token"}, status=403)
    body, content_type = await off_loop(metrics.exposition)()
    return HttpResponse(body, content_type=content_type)


async def healthz(request):
    return JsonResponse({"status": "ok"})


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def readyz(request):
    problems = {}
    try:
        await off_loop(_database_answers)()
    except Exception as exc:  # any failure means "not ready"; say which
        problems["database"] = type(exc).__name__
    try:
        await pools.redis().ping()
    except Exception as exc:
        problems["redis"] = type(exc).__name__
    if problems:
        return JsonResponse({"status": "unavailable", "failing": problems}, status=503)
    return JsonResponse({"status": "ok"})
