"""Settings that are inert with this configuration are named at start-up, and only those."""

from __future__ import annotations

from loom_core.config import LoomConfig
from loom_core.config.reserved import reserved_in_use


def test_pii_and_cost_limits_are_inert_without_a_chat_backend_and_said_so() -> None:
    config = LoomConfig.model_validate({"pii": {"enabled": True}, "alerts": {"daily_cost_limit_usd": 2.0}})
    notes = reserved_in_use(config)
    assert any(n.startswith("[pii] is set") for n in notes)
    assert any(n.startswith("[alerts] daily_cost_limit_usd is set") for n in notes)


def test_with_a_hosted_backend_they_work_and_nothing_is_said() -> None:
    config = LoomConfig.model_validate({
        "llm": {"backend": "openai", "model": "gpt-4.1-mini"},
        "pii": {"enabled": True, "blocklist": ["Nightjar"]},
        "alerts": {"daily_cost_limit_usd": 2.0},
        "server": {"public_url": "https://memory.example.com"},
    })
    assert reserved_in_use(config) == []
