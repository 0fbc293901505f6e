"""``python manage.py create_api_token <username>``: a fresh API token, printed once.

The token authenticates ``Authorization: Token <token>`` requests to /api/:
a staff user's reaches the operator API, any user's reaches /api/tenant/ for
the tenants they belong to. Running it again replaces the user's token, so
a lost or leaked token is rotated the same way.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create (or replace) a user's API token and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_active:
            raise CommandError(f"{username} is not active")
        with transaction.atomic():
            replaced = Token.objects.filter(user=user).delete()[0] > 0
            token = Token.objects.create(user=user)
        if replaced:
            self.stderr.write(f"{username}'s previous token no longer works.")
        if not user.is_staff:
            self.stderr.write(
                f"{username} is not staff: the token reaches /api/tenant/ only, "
                "not the operator API."
            )
        self.stderr.write("The token is shown once; store it now.")
        self.stdout.write(token.key)
