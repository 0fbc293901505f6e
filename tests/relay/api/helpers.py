"""The wire contract's checks, shared by the test_contract_* modules.

Every refusal is checked the way a client sees it: the status, OpenAI's
four-key envelope, a JSON content type, an ``x-request-id``, and no request
sent to the upstream.
"""

from __future__ import annotations

import base64
import struct

import httpx

from accounts.models import Group, GroupModel
from tests.helpers import ADA, LARGE, SMALL, make_channel

GROUP_MODELS = [LARGE, SMALL, ADA]
UNKNOWN_SECRET = "sk-abQ7rT2mVx9LpW4nZc8KdY3hJf6GsB1ewxyz"


def upstream_requests(fake) -> int:
    """Requests the fake upstream received, over every channel route."""
    stats = httpx.get(f"{fake.url}/_stats").json()
    return sum(route["requests"] for route in stats.values())


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def enveloped(response: httpx.Response, status: int) -> dict:
    """The error of an OpenAI envelope, after checking what every error must carry."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def refused(response: httpx.Response, status: int, fake) -> dict:
    """An error envelope for a request the upstream never saw."""
    error = enveloped(response, status)
    assert upstream_requests(fake) == 0, "a refused request reached the upstream"
    return error


def vectors(response: httpx.Response) -> list:
    assert response.status_code == 200, response.text
    return [item["embedding"] for item in response.json()["data"]]


def float32(values) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def decoded(item: str) -> list[float]:
    raw = base64.b64decode(item, validate=True)
    assert len(raw) % 4 == 0
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def group_with(name: str, models: list[str], base_url: str) -> Group:
    """Another group with its own models (priced on the group) and a channel."""
    group = Group.objects.create(name=name)
    for model in models:
        GroupModel.objects.create(group=group, model=model, price_per_mtok_nanos=50_000_000)
    make_channel(group, base_url, name=f"{name}-channel", models=dict.fromkeys(models, ""))
    return group
