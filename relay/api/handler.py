"""A lean ASGI handler for the API paths (/v1/, /dashboard/, health checks).

Django's stock ASGIHandler is built for sync-first sites: every built-in
middleware (sessions, CSRF, auth, messages...) runs in a thread through
``sync_to_async``, each request gets a ThreadSensitiveContext (a fresh
thread), and the request signals hop threads too. Profiled, that was over
80% of the relay's CPU per request. The API needs none of it: it is
stateless, authenticated by Bearer keys, and never touches sessions.

This handler keeps Django's request object, URL routing and views (the DRF
views run unchanged) with only the API middleware, and no thread hops.
Everything else (admin, console) goes through the stock handler, and
``POST /v1/embeddings`` through neither (relay/api/embeddings_route.py).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

from relay.contract.errors import RequestTooLarge, ServerError, error_response

log = logging.getLogger(__name__)

API_MIDDLEWARE = ["relay.api.middleware.request_id"]


async def body_chunks(receive) -> AsyncIterator[bytes]:
    """The request body as it arrives, refused past RELAY_MAX_BODY_BYTES before
    the rest is read (a chunked upload has no Content-Length to check first).
    Raises RequestAborted if the client hangs up first."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > settings.RELAY_MAX_BODY_BYTES:
            raise RequestTooLarge(
                f"The request body exceeds {settings.RELAY_MAX_BODY_BYTES} bytes."
            )
        yield chunk
        if not message.get("more_body", False):
            return


class APIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(API_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = handler

    async def __call__(self, scope, receive, send) -> None:
        # No ThreadSensitiveContext: nothing on this path runs sync code in
        # the request's thread (database reads go to a pool of threads).
        await self.handle(scope, receive, send)

    async def read_body(self, receive):
        """Django's read_body, with the size limit of ``body_chunks``."""
        body_file = tempfile.SpooledTemporaryFile(
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
        )
        try:
            async for chunk in body_chunks(receive):
                body_file.write(chunk)
        except BaseException:
            body_file.close()
            raise
        body_file.seek(0)
        return body_file

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        except RequestTooLarge as refusal:
            response = error_response(refusal)
            await self.send_response(response, send)
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            request, refusal = self.create_request(scope, body_file)
            response = refusal or await self.get_response_async(request)
        except Exception:
            # Views answer their own errors; this is the last line, so that
            # even a failure outside them is JSON in OpenAI's envelope.
            log.exception("unhandled error on %s", scope.get("path"))
            response = error_response(ServerError("The relay had an internal error."))
        finally:
            body_file.close()
        await self.send_response(response, send)
        response.close()
