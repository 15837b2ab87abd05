#!/usr/bin/env python3
"""Set up Loom in ./.venv and run it: ``python3 dev.py serve`` or ``python3 dev.py test``.

Needs only Python 3.11+ and pip. Set-up installs the kernel and every plugin
under ``plugins/`` (editable) and is skipped while no ``pyproject.toml``
changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LOOM_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".loom-installed"


def plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def install_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in [ROOT / "pyproject.toml", *(d / "pyproject.toml" for d in plugin_dirs())]:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def setup() -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(*install_command())
    STAMP.write_text(fingerprint)


def install_command() -> list[str | Path]:
    """One pip call installing the kernel (with dev tools) and every plugin, editable."""
    editables: list[str | Path] = ["-e", f"{ROOT}[dev]"]
    for d in plugin_dirs():
        editables += ["-e", d]
    return [PY, "-m", "pip", "install", "--quiet", *editables]


def step_status(tool: str, code: int) -> int:
    """Exit status of a test step; pytest's 5 (no tests collected) is a failure, not a pass."""
    if tool == "pytest" and code == 5:
        print("error: no tests were collected", file=sys.stderr)
        return 1
    return code


def test(extra: list[str]) -> int:
    setup()
    steps: list[tuple[str, list[str | Path]]] = [
        ("ruff", [BIN / "ruff", "check", "."]),
        ("mypy", [BIN / "mypy", "--strict", "loom_core"]),
        ("pytest", [PY, "-m", "pytest", "-q", *extra]),
    ]
    for tool, step in steps:
        print("+", " ".join(str(c) for c in step), flush=True)
        code = step_status(tool, subprocess.run([str(c) for c in step], cwd=ROOT).returncode)
        if code != 0:
            return code
    return 0


def serve(extra: list[str]) -> int:
    setup()
    return subprocess.run([str(BIN / "loom"), "serve", *extra], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"setup", "test", "serve"}:
        print(__doc__)
        print("usage: python3 dev.py {setup|test|serve} [args...]", file=sys.stderr)
        return 2
    command, extra = argv[0], argv[1:]
    if command == "setup":
        setup()
        return 0
    return test(extra) if command == "test" else serve(extra)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
