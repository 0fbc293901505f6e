"""Compile the consoles' message files (locale/*/LC_MESSAGES/*.po) to the .mo
catalogs Django reads, with Babel: pure Python, so no GNU gettext (msgfmt) is
needed where the relay is started or built.

    python -m relay.devtools.locales      compile what is missing or stale

``dev.py run``, ``dev.py test`` and ``dev.py manage`` call it before they
start anything; the Dockerfile runs it while building the image. The .mo
files are build products and not committed (.gitignore).
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]


def compile_catalogs(locale_dir: Path = ROOT / "locale", *, force: bool = False) -> list[Path]:
    """Write each .po's .mo when it is missing or older; return those written.

    Fuzzy entries are left out, as msgfmt does: a guess is not a translation.
    """
    written = []
    for po_path in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        locale = po_path.parent.parent.name
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale, abort_invalid=True)
        # Written beside, then moved: a server reading the catalog never sees half of it.
        partial = mo_path.with_suffix(".mo.partial")
        with partial.open("wb") as mo_file:
            write_mo(mo_file, catalog, use_fuzzy=False)
        partial.replace(mo_path)
        written.append(mo_path)
    return written


def main() -> int:
    for path in compile_catalogs(force="--force" in sys.argv[1:]):
        print(f"compiled {path.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
