"""The operator console's redemption codes (/operator/codes/): a batch is made,
its codes shown once with a CSV file and a copy button, unused codes voided,
and each code's tenant and time of redemption shown."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import unquote

import pytest
from django.urls import reverse

from billing import redemption
from billing.models import RedemptionBatch, RedemptionCode
from tests.console.operator.helpers import events

pytestmark = pytest.mark.django_db

CODE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{5}(?:-[0-9A-HJKMNP-TV-Z]{5}){3}\b")


def create(staff_client, headers: dict | None = None, **fields):
    data = {"count": "3", "value": "12.5", "name": "launch", "expires": "", "tenant": ""}
    data.update(fields)
    return staff_client.post(reverse("operator:codes"), data, **(headers or {}))


def csv_rows(page: str) -> list[list[str]]:
    href = re.search(r'id="download-codes" href="data:text/csv;charset=utf-8,([^"]+)"', page)
    text = unquote(href.group(1).replace("&amp;", "&"))
    assert text.startswith("\ufeff")  # spreadsheets read the file as UTF-8
    return list(csv.reader(io.StringIO(text[1:])))


def test_a_batch_shows_its_codes_once_to_copy_and_as_csv(staff_client, tenant):
    response = create(staff_client, tenant="acme", expires="2099-12-31")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    textarea = re.search(r'<textarea id="codes"[^>]*>([^<]*)</textarea>', page).group(1)
    codes = textarea.split("\n")
    assert len(codes) == 3 and all(CODE.fullmatch(code) for code in codes)
    assert 'id="copy-codes"' in page

    rows = csv_rows(page)
    assert rows[0] == ["code", "value", "valid until", "tenant", "batch"]
    batch = RedemptionBatch.objects.get()
    assert [row[0] for row in rows[1:]] == codes
    assert {tuple(row[1:]) for row in rows[1:]} == {
        ("12.500000000", "2100-01-01T00:00:00+00:00", "acme", str(batch.pk))
    }
    assert batch.value_nanos == 12_500_000_000 and batch.tenant == tenant
    [event] = events("codes.created")
    assert event.detail["count"] == 3 and event.tenant == tenant

    # Never again: not in the list, not on the batch's page, not in the audit log.
    for url in (
        reverse("operator:codes"),
        reverse("operator:code_batch", args=[batch.pk]),
        reverse("operator:audit"),
    ):
        later = staff_client.get(url).content.decode()
        assert not any(code in later or code.replace("-", "") in later for code in codes)
    assert "launch" in staff_client.get(reverse("operator:codes")).content.decode()


def test_the_csv_headings_and_the_page_are_in_the_operators_language(staff_client):
    response = create(staff_client, {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"})
    page = response.content.decode()
    assert "复制全部兑换码" in page and "12.50 美元" in page
    assert csv_rows(page)[0] == ["兑换码", "面值", "有效期至", "租户", "批次"]


def test_bad_batches_are_refused_on_the_form(staff_client):
    for fields, message in [
        ({"count": "0"}, "greater than or equal to 1"),
        ({"count": "1001"}, "less than or equal to 1000"),
        ({"value": "0"}, "more than zero"),
        ({"value": "0.0000000001"}, "9 decimal places"),
        ({"expires": "2001-01-01"}, "in the future"),
        ({"tenant": "nobody"}, "Select a valid choice"),
    ]:
        response = create(staff_client, **fields)
        assert response.status_code == 200
        assert message in response.content.decode(), fields
    assert not RedemptionCode.objects.exists()


def test_staff_void_one_code_or_the_rest_of_a_batch_and_see_who_redeemed(
    staff_client, tenant, owner
):
    page = create(staff_client, count="3").content.decode()
    first, second, _third = (
        re.search(r'<textarea id="codes"[^>]*>([^<]*)</textarea>', page).group(1).split("\n")
    )
    redemption.redeem(text=first, tenant=tenant, user=owner)
    batch = RedemptionBatch.objects.get()
    code = RedemptionCode.objects.get(hint=second[-4:])
    staff_client.post(reverse("operator:code_void", args=[batch.pk, code.pk]))
    code.refresh_from_db()
    assert code.status == "voided"
    [event] = events("code.voided")
    assert event.target == f"…{second[-4:]}"

    response = staff_client.post(reverse("operator:code_batch_void", args=[batch.pk]), follow=True)
    assert "1 unused code voided." in response.content.decode()
    assert sorted(batch.codes.values_list("status", flat=True)) == ["redeemed", "voided", "voided"]
    detail = staff_client.get(reverse("operator:code_batch", args=[batch.pk])).content.decode()
    redeemed = RedemptionCode.objects.get(status="redeemed")
    assert f"…{first[-4:]}" in detail and "acme" in detail and "olivia" in detail
    assert redeemed.redeemed.strftime("%Y-%m-%d %H:%M:%S") in detail


def test_a_code_of_another_batch_is_a_404(staff_client):
    create(staff_client, count="1")
    create(staff_client, count="1")
    first, second = RedemptionBatch.objects.order_by("pk")
    code = first.codes.get()
    response = staff_client.post(reverse("operator:code_void", args=[second.pk, code.pk]))
    assert response.status_code == 404
    assert RedemptionCode.objects.get(pk=code.pk).status == "unused"


def test_tenants_owners_cannot_reach_the_codes_pages(client, owner):
    client.force_login(owner)
    assert client.get(reverse("operator:codes")).status_code == 403
    assert client.post(reverse("operator:codes"), {"count": "1", "value": "1"}).status_code == 403
    assert not RedemptionCode.objects.exists()
