"""Request-scoped access to the running engine, shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Depends, Request
from pydantic import BeforeValidator

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.rows import MAX_TIME_MS
from loom_core.server.schemas import NoOptions, no_null, parse_time


async def get_engine(request: Request) -> MemoryEngine:
    """The open engine; ``STORAGE_CLOSED`` (503) while starting or shutting down."""
    engine: MemoryEngine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise LoomError(ErrorCode.STORAGE_CLOSED, "the memory engine is not open (server starting or stopping)")
    return engine


EngineDep = Annotated[MemoryEngine, Depends(get_engine)]

#: The optional body of an admin POST that takes no options (none, or ``{}`` as JSON).
NoOptionsBody = Annotated[
    NoOptions | None,
    BeforeValidator(no_null),
    Body(description="takes no options: send no body, or `{}` (any field, `null`, an array or a "
                     "non-JSON body is 422)"),
]


def time_param(value: str | None, name: str) -> int | None:
    """A query-string time: integer milliseconds or ISO-8601 (UTC when zone-less)."""
    if value is None or value == "":
        return None
    try:
        millis: int = parse_time(value)
        if not 0 <= millis <= MAX_TIME_MS:
            raise ValueError(f"must be between 0 and {MAX_TIME_MS} ms (the end of year 9999)")
    except ValueError as exc:
        field = f"query.{name}"
        # the same shape as a body's validation errors
        raise LoomError(ErrorCode.VALIDATION_FAILED, f"{field}: {exc}", details={
            "errors": [{"field": field, "message": str(exc), "type": "value_error"}],
        }) from None
    return millis
