"""``manage.py first_operator``: an operator account for a database that has none.

``python3 dev.py run`` calls it on the database it made itself, so that a fresh
checkout can sign in to /operator/ at once. When no staff user exists, it
creates a superuser (``--username``, default ``operator``) with a generated
password and prints the username and the password, one a line; the password
is kept nowhere else. When an operator exists already, it prints nothing.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Create an operator (superuser) with a generated password, if there is none."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="operator")

    @transaction.atomic
    def handle(self, *args, username: str, **options) -> None:
        User = get_user_model()
        if User.objects.filter(is_staff=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(username)
        self.stdout.write(password)
