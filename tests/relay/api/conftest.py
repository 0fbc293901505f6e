"""Fixtures of the relay's /v1/ tests."""

import pytest


@pytest.fixture
def upstream(fake_upstream):
    """The fake upstream with its counters cleared, for tests that count."""
    fake_upstream.reset()
    return fake_upstream
