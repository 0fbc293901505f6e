"""Rate limits: requests per minute, tokens per minute and requests in flight,
per key and per tenant, enforced in Redis.

(Placeholder interface: admits everything. The rate-limit issue fills it in.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.auth import KeyContext
from relay.catalog import GroupRoutes


@dataclass
class Admission:
    """A request let through; ``release()`` must run however the request ends."""

    headers: dict[str, str] = field(default_factory=dict)

    async def release(self) -> None:
        return None


def client_ip(meta: dict) -> str:
    return meta.get("REMOTE_ADDR", "")


async def admit(
    *, key: KeyContext, routes: GroupRoutes, model: str, tokens: int, client_ip: str
) -> Admission:
    return Admission()
