"""Which language the consoles speak to a person, and why the API speaks only English.

- Pages for people (``PEOPLE_PATHS``: the consoles, sign-in, the switcher, the
  admin) are translated. Everything else (``/v1/``, ``/api/``, the legacy
  billing paths, the probes) answers in ``settings.LANGUAGE_CODE``, English,
  whatever the client asks: OpenAI's messages are the wire contract, and DRF
  would otherwise translate the operator API's.
- A signed-in person who chose a language with the switcher reads that
  language in any browser: the choice is kept on their ``Profile``, copied
  into the session when they sign in, and applied on every request here.
- Anyone else gets the language of the switcher's cookie, else the browser's
  ``Accept-Language`` (Django's ``LocaleMiddleware``).

A choice made with the switcher before signing in (on the sign-in page) is
the person's latest choice: signing in stores it on their profile. The
language cookie follows the signed-in person's choice, so the sign-in page
shown after signing out is in their language too.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.middleware.locale import LocaleMiddleware
from django.utils import translation
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from console.models import Profile

PEOPLE_PATHS = ("/console/", "/operator/", "/accounts/", "/i18n/", "/admin/")
# The language the person chose, "" for none (then the browser decides).
SESSION_LANGUAGE = "console_language"


def supported(code: str | None) -> str | None:
    """``code`` if it is one of settings.LANGUAGES, else None."""
    return code if code and code in dict(settings.LANGUAGES) else None


def stored_language(user) -> str:
    return Profile.objects.filter(user=user).values_list("language", flat=True).first() or ""


def remember(user, code: str) -> None:
    Profile.objects.update_or_create(user=user, defaults={"language": code})


def person_language(request) -> str | None:
    """The signed-in person's own choice, or None (not signed in, or no choice)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    code = request.session.get(SESSION_LANGUAGE)
    if code is None:  # a session older than the choice's place in it
        code = stored_language(user)
        request.session[SESSION_LANGUAGE] = code
    return supported(code)


def for_people(request) -> bool:
    return request.path_info.startswith(PEOPLE_PATHS)


class LanguageMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware for pages, behind the person's own choice;
    English, untouched, for everything else. List it after the session and
    authentication middleware."""

    def process_request(self, request):
        if not for_people(request):
            # Activated, not just left alone: a thread keeps the language of
            # the last request it served.
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
            return
        code = person_language(request)
        if code is None:
            super().process_request(request)
        else:
            translation.activate(code)
            request.LANGUAGE_CODE = code

    def process_response(self, request, response):
        if not for_people(request):
            return response
        response = super().process_response(request, response)
        code = person_language(request)  # after this request's sign-in or sign-out
        if code and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != code:
            set_language_cookie(response, code)
        return response


def set_language_cookie(response, code: str) -> None:
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        code,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )


@require_POST
def set_language(request):
    """Django's ``set_language`` (the cookie, the redirect to ``next``), and
    the choice kept: on the profile when signed in, in the session before."""
    response = django_set_language(request)
    code = supported(request.POST.get("language"))
    if code:
        request.session[SESSION_LANGUAGE] = code
        if request.user.is_authenticated:
            remember(request.user, code)
    return response


@receiver(user_logged_in, dispatch_uid="console.language.at_sign_in")
def at_sign_in(sender, request, user, **kwargs) -> None:
    """Apply the person's language from the moment they sign in; a choice
    made on the sign-in page just before is their latest, and is stored."""
    if request is None:  # a sign-in outside any request
        return
    chosen = supported(request.session.get(SESSION_LANGUAGE))
    if chosen:
        remember(user, chosen)
    request.session[SESSION_LANGUAGE] = chosen or supported(stored_language(user)) or ""
