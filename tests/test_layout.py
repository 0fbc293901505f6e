"""The layout stays as drawn in docs/architecture.md: who imports whom, no
import circles, small modules, each package saying what it is for.

The import rules are import-linter's contracts in pyproject.toml; the test
runs them on the project, and on a copy of it with one forbidden import or
one circle added, so that it is seen to fail when the layout breaks.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "billing", "relay", "console")
LONGEST_MODULE_LINES = 500


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
            "--config",
            "pyproject.toml",
        ],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_project_keeps_every_import_contract():
    linted = lint_imports(ROOT)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.fixture
def copy_of_the_project(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(root: Path, module: str, statement: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{statement}\n")


def broken_contracts(linted: subprocess.CompletedProcess) -> list[str]:
    return [
        line.rsplit(" ", 1)[0] for line in linted.stdout.splitlines() if line.endswith(" BROKEN")
    ]


def test_billing_importing_the_relay_breaks_the_apps_layers(copy_of_the_project):
    add_import(copy_of_the_project, "billing.reports", "from relay.models import Channel")
    linted = lint_imports(copy_of_the_project)
    assert linted.returncode == 1
    assert broken_contracts(linted) == [
        "The apps in layers: consoles over the relay over billing over accounts"
    ]


def test_the_request_path_importing_a_console_breaks_the_apps_layers(copy_of_the_project):
    add_import(copy_of_the_project, "relay.pipeline.embed", "import console.reports")
    linted = lint_imports(copy_of_the_project)
    assert linted.returncode == 1
    assert "relay.pipeline.embed -> console.reports" in linted.stdout


def test_a_low_layer_importing_a_high_one_breaks_the_relay_layers(copy_of_the_project):
    add_import(copy_of_the_project, "relay.limits.rules", "from relay.api import views")
    linted = lint_imports(copy_of_the_project)
    assert linted.returncode == 1
    assert "The relay's packages in layers" in broken_contracts(linted)


def test_a_circle_between_two_modules_breaks_the_no_circles_contract(copy_of_the_project):
    # relay.pipeline.embed imports relay.pipeline.trace; now the other way too.
    add_import(copy_of_the_project, "relay.pipeline.trace", "from relay.pipeline import embed")
    linted = lint_imports(copy_of_the_project)
    assert linted.returncode == 1
    assert broken_contracts(linted) == [
        "No import circles: no two sibling modules or packages import each other"
    ]


def project_modules() -> list[Path]:
    found = []
    for top in (*PACKAGES, "tests", "bench"):
        found += [
            path
            for path in (ROOT / top).rglob("*.py")
            if "migrations" not in path.parts and "__pycache__" not in path.parts
        ]
    return sorted(found)


def test_no_module_is_longer_than_500_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in project_modules()
        if (lines := len(path.read_text().splitlines())) > LONGEST_MODULE_LINES
    }
    assert long == {}


def test_every_package_opens_with_a_docstring_saying_what_it_holds():
    undocumented = [
        str(init.relative_to(ROOT))
        for top in PACKAGES
        for init in (ROOT / top).rglob("__init__.py")
        if not {"migrations", "management", "commands", "templatetags"} & set(init.parts)
        and not ast.get_docstring(ast.parse(init.read_text()))
    ]
    assert undocumented == []
