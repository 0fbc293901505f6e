"""compose.yaml and .env.example describe what `python3 dev.py run` runs."""

import re
from pathlib import Path

import yaml

from relay.devtools import devstack

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def settings_variables() -> set[str]:
    text = (ROOT / "relay" / "settings.py").read_text()
    return set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', text))


def test_the_stack_has_every_service_with_health_checks_and_restart_policies():
    assert set(SERVICES) == {"postgres", "redis", "migrate", "web", "worker", "beat", "lb"}
    for name in ("postgres", "redis", "web", "worker", "lb"):
        assert "healthcheck" in SERVICES[name], name
    for name in ("postgres", "redis", "web", "worker", "beat", "lb"):
        assert SERVICES[name]["restart"] == "unless-stopped", name
    assert SERVICES["migrate"]["restart"] == "no"
    assert {"postgres-data", "redis-data"} <= set(COMPOSE["volumes"])


def test_web_and_workers_scale_behind_one_load_balancer_and_one_beat():
    assert SERVICES["web"]["deploy"]["replicas"] == "${WEB_REPLICAS:-2}"
    assert "ports" not in SERVICES["web"]  # reached only through the load balancer
    assert SERVICES["lb"]["ports"] == ["${PORT:-8000}:8000"]
    assert "server web:8000 resolve;" in COMPOSE["configs"]["nginx-relay"]["content"]
    assert SERVICES["worker"]["deploy"]["replicas"] == "${WORKER_REPLICAS:-1}"
    assert "deploy" not in SERVICES["beat"]  # exactly one


def test_redis_keeps_its_data_and_never_evicts():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_services_run_what_the_dev_launcher_runs():
    assert SERVICES["web"]["command"][:6] == ["python", "-m", *devstack.WEB_COMMAND]
    assert SERVICES["worker"]["command"][:4] == devstack.WORKER_COMMAND
    assert SERVICES["beat"]["command"][:4] == ["celery", "-A", "relay", "beat"]
    assert SERVICES["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    for name in ("web", "worker", "beat"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_relay_services_get_every_setting_from_the_environment():
    for name in ("migrate", "web", "worker", "beat"):
        service = SERVICES[name]
        assert service["env_file"][0]["path"] == ".env"
        for required in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CREDENTIALS_KEYS"):
            assert required in service["environment"], (name, required)


def test_env_example_lists_every_setting_with_its_meaning():
    listed = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"([A-Z0-9_]+)=", line)
        if match:
            listed[match.group(1)] = line
    missing = settings_variables() - set(listed)
    assert not missing, f".env.example lacks {sorted(missing)}"
