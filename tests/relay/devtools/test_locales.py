"""The message catalogs are compiled without GNU gettext (relay/devtools/locales.py),
and a missing one is reported (console/apps.py)."""

from __future__ import annotations

import gettext
import os
import shutil

from django.test import override_settings

from console.apps import catalogs_compiled
from relay.devtools.locales import compile_catalogs
from tests.helpers import ROOT

PO = """msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=1; plural=0;\\n"

msgid "Balance"
msgstr "余额"

#, fuzzy
msgid "Top up"
msgstr "一个猜测"

msgctxt "state"
msgid "active"
msgstr "正常"
"""


def catalog_dir(tmp_path):
    messages = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "django.po").write_text(PO)
    return tmp_path / "locale", messages


def test_a_catalog_is_compiled_once_and_again_when_its_po_changes(tmp_path):
    locale_dir, messages = catalog_dir(tmp_path)
    assert compile_catalogs(locale_dir) == [messages / "django.mo"]
    assert compile_catalogs(locale_dir) == []
    later = (messages / "django.mo").stat().st_mtime + 5
    os.utime(messages / "django.po", (later, later))
    assert compile_catalogs(locale_dir) == [messages / "django.mo"]


def test_the_compiled_catalog_reads_as_gettext_reads_it_without_fuzzy_guesses(tmp_path):
    locale_dir, messages = catalog_dir(tmp_path)
    compile_catalogs(locale_dir)
    with (messages / "django.mo").open("rb") as mo:
        catalog = gettext.GNUTranslations(mo)
    assert catalog.gettext("Balance") == "余额"
    assert catalog.pgettext("state", "active") == "正常"
    assert catalog.gettext("Top up") == "Top up"


def test_the_projects_own_catalog_compiles(tmp_path):
    copy = tmp_path / "locale"
    shutil.copytree(ROOT / "locale", copy, ignore=shutil.ignore_patterns("*.mo"))
    written = compile_catalogs(copy)
    assert [path.relative_to(copy).as_posix() for path in written] == [
        "zh_Hans/LC_MESSAGES/django.mo"
    ]


def test_a_missing_or_stale_catalog_is_a_warning(tmp_path):
    locale_dir, messages = catalog_dir(tmp_path)
    with override_settings(LOCALE_PATHS=[locale_dir]):
        assert [w.id for w in catalogs_compiled()] == ["console.W001"]
        compile_catalogs(locale_dir)
        assert catalogs_compiled() == []
        later = (messages / "django.mo").stat().st_mtime + 5
        os.utime(messages / "django.po", (later, later))
        assert [w.id for w in catalogs_compiled()] == ["console.W001"]
