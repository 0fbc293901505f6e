import pytest

from tests.helpers import SMALL, embed, records, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_embedding_is_served_and_billed_once(relay, secret, celery_worker):
    response = embed(relay, secret, {"model": SMALL, "input": "hello world"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert len(body["data"][0]["embedding"]) == 1536
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    request_id = response.headers["x-request-id"]
    [record] = wait_until(lambda: records(request_id=request_id))
    assert record.tokens == 2
    assert record.cost_nanos == 40


def test_served_requests_are_rolled_up_by_day_key_and_model(relay, secret, api_key, celery_worker):
    from billing.models import DailyUsage

    for _ in range(3):
        assert embed(relay, secret, {"model": SMALL, "input": "hello world"}).status_code == 200
    wait_until(lambda: len(records(api_key=api_key[0])) == 3)
    [row] = DailyUsage.objects.filter(api_key=api_key[0])
    counted = (row.model, row.requests, row.failed, row.tokens, row.cost_nanos)
    assert counted == (SMALL, 3, 0, 6, 120)
