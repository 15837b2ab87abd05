#!/usr/bin/env python3
"""Set up Loom in ./.venv and run it: ``python3 dev.py serve`` or ``python3 dev.py test``.

Needs only Python 3.11+ and pip. Set-up installs the kernel and every plugin
under ``plugins/`` (editable) and is skipped while no ``pyproject.toml``
changed since the last install. A venv whose Python is older than 3.11 (or no
longer runs) is recreated.
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
MIN_PYTHON = (3, 11)


def interpreter_error(version: tuple[int, ...], executable: str) -> str | None:
    """The one-line refusal for an interpreter older than ``MIN_PYTHON``, or None."""
    if tuple(version[:2]) >= MIN_PYTHON:
        return None
    found = ".".join(str(part) for part in version[:3])
    return f"error: Loom needs Python 3.11 or newer, found Python {found} ({executable})"


def venv_usable() -> bool:
    """Whether the venv's interpreter runs and is new enough (a venv made by an older Python is not)."""
    probe = f"import sys; sys.exit(sys.version_info < {MIN_PYTHON!r})"
    try:
        return subprocess.run([str(PY), "-c", probe], capture_output=True).returncode == 0
    except OSError:
        return False


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
    if not venv_usable():
        stale = (VENV / "pyvenv.cfg").exists()
        if stale:
            print(f"recreating {VENV}: its Python is older than 3.11 or does not run", flush=True)
        venv.EnvBuilder(with_pip=True, clear=stale).create(VENV)
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
    error = interpreter_error(tuple(sys.version_info), sys.executable)
    if error:
        print(error, file=sys.stderr)
        return 2
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
