#!/usr/bin/env python3
"""Set up effnet_lab and run it: the two commands of the README.

    python3 dev.py lab     create the environment if needed, open JupyterLab on notebooks/
    python3 dev.py test    create the environment if needed, run every test

The environment is a virtualenv in .venv/ with this package installed in editable mode and
all its extras; it is (re)installed only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
EXTRAS = "lab,test"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment() -> Path:
    if sys.version_info < (3, 10):  # noqa: UP036 (dev.py may run under any python3)
        sys.exit(f"effnet_lab needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    python = venv_python()
    if not python.exists():
        print(f"creating a virtual environment in {VENV} …", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".effnet_lab-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        print("installing effnet_lab and its dependencies (torch is large: a few minutes) …", flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run(pip + ["--upgrade", "pip"], check=True)
        subprocess.run(pip + ["-e", f"{ROOT}[{EXTRAS}]"], check=True)
        stamp.write_text(wanted)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("lab", "test"):
        print(__doc__)
        return 2
    python = ensure_environment()
    if argv[0] == "lab":
        cmd = [str(python), "-m", "jupyterlab", str(ROOT / "notebooks")]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # Jupyter refuses root without it (containers, CI)
        return subprocess.call(cmd + argv[1:], cwd=ROOT)
    return subprocess.call([str(python), "-m", "pytest", *argv[1:]], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
