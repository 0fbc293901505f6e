"""``POST /v1/embeddings`` straight from ASGI: no Django request object, URL
resolution, middleware or DRF request.

Profiled at 64 connections, those cost about 9% of a web worker's CPU, plus
part of Django's ``send_response``, for nothing this endpoint uses: it reads
two headers, the peer's address and the body, and sends bytes the pipeline
made. The answer is the one ``relay.api.views.EmbeddingsView`` gives (it still
answers every other method on this path): the same status, body and
headers, an ``x-request-id``, and one log line and the metrics per request.
"""

from __future__ import annotations

from django.core.exceptions import RequestAborted

from relay.api.handler import body_chunks
from relay.api.middleware import new_request_id
from relay.api.views import EmbeddingsView, relay_error
from relay.contract.errors import RequestTooLarge
from relay.lib import addresses
from relay.pipeline.embed import Served, embed
from relay.pipeline.trace import Trace
from relay.server import accept_balance

PATHS = ("/v1/embeddings", "/v1/embeddings/")  # relay/urls.py: ^v1/embeddings/?$

# The headers DRF adds to every answer of the view (Allow, Vary), read from the
# view itself so that the two routes cannot drift apart.
VIEW_HEADERS = [
    (name.encode("latin1"), value.encode("latin1"))
    for name, value in EmbeddingsView().default_response_headers.items()
]


def handles(scope) -> bool:
    return scope["method"] == "POST" and scope["path"] in PATHS


async def serve(scope, receive, send) -> None:
    try:
        chunks = [chunk async for chunk in body_chunks(receive)]
    except RequestAborted:
        return  # the client hung up mid-body: nobody is left to answer
    except RequestTooLarge as error:
        # Refused before any trace starts, as on the other API paths; but,
        # unlike them, with a request id of its own.
        await respond(send, error.status, error.content(), error.headers, new_request_id())
        return
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    authorization, forwarded_for = _request_headers(scope)
    client = scope.get("client")
    trace = Trace(request_id=new_request_id())
    # Only Exception: a cancellation (the server giving up on the client) must
    # reach the pipeline's own cleanup and go on up, unanswered.
    try:
        served = await embed(
            authorization=authorization,
            body=body,
            client_ip=addresses.client_address(client[0] if client else "", forwarded_for),
            trace=trace,
        )
    except Exception as exc:
        error, error_code = relay_error(exc, scope["path"])
        try:
            await respond(send, error.status, error.content(), error.headers, trace.request_id)
        finally:
            trace.finish(error.status, error_code)
        return
    if served.streamed is not None:
        await pass_on(send, served, trace, scope["path"])
        return
    try:
        await respond(send, 200, served.body, served.headers, trace.request_id)
    finally:
        # After the answer is on its way: the client does not wait for the
        # settle's round trip to Redis (already sent), nor for the log line.
        # Nor is the answer kept meanwhile: under load, hundreds of answers
        # per process waited there.
        trace.finish(200)
        settled, served = served.settled, None
        await settled


async def pass_on(send, served: Served, trace: Trace, path: str) -> None:
    """Send an answer as it arrives (chunked: its length is known only at
    the end). If the upstream fails midway, the response is left unfinished
    and the server cuts the connection: the client sees a failed request,
    never a truncated answer that looks whole."""
    streamed = served.streamed
    try:
        await send(_start(200, served.headers, trace.request_id))
        async for piece in streamed:
            # ``settled`` is set as the last piece is handed over.
            more = streamed.settled is None
            await send({"type": "http.response.body", "body": piece, "more_body": more})
    except Exception as exc:
        error, error_code = relay_error(exc, path)
        trace.finish(error.status, error_code)
        return
    finally:
        await streamed.aclose()
    trace.finish(200)
    await streamed.settled


def _request_headers(scope) -> tuple[str | None, str]:
    """Authorization (None when absent) and X-Forwarded-For, each repeated
    header joined with commas, as Django's request.META has them."""
    authorization: list[str] = []
    forwarded_for: list[str] = []
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"authorization":
            authorization.append(value.decode("latin1"))
        elif name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin1"))
    return (",".join(authorization) if authorization else None), ",".join(forwarded_for)


async def respond(
    send, status: int, content: bytes, headers: dict[str, str], request_id: str
) -> None:
    """One start and one body message, with a Content-Length: the body is
    whole already, so neither Django's 64 KiB slices nor chunked encoding."""
    await send(_start(status, headers, request_id, content_length=len(content)))
    await send({"type": "http.response.body", "body": content})


def _start(
    status: int, headers: dict[str, str], request_id: str, *, content_length: int | None = None
) -> dict:
    length = (
        [] if content_length is None else [(b"Content-Length", str(content_length).encode("ascii"))]
    )
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"Content-Type", b"application/json"),
            *length,
            *((name.encode("latin1"), value.encode("latin1")) for name, value in headers.items()),
            *VIEW_HEADERS,
            (b"x-request-id", request_id.encode("ascii")),
            *_RECONNECT_ELSEWHERE[accept_balance.reconnect_elsewhere()],
        ],
    }


# A worker holding more than its share of connections asks the client to
# open a new one for its next request (relay/server/accept_balance.py).
_RECONNECT_ELSEWHERE = {False: (), True: ((b"Connection", b"close"),)}
