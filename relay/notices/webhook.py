"""The operator's webhook: each event POSTed as JSON to
RELAY_NOTIFY_WEBHOOK_URL, signed so the receiver can tell it came from the
relay and was not replayed (docs/operator.md, "Notifications"):

    X-Relay-Timestamp: <unix seconds>
    X-Relay-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under
                       RELAY_NOTIFY_WEBHOOK_SECRET>
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson
from django.conf import settings

TIMEOUT_S = 10.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def post(event: dict) -> int | None:
    """POST ``event``; the receiver's status, None when no URL is set.
    Raises httpx.HTTPError on a network failure or an answer other than 2xx
    (the task retries)."""
    url = settings.RELAY_NOTIFY_WEBHOOK_URL
    if not url:
        return None
    body = orjson.dumps(event)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "embeddings-relay-webhook",
        "X-Relay-Timestamp": timestamp,
        "X-Relay-Signature": signature(settings.RELAY_NOTIFY_WEBHOOK_SECRET, timestamp, body),
    }
    # Redirects are not followed: the signed body goes to the configured URL only.
    response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.status_code
