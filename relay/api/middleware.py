"""Every response carries ``x-request-id``; the id also keys the usage record."""

from __future__ import annotations

import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def request_id(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            request.request_id = new_request_id()
            response = await get_response(request)
            response["x-request-id"] = request.request_id
            return response

        markcoroutinefunction(middleware)
        return middleware

    def sync_middleware(request):
        request.request_id = new_request_id()
        response = get_response(request)
        response["x-request-id"] = request.request_id
        return response

    return sync_middleware


request_id.async_capable = True
request_id.sync_capable = True
