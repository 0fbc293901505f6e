"""What the tests and the benchmark need from the machine besides Python:
Debian's Chromium, a CJK font, gettext, wrk and Node's OpenAI SDK, each
installed once when apt (as root) or npm is at hand. Imports only the
standard library."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHROMIUM = "/usr/bin/chromium"
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def ensure_debian_package(executable: str, package: str, purpose: str) -> None:
    """Install a Debian package the tests or the benchmark drive (Debian's
    Chromium: Playwright's own browser download cannot work offline; wrk),
    once, when apt is at hand and we may use it. ``executable``: a command's
    name, or the absolute path of a file the package installs (a font)."""
    present = Path(executable).exists() if os.path.isabs(executable) else shutil.which(executable)
    if present or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    print(f"installing Debian's {package} for {purpose} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=False)


NODE_CLIENT = ROOT / "tests" / "clients" / "node"


def ensure_node_client() -> None:
    """The OpenAI Node SDK that tests/relay/providers/test_clients.py runs,
    installed from the npm registry as its lock file pins it, once (again
    when the lock file is newer than the install). Without Node.js (Debian's
    nodejs and npm are installed when apt is at hand and we are root), those
    tests fail and say why."""
    ensure_debian_package("npm", "npm", "the Node SDK tests")
    installed = NODE_CLIENT / "node_modules" / ".package-lock.json"  # written by npm last
    lock = NODE_CLIENT / "package-lock.json"
    if not shutil.which("npm") or (
        installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime
    ):
        return
    print("installing the OpenAI Node SDK for the client tests (npm ci) ...", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_CLIENT, check=False)
