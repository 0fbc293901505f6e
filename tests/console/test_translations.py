"""Both consoles read in Simplified Chinese, and nothing is left in English.

Three checks, each shown to fail on what it is meant to catch:

- every template's visible text is inside a translation tag (a static scan of
  templates/console, templates/operator, templates/registration, base.html);
- makemessages, run on a copy of the project, finds no message without a
  Chinese translation (none empty, none fuzzy);
- every page of both consoles, rendered in Chinese with a realistic month of
  data, shows no English word but data (names, models, keys) and a few terms.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.template.base import Lexer, TokenType
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from console import formatting
from console.labels import LABELS
from console.tenant import csv_export
from tests.console.helpers import build_world, data_words
from tests.helpers import ROOT

TEMPLATES = ROOT / "templates"
CONSOLE_TEMPLATES = sorted(
    [TEMPLATES / "base.html"]
    + [
        path
        for folder in ("console", "operator", "registration")
        for path in (TEMPLATES / folder).rglob("*.html")
    ]
)
LETTERS = re.compile(r"[A-Za-z]")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.'@/:+-]*")
# Elements whose text is code or data, never prose: not translated.
CODE = {"script", "style", "code", "pre"}
VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
SHOWN_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt"}
# Terms a Chinese page keeps as they are.
TERMS = {
    "UTC",
    "API",
    "ID",
    "CSV",
    "IP",
    "CIDR",
    "RPM",
    "TPM",
    "Token",
    "OpenAI",
    "Azure",
    "Bearer",
    "URL",
    "Base",
    "slug",
    "Ctrl",
    "C",
    "Mac",
    "Embedding",
    "embeddings",
    "http",
    "https",
    "usage.prompt_tokens",
    "usage.total_tokens",
    "RELAY_UPSTREAM_ALLOWED_NETWORKS",
    "English",  # the switcher names each language in itself
    # Provider parameters and the docs page the channel form names.
    "input_type",
    "task",
    "dimensions",
    "Matryoshka",
    "docs/providers.md",
    "db8::/32",  # the IP allow-list's example: 2001:db8::/32, IPv6 for documentation
}
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


# --- templates: visible text outside translation tags ----------------------------


class _Visible(HTMLParser):
    """Collects text a reader sees, outside code, from HTML whose template
    tags were removed (translated text) or replaced by NUL (values)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, bool]] = []
        self.found: list[str] = []

    def _in_code(self) -> bool:
        return any(code for _tag, code in self.open)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        for name, value in attrs:
            if value and (
                name in SHOWN_ATTRIBUTES
                or (  # an <input> button shows its value
                    tag == "input"
                    and name == "value"
                    and attributes.get("type") in ("submit", "button", "reset")
                )
            ):
                self.found.append(value)
        if tag not in VOID:
            self.open.append((tag, tag in CODE or "mono" in classes))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] == tag:
                del self.open[i:]
                return

    def handle_data(self, data):
        if not self._in_code():
            self.found.append(data)


FILTER_LITERAL = re.compile(r"\|\s*(default|default_if_none|yesno)\s*:\s*(\"[^\"]*\"|'[^']*')")
LEADING_LITERAL = re.compile(r"^\s*(\"([^\"]*)\"|'([^']*)')\s*(\|\s*(\w+))?")
WITH_LITERAL = re.compile(r"\b\w+=(\"[^\"]*\"|'[^']*')")


def unmarked_text(source: str) -> list[str]:
    """Visible text of a template that no translation tag covers."""
    problems: list[str] = []
    skeleton: list[str] = []
    translated = commented = False
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.COMMENT:
            continue
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0]
            if name in ("blocktranslate", "blocktrans"):
                translated = True
            elif name in ("endblocktranslate", "endblocktrans"):
                translated = False
            elif name == "comment":
                commented = True
            elif name == "endcomment":
                commented = False
            elif name in ("include", "with"):
                problems += [
                    m.group(1)
                    for m in WITH_LITERAL.finditer(token.contents)
                    if LETTERS.search(m.group(1))
                ]
            continue
        if translated or commented:
            continue
        if token.token_type == TokenType.VAR:
            problems += [
                m.group(2)
                for m in FILTER_LITERAL.finditer(token.contents)
                if LETTERS.search(m.group(2))
            ]
            leading = LEADING_LITERAL.match(token.contents)
            if leading:
                literal = leading.group(2) or leading.group(3) or ""
                if LETTERS.search(literal) and not (
                    leading.group(5) == "label" and literal in LABELS
                ):
                    problems.append(leading.group(1))
            skeleton.append("\0")
            continue
        skeleton.append(token.contents)
    parser = _Visible()
    parser.feed("".join(skeleton))
    parser.close()
    problems += [
        text.replace("\0", "").strip()
        for text in parser.found
        if LETTERS.search(text.replace("\0", ""))
    ]
    return problems


def test_every_console_template_has_its_text_inside_translation_tags():
    assert len(CONSOLE_TEMPLATES) > 35
    found = {}
    for path in CONSOLE_TEMPLATES:
        problems = unmarked_text(path.read_text())
        if problems:
            found[str(path.relative_to(ROOT))] = problems
    assert not found, found


@pytest.mark.parametrize(
    "snippet",
    [
        "<p>Plain words</p>",
        '{% load i18n %}<h1>{% translate "Marked" %} and not</h1>',
        '<input name="q" placeholder="slug or name">',
        '<button type="button" aria-label="Close">×</button>',
        '<input type="submit" value="Send">',
        '{{ key.expires|default:"never" }}',
        '{{ "Hello" }}',
        '{% include "x.html" with title="Some heading" %}',
        '<span class="muted">{% if x %}{{ x }}{% else %}none{% endif %}</span>',
    ],
)
def test_the_template_check_finds_text_left_out_of_translation(snippet):
    assert unmarked_text(snippet)


def test_the_template_check_lets_marked_text_code_and_data_pass():
    snippet = (
        '{% load i18n %}<h1 title="{% translate \'T\' %}">{% translate "Marked" %}</h1>'
        "<p>{% blocktranslate with n=x %}Hello {{ n }}{% endblocktranslate %} — {{ value }}</p>"
        '<code>prompt_tokens</code><td class="mono">total_tokens 1</td>'
        '<script>var a = "b";</script><input type="hidden" name="status" value="active">'
        '{{ x|default:_("never") }}{{ "enabled"|label }}{{ d|date:"Y-m-d" }}'
    )
    assert unmarked_text(snippet) == []


# --- the catalog: every message translated ---------------------------------------

SOURCES = ("accounts", "billing", "relay", "console", "templates", "locale", "manage.py")


def copy_of_the_sources(target: Path) -> Path:
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.mo", "*.pyc")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def untranslated(project: Path) -> list[str]:
    """makemessages over ``project`` (its own settings, so its own locale/),
    then every message of the merged Chinese catalog without a translation."""
    done = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with (project / "locale/zh_Hans/LC_MESSAGES/django.po").open("rb") as po:
        catalog = read_po(po, locale="zh_Hans")
    problems = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            problems.append(message.id if isinstance(message.id, str) else message.id[0])
    return problems


@pytest.fixture(scope="module")
def gettext_tools():
    if not shutil.which("xgettext") or not shutil.which("msgmerge"):
        pytest.fail(
            "makemessages needs GNU gettext (apt-get install gettext; "
            "`python3 dev.py test` installs it when it can)"
        )


def test_every_message_of_the_consoles_has_a_chinese_translation(tmp_path, gettext_tools):
    project = copy_of_the_sources(tmp_path / "project")
    assert untranslated(project) == []
    # The check ran on this project's messages, not on an empty catalog.
    with (project / "locale/zh_Hans/LC_MESSAGES/django.po").open("rb") as po:
        assert len(read_po(po, locale="zh_Hans")) > 300


def test_the_catalog_check_finds_a_message_nobody_translated(tmp_path, gettext_tools):
    project = copy_of_the_sources(tmp_path / "project")
    page = project / "templates/console/audit.html"
    page.write_text(
        page.read_text().replace(
            "{% endblock %}",
            '<p>{% translate "A sentence nobody translated" %}</p>{% endblock %}',
            1,
        )
    )
    views = project / "console/tenant/views.py"
    views.write_text(views.read_text() + '\n\nNEW = _("Another new message")\n')
    assert set(untranslated(project)) == {"A sentence nobody translated", "Another new message"}


# --- rendered pages: nothing left in English -------------------------------------


def english_words(html: str, *, allowed: set[str]) -> set[str]:
    """Latin-script words a reader sees on the page that are neither data nor terms."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    words = set()
    for text in parser.found:
        words |= {word.rstrip(".:") for word in WORD.findall(text)}
    return {word for word in words if word and word not in allowed and not is_address(word)}


def allowed_words(data: set[str]) -> set[str]:
    words = set(TERMS)
    for text in data:
        words |= {word.rstrip(".:") for word in WORD.findall(text)}
    return words


def is_address(word: str) -> bool:
    return "://" in word  # an example URL in a help text


def chinese_pages(client, world) -> dict[str, str]:
    """Every GET page of both consoles, and a few answers to forms, in Chinese."""
    pages = {}
    signed_in = None
    for who, url in world.pages:
        user = {"owner": world.owner, "operator": world.operator}.get(who)
        if user is not signed_in:
            client.logout()
            if user is not None:
                client.force_login(user)
            signed_in = user
        response = client.get(url, **ZH)
        assert response.status_code == 200, (url, response.status_code)
        pages[url] = response.content.decode()
    client.force_login(world.owner)
    issued = client.post(
        reverse("console:key_issue"),
        {"name": "new", "group": world.key.group_id, "nonce": "n-1"},
        **ZH,
    )
    pages["key created"] = issued.content.decode()
    invalid = client.post(reverse("console:key_issue"), {"name": "", "limit_rpm": "x"}, **ZH)
    pages["key form with errors"] = invalid.content.decode()
    client.force_login(world.operator)
    tenant = world.tenant.pk
    refused = client.post(
        reverse("operator:tenant_balance", args=[tenant]),
        {"kind": "adjustment", "amount": "-1000", "reason": ""},
        **ZH,
    )
    pages["balance form with errors"] = refused.content.decode()
    saved = client.post(
        reverse("operator:tenant_edit", args=[tenant]),
        {
            "name": world.tenant.name,
            "groups": [],
            "limit_rpm": "1200",
            "limit_tpm": "",
            "limit_concurrency": "50",
        },
        follow=True,
        **ZH,
    )
    pages["tenant saved"] = saved.content.decode()
    return pages


@pytest.fixture
def world(db, django_user_model):
    return build_world(django_user_model)


def test_every_page_of_both_consoles_reads_in_chinese(client, world):
    pages = chinese_pages(client, world)
    allowed = allowed_words(data_words(world))  # with the key the pages issued
    assert len(pages) == len(world.pages) + 4
    leftovers = {
        url: words for url, html in pages.items() if (words := english_words(html, allowed=allowed))
    }
    assert not leftovers, leftovers
    assert 'lang="zh-hans"' in pages[reverse("console:dashboard")]
    assert "令牌“new”已创建" in pages["key created"]
    assert "已保存（分组）。" in pages["tenant saved"]


def test_the_page_check_finds_english_on_the_same_pages_in_english(client, world):
    client.force_login(world.owner)
    english = client.get(reverse("console:dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    assert {"Balance", "Dashboard", "Keys"} <= english_words(
        english.content.decode(), allowed=allowed_words(world.data)
    )


def test_the_usage_csv_names_its_columns_in_the_readers_language(client, world):
    assert set(csv_export.HEADERS) == set(csv_export.COLUMNS)  # a new column needs a name
    client.force_login(world.owner)
    url = reverse("console:usage_csv")
    english = next(
        csv.reader(
            io.StringIO(
                b"".join(client.get(url, HTTP_ACCEPT_LANGUAGE="en").streaming_content).decode()
            )
        )
    )
    chinese = next(
        csv.reader(io.StringIO(b"".join(client.get(url, **ZH).streaming_content).decode()))
    )
    assert english == list(csv_export.COLUMNS)
    assert chinese[:4] == ["时间", "请求 ID", "令牌", "模型"]
    assert not {word for name in chinese for word in WORD.findall(name)} - {"ID", "Token"}


@override_settings(CURRENCY="USD")
def test_money_numbers_and_dates_are_written_the_readers_way():
    with translation.override("en"):
        assert formatting.money(1_234_567_000_000) == "1,234.567 USD"
        assert formatting.thousands(1234567) == "1,234,567"
        assert formatting.day(dt.date(2025, 3, 10)) == "Mar 10, 2025"
    with translation.override("zh-hans"):
        assert formatting.money(1_234_567_000_000) == "1,234.567 美元"
        assert formatting.money(40, currency=False) == "0.00000004"
        assert formatting.thousands(1234567) == "1,234,567"
        assert formatting.percent(0.025) == "2.50%"
        assert formatting.day(dt.date(2025, 3, 10)) == "2025年3月10日"
