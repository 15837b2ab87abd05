"""Which backends a configuration selects (shared by ``plugins`` and ``config check``)."""

from __future__ import annotations

from loom_core.config import LoomConfig
from loom_core.contracts import Kind


def selected_backends(config: LoomConfig) -> list[tuple[Kind, str]]:
    """The ``(kind, name)`` pairs the server would load with ``config``."""
    chosen = [
        (Kind.STORAGE, config.storage.backend),
        (Kind.INDEX, config.index.backend),
        (Kind.LLM, config.llm.backend),
        (Kind.CIPHER, config.encryption.cipher),
    ]
    if config.pii.enabled:
        chosen.append((Kind.PII, config.pii.backend))
    return chosen
