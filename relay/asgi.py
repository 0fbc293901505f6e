"""The ASGI entry point: POST /v1/embeddings its own route, the other API
paths the lean handler, the rest Django's."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay.settings")

site = get_asgi_application()  # sets Django up; must come before the imports below

from relay.api import embeddings_route  # noqa: E402
from relay.api.handler import APIHandler  # noqa: E402

API_PREFIXES = ("/v1/", "/dashboard/", "/healthz", "/readyz", "/metrics")
api = APIHandler()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith(API_PREFIXES):
        if embeddings_route.handles(scope):
            await embeddings_route.serve(scope, receive, send)
        else:
            await api(scope, receive, send)
    else:
        await site(scope, receive, send)
