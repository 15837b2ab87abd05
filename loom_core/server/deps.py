"""Request-scoped access to the running engine, shared by every router."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Path, Request
from pydantic import BeforeValidator

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.rows import MAX_TIME_MS
from loom_core.server.schemas import ID_PATTERN, MAX_STREAM, STREAM_PATTERN, NoOptions, no_null, parse_time

#: ``{stream}``. The engine checks the name (422 naming ``stream`` in ``details.field``, as docs/api.md
#: says); the document carries its pattern and length so clients and fuzzers know them. Names
#: over 256 characters are refused before the engine, so an error never quotes a huge name.
StreamPath = Annotated[str, Path(
    min_length=1, max_length=256,
    description="the memory namespace: 1-128 letters, digits and `. _ : @ -`, starting with a letter or digit",
    json_schema_extra={"maxLength": MAX_STREAM, "pattern": STREAM_PATTERN},
)]


def _record_id(kind: str) -> Any:
    return Path(
        min_length=1, max_length=128,
        description=f"the {kind}'s id: a ULID (26 characters, upper-case Crockford base32) as the server "
                    "returned it; any other value of up to 128 characters names no record (404)",
        json_schema_extra={"pattern": ID_PATTERN, "examples": ["01JD6A8Z0Q3V4W5X6Y7Z8A9B0C"]},
    )


#: ``{chunk_id}``, ``{entity_id}``, ``{relation_id}``: what the server mints. An id of another
#: shape is not refused, it names nothing (404); the pattern tells clients what to expect.
ChunkIdPath = Annotated[str, _record_id("chunk")]
EntityIdPath = Annotated[str, _record_id("entity")]
RelationIdPath = Annotated[str, _record_id("relation")]


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
