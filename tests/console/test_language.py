"""Which language a person reads (console/language.py), and the API's English.

Pages follow the browser's Accept-Language until the person chooses with the
switcher; a signed-in person's choice is kept on their profile and follows
them to another browser. /v1/ and /api/ answer the same bytes in English
whatever language the client asks for.
"""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation
from rest_framework.exceptions import NotAuthenticated

from console.models import Profile
from tests.helpers import SMALL

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
# The conftest cast's passwords.
PASSWORDS = {"olivia": "pw-olivia-123", "max": "pw-max-123"}


def sign_in(client, user, **headers):
    """Through the sign-in form, as a browser does (the sign-in signal runs)."""
    response = client.post(
        reverse("login"),
        {"username": user.username, "password": PASSWORDS[user.username]},
        **headers,
    )
    assert response.status_code == 302, response.content.decode()[:500]
    return response


def switch(client, code: str, next_url: str, **headers):
    return client.post(reverse("set_language"), {"language": code, "next": next_url}, **headers)


# --- the browser's language, then the switcher --------------------------------


@pytest.mark.django_db
def test_pages_follow_the_browsers_accept_language(client):
    chinese = client.get(reverse("login"), **ZH).content.decode()
    english = client.get(reverse("login"), **EN).content.decode()
    assert '<html lang="zh-hans">' in chinese and "<h1>登录</h1>" in chinese
    assert '<html lang="en">' in english and "<h1>Sign in</h1>" in english


@pytest.mark.django_db
def test_the_switcher_sets_the_language_and_returns_to_the_page(client):
    response = switch(client, "zh-hans", "/accounts/login/?next=/console/", **EN)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/console/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    # The cookie outweighs the browser's Accept-Language from now on.
    assert "<h1>登录</h1>" in client.get(reverse("login"), **EN).content.decode()
    switch(client, "en", "/accounts/login/", **EN)
    assert "<h1>Sign in</h1>" in client.get(reverse("login"), **ZH).content.decode()


@pytest.mark.django_db
def test_every_page_offers_the_switcher_with_each_language_named_in_itself(client, owner):
    sign_in(client, owner, **ZH)
    page = client.get(reverse("console:dashboard"), **ZH).content.decode()
    assert f'action="{reverse("set_language")}"' in page
    assert '<input type="hidden" name="next" value="/console/">' in page
    assert 'value="en" lang="en">English</button>' in page
    assert 'value="zh-hans" lang="zh-hans" aria-pressed="true">简体中文</button>' in page


@pytest.mark.django_db
def test_a_language_the_consoles_do_not_speak_is_not_taken(client, owner):
    sign_in(client, owner)
    switch(client, "de", "/console/")
    assert not Profile.objects.filter(user=owner).exclude(language="").exists()
    assert '<html lang="en">' in client.get(reverse("console:dashboard")).content.decode()


# --- a signed-in person's choice follows them ---------------------------------


@pytest.mark.django_db
def test_a_signed_in_persons_choice_is_kept_and_follows_them_to_another_browser(client, owner):
    sign_in(client, owner, **EN)
    assert "仪表盘" not in client.get(reverse("console:dashboard"), **EN).content.decode()
    switch(client, "zh-hans", "/console/", **EN)
    assert Profile.objects.get(user=owner).language == "zh-hans"
    assert "仪表盘" in client.get(reverse("console:dashboard"), **EN).content.decode()

    # Another browser: no cookie, an English Accept-Language.
    other = Client()
    assert "<h1>Sign in</h1>" in other.get(reverse("login"), **EN).content.decode()
    signed_in = sign_in(other, owner, **EN)
    assert signed_in.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    assert "仪表盘" in other.get(reverse("console:dashboard"), **EN).content.decode()

    # Signed out, that browser keeps speaking the person's language.
    other.post(reverse("logout"))
    assert "<h1>登录</h1>" in other.get(reverse("login"), **EN).content.decode()


@pytest.mark.django_db
def test_a_choice_made_on_the_sign_in_page_is_stored_when_signing_in(client, owner):
    switch(client, "zh-hans", "/accounts/login/", **EN)
    assert not Profile.objects.filter(user=owner).exists()
    sign_in(client, owner, **EN)
    assert Profile.objects.get(user=owner).language == "zh-hans"


@pytest.mark.django_db
def test_someone_elses_choice_left_in_a_shared_browser_is_not_stored(client, owner, member):
    Profile.objects.create(user=member, language="zh-hans")
    sign_in(client, member)  # their choice sets the browser's cookie
    client.post(reverse("logout"))
    sign_in(client, owner)
    assert not Profile.objects.filter(user=owner).exclude(language="").exists()


# --- the API answers in English, byte for byte --------------------------------


def test_drf_would_answer_in_chinese_if_the_api_were_translated():
    """What the next tests rule out is real: DRF ships a Chinese catalog."""
    with translation.override("en"):
        english = str(NotAuthenticated.default_detail)
    with translation.override("zh-hans"):
        assert str(NotAuthenticated.default_detail) != english


@pytest.mark.django_db
def test_the_operator_api_answers_the_same_bytes_whatever_the_language(client, owner):
    english = client.get("/api/tenants/", **EN)
    chinese = client.get("/api/tenants/", **ZH)
    assert english.status_code == chinese.status_code == 401
    assert chinese.content == english.content
    assert "Content-Language" not in chinese and "Accept-Language" not in chinese.get("Vary", "")
    # Also on a thread that has just served a Chinese page.
    sign_in(client, owner, **ZH)
    assert "仪表盘" in client.get(reverse("console:dashboard"), **ZH).content.decode()
    client.logout()
    assert client.get("/api/tenants/", **ZH).content == english.content


@pytest.mark.django_db(transaction=True)
def test_v1_errors_are_byte_identical_whatever_the_accept_language(relay_server):
    requests = [
        ("POST", "/v1/embeddings", {}, b'{"model": "x", "input": "hi"}'),
        (
            "POST",
            "/v1/embeddings",
            {"Authorization": "Bearer sk-not-a-key"},
            b'{"model": "x", "input": "hi"}',
        ),
        ("GET", "/v1/models", {"Authorization": "Bearer sk-not-a-key"}, None),
        ("GET", "/v1/no-such-route", {}, None),
        ("POST", "/v1/embeddings", {"Authorization": "Bearer sk-not-a-key"}, b"{not json"),
        ("GET", f"/v1/models/{SMALL}", {}, None),
    ]
    with httpx.Client(base_url=relay_server, timeout=30) as http:
        for method, path, headers, body in requests:
            answers = [
                http.request(
                    method,
                    path,
                    content=body,
                    headers={
                        **headers,
                        "Accept-Language": language,
                        "Content-Type": "application/json",
                    },
                )
                for language in ("en-US,en;q=0.9", "zh-CN,zh;q=0.9")
            ]
            english, chinese = answers
            assert english.status_code >= 400, (path, english.status_code)
            assert chinese.status_code == english.status_code, path
            assert chinese.content == english.content, path
            assert "error" in english.json(), path
            assert "content-language" not in chinese.headers, path
