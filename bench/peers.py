"""Install the peers the benchmark compares against, each in its own virtualenv.

    python3 dev.py bench-peers      (or: make bench-peers)

Today that is the LiteLLM proxy, pinned. Versions 1.82.7 and 1.82.8 were
published by an attacker and must never be installed; the pin below is
checked against them anyway, so a careless edit cannot bring them in.
The benchmark runs without peers and says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / ".bench-peers"
VENV = PEERS_DIR / "venv"
PYTHON = VENV / "bin" / "python"
LITELLM_EXECUTABLE = VENV / "bin" / "litellm"

LITELLM_VERSION = "1.106.2"
# Malicious releases (a compromised publishing token); never install these.
NEVER = {"1.82.7", "1.82.8"}


def available_versions(python: Path, package: str) -> list[str]:
    """The versions the configured registry offers, as ``pip index`` lists them."""
    listed = subprocess.run(
        [str(python), "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Available versions: (.+)", listed.stdout)
    if listed.returncode != 0 or not match:
        raise SystemExit(
            f"could not list {package}'s versions on the registry "
            f"(pip exit {listed.returncode}): {listed.stderr.strip()[-500:]}"
        )
    return [version.strip() for version in match.group(1).split(",")]


def main() -> int:
    if LITELLM_VERSION in NEVER:
        raise SystemExit(f"litellm {LITELLM_VERSION} is a known malicious release; refusing.")
    if not PYTHON.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    versions = available_versions(PYTHON, "litellm")
    if LITELLM_VERSION not in versions:
        raise SystemExit(
            f"litellm=={LITELLM_VERSION} is not on the package registry (it offers "
            f"{', '.join(versions[:8])}, ...); `make bench` will skip LiteLLM."
        )
    print(
        f"installing litellm[proxy]=={LITELLM_VERSION} into {VENV.relative_to(ROOT)} ...",
        flush=True,
    )
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            f"litellm[proxy]=={LITELLM_VERSION}",
        ],
        check=True,
    )
    installed = subprocess.run(
        [str(PYTHON), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if installed != LITELLM_VERSION or installed in NEVER:
        raise SystemExit(f"expected litellm {LITELLM_VERSION}, found {installed}")
    print(f"litellm {installed} ready: {LITELLM_EXECUTABLE}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
