"""What ships is what was tested: the wheel and the sdist carry every package
INSTALLED_APPS names, the consoles' templates and their compiled catalogs;
installed alone in a clean virtualenv they pass ``check --deploy`` and
``migrate``; and the Dockerfile copies what the package list holds."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import urllib.parse
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
APPS = ("accounts", "billing", "console", "relay")
# Top-level directories shipped as data inside the relay package.
DATA = {"relay.shipped.templates": "templates", "relay.shipped.locale": "locale"}
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def dockerfile_copies() -> list[str]:
    """What the Dockerfile copies from the tree (COPY lines not --from a stage)."""
    copied = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.extend(line.split()[1:-1])
    return copied


def tree_packages() -> set[str]:
    return {
        ".".join(init.parent.relative_to(ROOT).parts)
        for app in APPS
        for init in (ROOT / app).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def project_apps() -> set[str]:
    """The INSTALLED_APPS that are this project's own (not Django's or a library's)."""
    return {
        app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()
    }


def test_the_package_list_is_every_package_of_the_tree_and_the_data():
    assert set(SETUPTOOLS["packages"]) == tree_packages() | set(DATA)
    assert SETUPTOOLS["package-dir"] == DATA
    for directory in DATA.values():
        assert (ROOT / directory).is_dir()  # still at the top of the tree


def test_every_app_of_installed_apps_is_packaged():
    assert project_apps() == set(APPS)
    assert set(APPS) <= set(SETUPTOOLS["packages"])


def test_the_dockerfile_copies_every_packaged_app_and_data_directory_and_compiles_catalogs():
    copied = set(dockerfile_copies())
    tops = {package.split(".")[0] for package in SETUPTOOLS["packages"] if package not in DATA}
    assert tops | set(DATA.values()) | {"manage.py"} <= copied
    assert "relay/devtools/locales.py" in DOCKERFILE  # the .mo files, at build
    assert "pip install /tmp/embeddings_relay-" in DOCKERFILE  # the image runs the wheel


# --- the wheel in a clean virtualenv --------------------------------------------------------


def run(*args, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def fresh_database():
    """An empty database on the test server, for ``migrate`` to fill."""
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    name = f"wheel_{uuid.uuid4().hex[:10]}"
    admin = urllib.parse.urlunsplit(url._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urllib.parse.urlunsplit(url._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """An sdist of a clean copy of the tree (what the Dockerfile copies), and
    a wheel built from that sdist, so both are checked."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.mo", "*.pyc")
    for name in dockerfile_copies():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    run(sys.executable, "relay/devtools/locales.py", cwd=source)
    dist = work / "dist"
    run(
        sys.executable,
        "-c",
        f"import setuptools.build_meta as b; b.build_sdist({str(dist)!r})",
        cwd=source,
    )
    [sdist] = dist.glob("*.tar.gz")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        dist,
        sdist,
        cwd=work,
    )
    [wheel] = dist.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel, "work": work}


def test_the_sdist_carries_the_apps_templates_and_catalogs(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {"/".join(Path(name).parts[1:]) for name in sdist.getnames()}
    assert "console/apps.py" in names
    assert "templates/base.html" in names
    assert "locale/zh_Hans/LC_MESSAGES/django.po" in names
    assert "locale/zh_Hans/LC_MESSAGES/django.mo" in names


@pytest.fixture(scope="module")
def clean_venv(built) -> Path:
    """A virtualenv holding the wheel alone, seeing the dev virtualenv's
    libraries (nothing is downloaded) but not its editable copy of the tree."""
    venv = built["work"] / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=built["work"])
    python = venv / "bin" / "python"
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        built["wheel"],
        cwd=built["work"],
    )
    site = Path(
        run(
            python,
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            cwd=built["work"],
        ).strip()
    )
    # A plain path line: the dev site's own .pth files (the editable finder
    # that maps the packages to the checkout) are not run.
    (site / "zz_dev_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def production_env(database_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "DEBUG": "false",
        "HTTPS": "true",
        "ALLOWED_HOSTS": "relay.example.com",
        "LOG_FORMAT": "plain",
    }


def test_the_wheel_alone_passes_check_deploy_and_migrates_a_fresh_database(
    clean_venv, built, fresh_database
):
    # manage.py alone in a directory: the packages can only come from the wheel.
    here = built["work"] / "run"
    here.mkdir(exist_ok=True)
    shutil.copy2(ROOT / "manage.py", here / "manage.py")
    env = production_env(fresh_database)

    where = run(
        clean_venv,
        "-c",
        "import relay, console; print(relay.__file__, console.__file__)",
        cwd=here,
        env=env,
    )
    assert str(ROOT) not in where
    assert where.count(str(built["work"] / "venv")) == 2

    run(clean_venv, "manage.py", "check", "--deploy", "--fail-level", "WARNING", cwd=here, env=env)
    run(clean_venv, "manage.py", "migrate", "--no-input", cwd=here, env=env)
    plan = run(clean_venv, "manage.py", "showmigrations", "console", "--plan", cwd=here, env=env)
    assert "[X]  console." in plan and "[ ]" not in plan

    shown = run(
        clean_venv,
        "manage.py",
        "shell",
        "-c",
        (
            "from django.template.loader import get_template; "
            "from django.utils import translation; "
            "print(get_template('operator/home.html').origin.name); "
            "translation.activate('zh-hans'); print(translation.gettext('Sign in'))"
        ),
        cwd=here,
        env=env,
    )
    template_path, signed_in = shown.strip().splitlines()[-2:]
    assert template_path.startswith(str(built["work"] / "venv"))
    assert signed_in != "Sign in"  # the compiled catalog shipped in the wheel
