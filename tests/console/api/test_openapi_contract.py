"""The operator API keeps its OpenAPI contract: the schema documents every
route, and Schemathesis finds no 5xx and no undocumented answer."""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from accounts.models import ApiKey
from console.api.urls import api_patterns
from relay.wsgi import application
from tests.console.api.helpers import token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_token(staff, tenant, group, channel) -> str:
    """A staff token, with a tenant, a group and a channel for the cases to find."""
    ApiKey.issue(tenant=tenant, group=group, name="seed")
    return token_for(staff)


@pytest.fixture
def api_schema(staff_token):
    """The schema as staff get it from /api/schema/, loaded through the WSGI app."""
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json",
        application,
        headers={"Authorization": f"Token {staff_token}"},
    )


# One test per operation. (Not ``schemathesis.pytest.from_fixture(...).parametrize()``:
# its lazy loader sets ``node._nodeid``, which pytest 9 no longer has; and a
# schema loaded at import time could not use a staff token from the test database.)
OPERATIONS = ["/api/" + re.sub(r"<int:(\w+)>", r"{\1}", str(p.pattern)) for p in api_patterns]


def test_the_schema_is_served_to_staff_and_documents_every_route(api):
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    document = json.loads(response.content)
    assert len(document["paths"]) == len(api_patterns)
    assert all(path.startswith("/api/") for path in document["paths"])
    channel = document["components"]["schemas"]["ChannelOutput"]["properties"]
    assert "credential" not in channel and "has_credential" in channel


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", OPERATIONS)
def test_the_api_keeps_its_openapi_contract(api_schema, staff_token, path):
    """No 5xx, and every response is documented and matches its schema, for
    requests that fit the schema and for requests that do not.

    ``positive_data_acceptance`` is left out: it expects every schema-valid
    request to succeed, but whether one does depends on the database, which
    a schema cannot describe (a group name must exist, a slug must be free,
    a debit must not overdraw, an id must name a row), so those are 400s and
    404s by design. Every other check runs, including that schema-invalid
    input is refused.
    """
    # Committed rows (transaction=True): the WSGI handler closes the connection
    # after each request, which would break a test-wide transaction.
    operations = api_schema[path]
    assert len(operations) == 1  # one view per action

    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(case=operations.as_strategy(generation_mode=mode))
        def check(case):
            case.call_and_validate(
                headers={"Authorization": f"Token {staff_token}"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        check()
