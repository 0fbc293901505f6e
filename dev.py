#!/usr/bin/env python3
"""Run or test the relay on a machine that has only Python 3.11+.

    python3 dev.py run     bring the relay up with everything it needs
    python3 dev.py test    run the whole test suite
    python3 dev.py manage <command> [args]   a manage.py command against the
                           stack `run` uses (its .devstack/ databases and secrets)
    python3 dev.py bench   run the benchmark (docs/benchmarks.md)
    python3 dev.py bench-peers   install the peers it compares against (LiteLLM)
    python3 dev.py bench-drain   the usage drain's insert rate for 1, 2 and 4 processes

Creates .venv and installs the project into it (again only when
pyproject.toml changed), then hands over to relay/devtools/devstack.py inside it.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"


def ensure_virtualenv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (this file runs on any python3)
        sys.exit("Python 3.11 or newer is needed.")
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("installing dependencies into .venv ...", flush=True)
        pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(wanted)


def main() -> None:
    ensure_virtualenv()
    os.chdir(ROOT)
    args = sys.argv[1:]
    # The benchmark has its own runner (bench/); everything else is devstack's.
    module = {"bench": "bench.run", "bench-peers": "bench.peers", "bench-drain": "bench.drain"}.get(
        args[0] if args else ""
    )
    if module:
        args = args[1:]
    # Replace this process: the launcher's signals (Ctrl-C) reach the stack.
    os.execv(str(PYTHON), [str(PYTHON), "-m", module or "relay.devtools.devstack", *args])  # noqa: S606


if __name__ == "__main__":
    main()
