"""Audit events: security-relevant facts, logged with ``target: "audit"``.

An event holds who did what to which id and how it ended, never content,
tokens or secret values, so the audit stream can be shipped anywhere.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

AUDIT_LOGGER = "loom.audit"
AUDIT_TARGET = "audit"


@dataclass(frozen=True)
class AuditEvent:
    action: str  # e.g. "auth.failure", "chunk.delete", "admin.backfill"
    outcome: str  # "success" | "failure" | "denied"
    actor: str = "anonymous"
    resource: str | None = None  # an id or stream name, never content
    details: dict[str, Any] = field(default_factory=dict)

    def as_log_fields(self) -> dict[str, Any]:
        return {"target": AUDIT_TARGET, **asdict(self)}


def emit(event: AuditEvent, hook: Any | None = None) -> None:
    """Log ``event`` on the audit logger, then tell plugins through ``hook``."""
    logging.getLogger(AUDIT_LOGGER).info(
        "%s %s", event.action, event.outcome, extra={"audit": event.as_log_fields()}
    )
    if hook is not None:
        try:
            hook.loom_audit_event(event=event)
        except Exception:  # an observer must not break the audited request
            logging.getLogger(AUDIT_LOGGER).exception("audit hook failed for %s", event.action)
