"""A staff user and an API client holding their token, for every operator API test."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.console.api.helpers import client_with, token_for


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("sam", password="pw-sam-123", is_staff=True)


@pytest.fixture
def api(staff) -> APIClient:
    return client_with(token_for(staff))
