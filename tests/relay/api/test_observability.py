"""Metrics, one JSON log line per request, and no secret in any log line or body."""

import json
import subprocess
import time

import httpx
import pytest

from accounts.models import ApiKey, Tenant
from billing import ledger
from tests.helpers import (
    ROOT,
    SMALL,
    embed,
    free_port,
    make_channel,
    relay_command,
    stop,
    wait_for_port,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

CANARY_CREDENTIAL = "sk-canary-upstream-credential-9c1e77"


@pytest.fixture
def logged_relay(server_env, tmp_path):
    """A relay server of the test's own, its log lines captured to a file."""
    port = free_port()
    log_path = tmp_path / "relay.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            relay_command(port),
            cwd=ROOT,
            env={**server_env, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(port, process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, log_path
        stop(process)


def request_lines(log_path) -> list[dict]:
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "relay.requests"]


def test_metrics_count_requests_by_status_and_model(relay, secret):
    assert embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 200
    assert embed(relay, secret, {"model": "nope", "input": "hi"}).status_code == 404
    text = relay.get("/metrics").text
    assert 'relay_requests_total{model="text-embedding-3-small",status="200"}' in text
    assert 'relay_requests_total{model="nope",status="404"}' in text
    assert "relay_upstream_seconds_bucket" in text
    assert 'relay_holds_total{result="held"}' in text


def test_each_request_is_one_json_line_with_its_facts(logged_relay, secret, api_key):
    client, log_path = logged_relay
    response = embed(client, secret, {"model": SMALL, "input": "hello world"})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    # The request's line is written once its answer is sent: it may follow it.
    [line] = wait_until(
        lambda: [x for x in request_lines(log_path) if x["request_id"] == request_id]
    )
    key, _ = api_key
    assert line["tenant_id"] == key.tenant_id
    assert line["key_prefix"] == key.prefix
    facts = (line["model"], line["channel"], line["tokens"], line["status"])
    assert facts == (SMALL, "main", 2, 200)
    assert line["total_ms"] >= line["upstream_ms"] > 0


def test_no_key_or_credential_reaches_a_log_line_or_an_error_body(
    logged_relay, group, fake_upstream
):
    client, log_path = logged_relay
    tenant = Tenant.objects.create(slug="canary", name="Canary")
    ledger.top_up(tenant=tenant, amount_nanos=10**9, reason="test")
    make_channel(group, fake_upstream.base_url(), name="good", credential=CANARY_CREDENTIAL)
    _key, canary_key = ApiKey.issue(tenant=tenant, group=group, name="canary")
    broke = Tenant.objects.create(slug="broke", name="Broke")
    _k, broke_key = ApiKey.issue(tenant=broke, group=group, name="broke")
    typo = canary_key[:-1] + ("A" if canary_key[-1] != "A" else "B")

    bodies = [
        embed(client, canary_key, {"model": SMALL, "input": "hi"}),  # served
        embed(client, canary_key, b"{not json"),
        embed(client, canary_key, {"input": "hi"}),
        embed(client, canary_key, {"model": "nope", "input": "hi"}),
        embed(client, canary_key, {"model": SMALL, "input": ""}),
        embed(client, typo, {"model": SMALL, "input": "hi"}),
        embed(client, "sk-" + canary_key[3:20], {"model": SMALL, "input": "hi"}),
        embed(client, broke_key, {"model": SMALL, "input": "hi"}),  # no balance
        client.get("/v1/models", headers={"Authorization": f"Bearer {typo}"}),
    ]
    # Every channel failing, one of them holding the canary credential.
    group.channels.all().delete()
    failing = fake_upstream.base_url("status=500")
    make_channel(group, failing, name="bad", credential=CANARY_CREDENTIAL)
    time.sleep(1)  # the server trusts its cached routes for RELAY_CONFIG_CACHE_TTL_S (0.5 s)
    bodies.append(embed(client, canary_key, {"model": SMALL, "input": "hi after failure"}))

    assert [r.status_code for r in bodies] == [200, 400, 400, 404, 400, 401, 401, 429, 401, 502]
    # Each /v1/embeddings request's line is written once its answer is sent:
    # wait for the nine before reading the log.
    wait_until(lambda: len(request_lines(log_path)) >= 9)
    log_text = log_path.read_text()
    for secret in (canary_key, typo, broke_key, CANARY_CREDENTIAL):
        assert secret not in log_text
        for response in bodies[1:]:
            assert secret not in response.text
    assert len(request_lines(log_path)) >= 9
