"""The kit documents itself: fixture contracts, and what every test proves and how to fix it."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import loom_core.testing
from loom_core.testing.base import ConformanceSuite

SUITE_MODULES = ["cipher", "index", "llm", "pii", "secrets", "storage"]


def _suites() -> list[type[ConformanceSuite]]:
    found = []
    for name in SUITE_MODULES:
        module = importlib.import_module(f"loom_core.testing.{name}")
        found += [
            cls
            for cls in vars(module).values()
            if isinstance(cls, type) and issubclass(cls, ConformanceSuite) and cls.__module__ == module.__name__
        ]
    return found


@pytest.mark.parametrize("name", SUITE_MODULES)
def test_suite_module_states_fixture_contract(name: str) -> None:
    """Proves each suite module's docstring has a 'Fixture contract' section for plugin authors."""
    module = importlib.import_module(f"loom_core.testing.{name}")
    assert "Fixture contract" in (module.__doc__ or ""), f"loom_core.testing.{name} lacks a fixture contract"


def test_every_kit_test_says_what_and_how_to_fix() -> None:
    """Proves every test in every suite has a docstring with 'Proves' and 'Fix' (what it shows, how to fix it)."""
    suites = _suites()
    assert len(suites) >= len(SUITE_MODULES)
    missing = [
        f"{cls.__name__}.{name}"
        for cls in [*suites, ConformanceSuite]
        for name, fn in vars(cls).items()
        if name.startswith("test_") and not all(word in (inspect.getdoc(fn) or "") for word in ("Proves", "Fix"))
    ]
    assert not missing, f"kit tests without 'Proves ...' / 'Fix: ...' docstrings: {missing}"


def test_lazy_exports_resolve() -> None:
    """Proves `from loom_core.testing import XSuite` works for every suite it advertises."""
    for name in loom_core.testing.__all__:
        assert getattr(loom_core.testing, name) is not None


def test_plugin_import_is_light() -> None:
    """Proves loading the pytest plugin imports neither numpy nor fastapi (it loads in every pytest run)."""
    code = (
        "import sys, loom_core.testing.pytest_plugin, loom_core.testing;"
        "print(sorted(m for m in ('numpy', 'fastapi', 'uvicorn', 'cryptography') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
