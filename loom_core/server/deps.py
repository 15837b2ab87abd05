"""Request-scoped access to the running engine, shared by every router."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine


async def get_engine(request: Request) -> MemoryEngine:
    """The open engine; ``STORAGE_CLOSED`` (503) while starting or shutting down."""
    engine: MemoryEngine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise LoomError(ErrorCode.STORAGE_CLOSED, "the memory engine is not open (server starting or stopping)")
    return engine


EngineDep = Annotated[MemoryEngine, Depends(get_engine)]


def time_param(value: str | None, name: str) -> int | None:
    """A query-string time: integer milliseconds or ISO-8601 (UTC when zone-less)."""
    if value is None or value == "":
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LoomError(
            ErrorCode.VALIDATION_FAILED,
            f"query.{name}: expected integer milliseconds or an ISO-8601 time, got {value[:40]!r}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
