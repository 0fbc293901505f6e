"""Calling the operator API as the tests do: with a token that
``create_api_token`` made, as a client would."""

from __future__ import annotations

import io

from django.core.management import call_command
from rest_framework.test import APIClient


def token_for(user) -> str:
    out = io.StringIO()
    call_command("create_api_token", user.username, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def client_with(token: str | None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client
