"""Loom secrets: provider resolution and redaction of resolved values.

Submodules are imported on first use so that resolving a server setting does
not load the redaction matcher (and numpy).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Redactor": "loom_core.secrets.redaction",
    "StreamRedactor": "loom_core.secrets.redaction",
    "forms_from_hook": "loom_core.secrets.redaction",
    "ProviderPool": "loom_core.secrets.providers",
    "resolve_reference": "loom_core.secrets.providers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'loom_core.secrets' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
