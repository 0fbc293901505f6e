"""The launcher (relay/devtools/devstack.py): what `run` seeds and prints, and
how `manage` shares the embedded servers of a running `run`."""

from __future__ import annotations

import contextlib
import io
import os
import tomllib

import pytest
import redis
from django.core.management import call_command

from accounts.models import Group, GroupModel, Tenant
from relay.devtools import devstack, suite
from relay.models import Channel

BASE = "http://127.0.0.1:8123"


# --- what `run` prints --------------------------------------------------------


def test_the_banner_gives_a_working_curl_and_the_generated_sign_in():
    text = devstack.banner(BASE, secret="sk-demo-secret", operator=["operator", "s3cret-pw"])
    assert f"curl {BASE}/v1/embeddings" in text
    assert "Authorization: Bearer sk-demo-secret" in text
    assert f"Operator console: {BASE}/operator/" in text
    assert "sign in as operator with password s3cret-pw" in text
    assert "another operator account: python3 dev.py manage createsuperuser" in text


def test_the_banner_says_when_the_demo_was_left_out_of_the_users_own_database():
    text = devstack.banner(BASE, secret=None, operator=[])
    assert "DATABASE_URL names your own database: no demo tenant" in text
    assert "Bearer <a key issued in the operator console>" in text
    assert "password" not in text
    assert "an operator account: python3 dev.py manage createsuperuser" in text


# --- `run` seeds only the database it made ---------------------------------------


class Stop(Exception):
    pass


@pytest.fixture
def dry_run(monkeypatch):
    """``run`` with its servers, processes and commands recorded, not started;
    it stops where it would wait for the relay to answer."""
    commands: list[tuple[str, ...]] = []

    @contextlib.contextmanager
    def services(state_dir, **kwargs):
        yield {"DATABASE_URL": "postgres://launcher/relay"}

    def output_lines(env, *args):
        commands.append(args)
        return ["operator", "pw"] if args[0] == "first_operator" else ["seeded", "sk-x"]

    def wait_ready(url, timeout_s=60):
        raise Stop

    monkeypatch.setattr(devstack, "compile_messages", lambda: None)
    monkeypatch.setattr(devstack, "services", services)
    monkeypatch.setattr(devstack, "manage", lambda env, *args: commands.append(args))
    monkeypatch.setattr(devstack, "output_lines", output_lines)
    monkeypatch.setattr(devstack, "spawn", lambda *args, **kwargs: _Child())
    monkeypatch.setattr(devstack, "wait_ready", wait_ready)
    return commands


class _Child:
    def poll(self):
        return None

    def terminate(self):
        pass

    def wait(self, timeout=None):
        return 0


def test_run_seeds_the_demo_and_an_operator_into_the_database_it_made(dry_run, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(Stop):
        devstack.run()
    names = [command[0] for command in dry_run]
    assert names == ["migrate", "seed_demo", "first_operator"]


def test_run_never_seeds_a_database_that_database_url_names(dry_run, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://someone@db.example/production")
    with pytest.raises(Stop):
        devstack.run()
    assert [command[0] for command in dry_run] == ["migrate"]


# --- the commands it runs ---------------------------------------------------------


@pytest.mark.django_db
def test_the_first_operator_is_made_once_with_a_generated_password(django_user_model):
    out = io.StringIO()
    call_command("first_operator", stdout=out)
    username, password = out.getvalue().split()
    operator = django_user_model.objects.get(username=username)
    assert operator.is_staff and operator.is_superuser and operator.check_password(password)
    again = io.StringIO()
    call_command("first_operator", stdout=again)
    assert again.getvalue() == ""
    assert django_user_model.objects.filter(is_staff=True).count() == 1


@pytest.mark.django_db
def test_no_operator_is_made_where_one_exists(django_user_model):
    django_user_model.objects.create_user("sam", password="pw-sam-123", is_staff=True)
    out = io.StringIO()
    call_command("first_operator", stdout=out)
    assert out.getvalue() == ""


@pytest.mark.django_db
def test_the_demo_keeps_to_its_own_tenant_and_group(django_user_model):
    mine = Group.objects.create(name="default")
    GroupModel.objects.create(group=mine, model="text-embedding-3-small")
    customer = Tenant.objects.create(slug="acme", name="Acme")
    customer.groups.add(mine)
    out = io.StringIO()
    call_command("seed_demo", "--upstream", "http://127.0.0.1:9/v1", stdout=out)
    demo = Tenant.objects.get(slug="demo")
    assert list(demo.groups.values_list("name", flat=True)) == ["demo"]
    assert not Channel.objects.filter(groups=mine).exists()
    assert list(mine.models.values_list("model", flat=True)) == ["text-embedding-3-small"]
    assert list(customer.groups.all()) == [mine]
    assert out.getvalue().strip().splitlines()[-1].startswith("sk-")


# --- `manage` shares a running `run`'s Redis ---------------------------------------


def test_a_second_launcher_uses_the_embedded_redis_that_is_running(tmp_path):
    data_dir = tmp_path / "redis"
    with devstack.embedded_redis(data_dir) as url:
        with devstack.embedded_redis(data_dir) as shared:
            assert shared == url
            redis.Redis.from_url(shared).set("written-by", "manage")
        # The second one did not stop the first one's server.
        assert redis.Redis.from_url(url).get("written-by") == b"manage"
    assert not (data_dir / "server.port").exists()
    assert devstack._running_redis(data_dir) is None


# --- the checks the test command runs before pytest -------------------------------------------


def test_the_test_command_checks_style_formatting_and_types():
    commands = [" ".join(args) for args in suite.CHECKS.values()]
    assert "-m ruff check ." in commands
    assert any(c.startswith("-m ruff format --check") for c in commands)
    assert "-m mypy" in commands


def test_a_failing_check_is_named_and_the_next_checks_still_run(monkeypatch, capsys):
    monkeypatch.setattr(
        suite,
        "CHECKS",
        {
            "fails": ["-c", "raise SystemExit(3)"],
            "passes": ["-c", "print('ran')"],
        },
    )

    failed = suite.run_checks(dict(os.environ))

    assert failed == ["fails"]
    assert "--- passes" in capsys.readouterr().out


def test_the_typed_packages_exist_and_the_type_checker_is_a_dev_dependency():
    pyproject = tomllib.loads((devstack.ROOT / "pyproject.toml").read_text())
    typed = pyproject["tool"]["mypy"]
    for name in typed["modules"] + typed["packages"]:
        path = devstack.ROOT.joinpath(*name.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), name
    dev = " ".join(pyproject["project"]["optional-dependencies"]["dev"])
    assert "mypy" in dev and "django-stubs" in dev
