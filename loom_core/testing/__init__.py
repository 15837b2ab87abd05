"""Loom's conformance kit: one suite per backend kind, shipped with the kernel.

A plugin's tests subclass a suite and provide the one fixture its docstring
names::

    from loom_core.testing.secrets import SecretsProviderSuite

    class TestMyProvider(SecretsProviderSuite):
        capabilities = frozenset()

        @pytest.fixture
        def secret_store(self, tmp_path): ...

The ``loom`` pytest plugin (:mod:`loom_core.testing.pytest_plugin`) is
registered through the ``pytest11`` entry point and enforces the tiers.
Suites are imported lazily so ``import loom_core.testing`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from loom_core.testing.base import ConformanceSuite, core, expected_failure, requires

_LAZY = {
    "CipherSuite": "loom_core.testing.cipher",
    "IndexSuite": "loom_core.testing.index",
    "StorageSuite": "loom_core.testing.storage",
    "PIIFilterSuite": "loom_core.testing.pii",
    "LLMSuite": "loom_core.testing.llm",
    "SecretsProviderSuite": "loom_core.testing.secrets",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loom_core.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["ConformanceSuite", "core", "expected_failure", "requires", *sorted(_LAZY)]
