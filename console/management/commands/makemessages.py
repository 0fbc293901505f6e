"""``manage.py makemessages``: Django's, over the relay's own sources only.

The tests and the benchmark are never translated (and the tests' gettext
calls are fixtures), so they are left out without anyone having to remember
``--ignore``: ``python3 dev.py manage makemessages -l zh_Hans --no-obsolete``
updates locale/zh_Hans/LC_MESSAGES/django.po (docs/operator.md, "Languages").
"""

from django.core.management.commands import makemessages

NOT_TRANSLATED = ["tests", "bench", "test-artifacts", "staticfiles"]


class Command(makemessages.Command):
    def handle(self, *args, **options):
        options["ignore_patterns"] = [*options.get("ignore_patterns", []), *NOT_TRANSLATED]
        return super().handle(*args, **options)
