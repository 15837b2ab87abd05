"""``dev.py`` (the README's commands and CI's entry) fails closed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loom_dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_tests_collected_fails_the_run() -> None:
    """pytest's exit 5 (nothing collected) must become a failure, other codes pass through."""
    dev = load_dev()
    assert dev.step_status("pytest", 5) == 1
    assert dev.step_status("pytest", 0) == 0
    assert dev.step_status("pytest", 1) == 1
    assert dev.step_status("ruff", 5) == 5


def test_older_python_is_refused_in_one_line() -> None:
    """Below 3.11 dev.py stops with one line naming the need and the interpreter found."""
    dev = load_dev()
    assert dev.interpreter_error((3, 11, 0), "python3") is None
    assert dev.interpreter_error((3, 13, 1), "python3") is None
    message = dev.interpreter_error((3, 10, 13), "/usr/bin/python3.10")
    assert message is not None and "\n" not in message
    assert "3.11" in message and "3.10.13" in message and "/usr/bin/python3.10" in message


def test_venv_of_an_older_python_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set-up keeps a venv only if its interpreter runs and is at least 3.11."""
    dev = load_dev()
    monkeypatch.setattr(dev, "PY", Path(sys.executable))
    assert dev.venv_usable()
    monkeypatch.setattr(dev, "MIN_PYTHON", (sys.version_info.major + 1, 0))
    assert not dev.venv_usable()
    monkeypatch.setattr(dev, "PY", tmp_path / "missing" / "python")
    assert not dev.venv_usable()


def test_every_plugin_directory_is_installed() -> None:
    """Set-up's pip call installs the kernel and every ``plugins/*/`` distribution, editable."""
    dev = load_dev()
    command = [str(part) for part in dev.install_command()]
    editables = {command[i + 1] for i, part in enumerate(command) if part == "-e"}
    assert f"{ROOT}[dev]" in editables
    for pyproject in (ROOT / "plugins").glob("*/pyproject.toml"):
        assert str(pyproject.parent) in editables, f"{pyproject.parent.name} would not be installed"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run executes the command the README gives for running every test."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 dev.py test" in readme
    assert "exec python3 dev.py test" in ci
