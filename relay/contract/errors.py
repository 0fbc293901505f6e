"""The errors a /v1/ client can get, in OpenAI's envelope.

Every refusal in the request path raises one of these; ``RelayError.content``
is the one place that turns them into bytes on the wire (``error_response``
wraps them for Django views), so all four keys of the envelope are always
present and no view builds an error dict by hand.
"""

from __future__ import annotations

import orjson
from django.http import HttpResponse

API_REFERENCE = "https://platform.openai.com/docs/api-reference"


class RelayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def content(self) -> bytes:
        """The envelope as sent: relay/api/embeddings_route.py writes these bytes
        itself, every other path through ``error_response``."""
        return orjson.dumps(self.body())


class InvalidRequest(RelayError):
    status = 400
    type = "invalid_request_error"


class MissingApiKey(RelayError):
    status = 401
    type = "invalid_request_error"

    def __init__(self) -> None:
        super().__init__(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). "
            "You can obtain an API key from the console of this relay."
        )


class InvalidApiKey(RelayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"

    def __init__(self, masked_key: str) -> None:
        super().__init__(
            f"Incorrect API key provided: {masked_key}. You can find your API key in the "
            "console of this relay."
        )


class PermissionDenied(RelayError):
    status = 403
    type = "invalid_request_error"


class ModelNotFound(RelayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
        )


class NotFound(RelayError):
    status = 404
    type = "invalid_request_error"


class MethodNotAllowed(RelayError):
    status = 405
    type = "invalid_request_error"


class RequestTooLarge(RelayError):
    status = 413
    type = "invalid_request_error"


class RequestTimeout(RelayError):
    """The client took too long to send its request (relay/server/edge.py)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class RateLimited(RelayError):
    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit_type: str, retry_after_s: float, headers=None):
        super().__init__(message, headers=headers)
        self.type = limit_type  # "requests" or "tokens", as OpenAI says
        retry_ms = max(0, int(retry_after_s * 1000 + 0.999))
        self.headers.setdefault("retry-after", str(max(1, (retry_ms + 999) // 1000)))
        self.headers.setdefault("retry-after-ms", str(retry_ms))


class InsufficientQuota(RelayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "You exceeded your current quota, please check your plan and billing details. "
            "Top up the balance in the console of this relay.",
            headers={"x-should-retry": "false"},
        )


class ServerError(RelayError):
    status = 500
    type = "server_error"


class UpstreamFailed(RelayError):
    """Every channel tried failed (502), or none could be tried (503)."""

    status = 502
    type = "server_error"


class ServiceUnavailable(RelayError):
    status = 503
    type = "server_error"


def error_response(error: RelayError) -> HttpResponse:
    response = HttpResponse(error.content(), status=error.status, content_type="application/json")
    for name, value in error.headers.items():
        response[name] = value
    return response
