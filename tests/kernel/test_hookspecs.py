"""Every hook is documented and exercised by a test (datasette-style guard)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from loom_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("loom_"))


def test_there_are_hooks() -> None:
    """The guard below is not vacuous."""
    assert "loom_register_backends" in HOOKS and len(HOOKS) >= 5


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name: str) -> None:
    """Each hook says what it is for, documents every parameter, and says when it is called."""
    hook = getattr(hookspecs, name)
    doc = inspect.getdoc(hook) or ""
    assert doc, f"{name} has no docstring"
    for param in inspect.signature(hook).parameters:
        assert f":param {param}:" in doc, f"{name}: parameter {param!r} is not documented"
    assert "Called" in doc, f"{name}: say when the hook is called"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_exercised_by_a_test(name: str) -> None:
    """Each hook is implemented or called in some test other than this guard."""
    this = Path(__file__).resolve()
    files = [p for p in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")] if p != this]
    assert any(name in p.read_text(encoding="utf-8") for p in files), f"no test exercises {name}"
