"""Request-scoped access to the running engine, shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.server.schemas import parse_time


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
    try:
        millis: int = parse_time(value)
    except ValueError as exc:
        raise LoomError(ErrorCode.VALIDATION_FAILED, f"query.{name}: {exc}") from None
    return millis
