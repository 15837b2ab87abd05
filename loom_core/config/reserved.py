"""Settings that do nothing with this configuration, and how to tell an operator so.

``[pii]`` filters what is sent to a chat model and ``[alerts]`` watches what a hosted model
costs; the hosted-LLM settings configure a hosted backend. With the built-in ``hash`` embedder
no chat call is made and nothing costs money, so those settings are inert. An operator who turns
PII filtering on believes something is filtered: silence would be the wrong answer, so
``loom serve`` and ``loom config check`` say it.
"""

from __future__ import annotations

from loom_core.config.model import LoomConfig


def reserved_in_use(config: LoomConfig) -> list[str]:
    """One sentence per reserved setting this configuration turns on or changes from its default."""
    notes: list[str] = []
    defaults = LoomConfig()
    if (config.pii.enabled or config.pii.blocklist) and config.llm.backend == defaults.llm.backend:
        notes.append(
            f"[pii] is set, but the {defaults.llm.backend!r} LLM backend makes no chat calls, so nothing is "
            "filtered: PII filtering applies to what consolidation sends to a chat backend (e.g. \"openai\")"
        )
    if config.alerts.daily_cost_limit_usd and config.llm.backend == defaults.llm.backend:
        notes.append(
            f"[alerts] daily_cost_limit_usd is set, but the {defaults.llm.backend!r} LLM backend costs nothing, "
            "so no alert can fire"
        )
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
