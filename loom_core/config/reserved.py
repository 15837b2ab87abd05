"""Settings that are accepted but do nothing yet, and how to tell an operator so.

``[pii]``, ``[alerts]`` and the hosted-LLM settings are part of the
configuration format (a file written for a later release must still load), but no code reads
them in this one. An operator who turns PII filtering on or sets a cost limit believes something
protects them: silence would be the wrong answer, so ``loom serve`` and ``loom config check`` say it.
"""

from __future__ import annotations

from loom_core.config.model import LoomConfig


def reserved_in_use(config: LoomConfig) -> list[str]:
    """One sentence per reserved setting this configuration turns on or changes from its default."""
    notes: list[str] = []
    defaults = LoomConfig()
    if config.pii.enabled or config.pii.blocklist:
        notes.append(
            "[pii] is set, but this release makes no LLM calls, so nothing is filtered: the settings "
            "are kept for LLM consolidation and extraction"
        )
    if config.alerts.daily_cost_limit_usd:
        notes.append("[alerts] daily_cost_limit_usd is set, but cost alerts are not part of this release")
    changed = [
        key
        for key in ("model", "embedding_model", "base_url", "timeout_seconds")
        if getattr(config.llm, key) != getattr(defaults.llm, key)
    ]
    if changed and config.llm.backend == defaults.llm.backend:
        notes.append(
            f"llm.{', llm.'.join(changed)} set, but the built-in {defaults.llm.backend!r} embedder reads no such "
            "setting (they are for hosted LLM backends)"
        )
    return notes
