"""Assemble what the server does with a chat model: the PII gate, the cost alert, consolidation.

Everything here is checked when the server starts, so a setting the operator relies on cannot
be silently inert: a broken ``[pii]`` section, a cost limit without its Telegram variables, or
``[consolidation] enabled`` on a backend that cannot chat all refuse start-up with their code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.consolidate import ConsolidationReport, Consolidator
from loom_core.memory.cost_alert import DailyCostAlert, notifier_from_env
from loom_core.memory.llm_gate import ChatGate, UsageListener, build_pii_filter


@dataclass
class LLMServices:
    """The running pieces; ``consolidator`` is None when the LLM backend offers no chat."""

    consolidator: Consolidator | None
    cost_alert: DailyCostAlert | None
    pii_enabled: bool
    _stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def watch_costs(self, llm: Any, every_seconds: float = 60.0) -> None:
        """Feed the alert the backend's totals every ``every_seconds`` too: embeddings made for
        ingest and search cost money without passing through the chat gate."""
        alert = self.cost_alert
        if alert is None or self._watcher is not None:
            return

        def loop() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    alert(llm.usage())
                except Exception as exc:  # a usage read failing must not end the watch
                    logging.getLogger("loom.alerts").warning("cost check failed: %s", type(exc).__name__)

        self._watcher = threading.Thread(target=loop, name="loom-cost-watch", daemon=True)
        self._watcher.start()

    def usage(self, llm: Any) -> dict[str, Any]:
        """Token and cost totals of the backend, what the gate filtered, and today's spend."""
        from dataclasses import asdict

        body: dict[str, Any] = {
            "backend": getattr(llm, "name", None),
            "chat": self.consolidator is not None,
            "pii_filter": self.pii_enabled,
            "usage": asdict(llm.usage()),
            "gate": self.consolidator.gate.stats.to_dict() if self.consolidator is not None else None,
            "cost_alert": self.cost_alert.to_dict() if self.cost_alert is not None else None,
        }
        return body

    def require_consolidator(self) -> Consolidator:
        if self.consolidator is None:
            raise LoomError(
                ErrorCode.LLM_CAPABILITY_MISSING,
                "consolidation needs an LLM backend that can chat, and the configured one only embeds; "
                'set [llm] backend = "openai" (or another chat backend) and restart',
            )
        return self.consolidator

    def close(self) -> None:
        self._stop.set()
        if self.consolidator is not None:
            self.consolidator.stop()
        if self._watcher is not None:
            self._watcher.join(timeout=10)


def check_llm_settings(config: Any, host: Any, environ: Mapping[str, str]) -> None:
    """Refuse settings that cannot work before any data is touched (``loom serve`` exits 1):
    ``[consolidation] enabled`` on a backend that declares no chat, a ``[pii]`` section its filter
    refuses, a cost limit without its Telegram variables."""
    if config.consolidation.enabled and "chat" not in host.backend("llm", config.llm.backend).capabilities:
        raise _no_chat(config)
    pii = build_pii_filter(config, host)
    if pii is not None and hasattr(pii, "close"):
        pii.close()
    notifier_from_env(config.alerts, environ)


def _no_chat(config: Any) -> LoomError:
    return LoomError(
        ErrorCode.LLM_CAPABILITY_MISSING,
        f"[consolidation] enabled needs an LLM backend that can chat; {config.llm.backend!r} only embeds. "
        'Set [llm] backend = "openai" (or another chat backend), or turn consolidation off',
    )


def open_llm_services(
    engine: Any,
    config: Any,
    host: Any,
    environ: Mapping[str, str],
    *,
    on_report: Callable[[ConsolidationReport], None] | None = None,
) -> LLMServices:
    """Build and check the gate, alert and consolidator for ``engine``; start the dream loop if asked."""
    pii = build_pii_filter(config, host)  # built even without chat: a broken [pii] section is found now
    send = notifier_from_env(config.alerts, environ)
    alert = DailyCostAlert(config.alerts.daily_cost_limit_usd, send.send) if send is not None else None
    chat = "chat" in getattr(engine.llm, "capabilities", ())
    if not chat:
        if config.consolidation.enabled:
            raise _no_chat(config)
        services = LLMServices(consolidator=None, cost_alert=alert, pii_enabled=pii is not None)
        services.watch_costs(engine.llm)
        return services
    listeners: list[UsageListener] = [alert] if alert is not None else []
    gate = ChatGate(engine.llm, pii, listeners=listeners)
    consolidator = Consolidator(engine, gate, config.consolidation, on_report=on_report)
    if config.consolidation.enabled:
        consolidator.start(config.consolidation.interval_seconds)
    services = LLMServices(consolidator=consolidator, cost_alert=alert, pii_enabled=pii is not None)
    services.watch_costs(engine.llm)
    return services
