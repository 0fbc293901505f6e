"""What ``dev.py test`` runs besides pytest's whole pass (relay/devtools/devstack.py
runs them): the style and type checks, and the tests run again on a Redis
Cluster and behind Sentinel. Imports only the standard library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The limits, money and usage tests: a whole ``dev.py test`` runs them again
# on a Redis Cluster and behind Sentinel (REDIS_TOPOLOGY picks one topology
# for a run of your own). Tests marked standalone_only need one server.
TOPOLOGY_TESTS = [
    "tests/relay/limits",
    "tests/relay/connections/test_lua_client.py",
    "tests/relay/pipeline/test_gate.py",
    "tests/relay/pipeline/test_money.py",
    "tests/billing/test_live_balance.py",
    "tests/billing/test_usage.py",
    "tests/relay/pipeline/test_several_nodes.py",
    "tests/relay/pipeline/test_round_trips.py",
    "tests/relay/catalog/test_invalidation.py",
]
TOPOLOGIES = ("cluster", "sentinel")


# Style and types, held by the test command rather than by memory. Each runs
# and reports, and pytest runs whatever they say, so one style slip does not
# hide what the tests know. The command fails if any of them did.
CHECKS = {
    "ruff check": ["-m", "ruff", "check", "."],
    # One line per file it would change, not the whole diff.
    "ruff format --check": ["-m", "ruff", "format", "--check", "--output-format", "concise", "."],
    # The typed packages are listed in pyproject.toml ([tool.mypy]).
    "mypy": ["-m", "mypy"],
}


def run_checks(env: dict[str, str]) -> list[str]:
    """Run every check of CHECKS; the names of those that failed."""
    failed = []
    for name, args in CHECKS.items():
        print(f"--- {name}", flush=True)
        if subprocess.run([sys.executable, *args], env=env, cwd=ROOT).returncode != 0:
            failed.append(name)
    return failed
