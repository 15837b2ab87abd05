"""Request and response shapes of the REST API (pydantic).

Request models forbid unknown fields, so a typo such as ``levle`` is a 422
naming the field rather than a silently ignored option, and take integers and
booleans only as JSON integers and booleans (``"k": true`` is not 1). Times are accepted
as ISO-8601 strings (a zone-less time is UTC) or integer milliseconds since
the Unix epoch, and always returned as integer milliseconds. Response models
document the answers in the OpenAPI schema; handlers return the engine's
plain dictionaries in exactly these shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool

from loom_core.memory.rows import MAX_LEVEL, MAX_NAME, MAX_TIME_MS

MAX_BATCH = 10_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_millis(value: int | None) -> int | None:
    """Times are already milliseconds after validation; kept so handlers read uniformly."""
    return value


def parse_time(value: Any) -> Any:
    """ISO-8601 (zone-less = UTC) or integer milliseconds -> milliseconds; one clear error otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected an ISO-8601 time or integer milliseconds since the epoch")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():  # str.isdigit alone accepts "²", which int() refuses
            if len(text) > len(str(MAX_TIME_MS)):  # int() of thousands of digits fails with Python's own text
                raise ValueError(f"milliseconds since the epoch must be at most {MAX_TIME_MS} (year 9999)")
            return int(text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("expected an ISO-8601 time such as 2026-01-31T12:00:00Z "
                             "or integer milliseconds since the epoch") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MILLISECOND  # exact; float timestamp() * 1000 can be 1 ms short
    raise ValueError("expected an ISO-8601 time or integer milliseconds since the epoch")


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Timestamp = Annotated[
    int,
    BeforeValidator(parse_time),
    Field(ge=0, le=MAX_TIME_MS,
          description="ISO-8601 time (UTC when no zone is given) or integer milliseconds since the epoch",
          json_schema_extra={"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]}),
]
NonBlank = Annotated[str, AfterValidator(_non_blank)]
#: An entity type, name or alias, or a predicate: the engine's limit, so API, engine and import agree.
Name = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_non_blank)]
#: A chunk level. Lax (``"1"`` parses) for the query string, where every value is text.
Level = Annotated[int, Field(ge=0, le=MAX_LEVEL, description="0 = raw (L0), 1+ = consolidated")]
#: A level in a JSON body: only a JSON integer (``true``, ``"1"`` and ``1.0`` are refused, not read as 1).
BodyLevel = Annotated[Level, Strict()]
#: An integer in a JSON body, taken only as a JSON integer, like :data:`BodyLevel`.
BodyInt = Annotated[int, Strict()]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChunkIn(Request):
    """One memory to add to a stream."""

    content: NonBlank = Field(max_length=1_000_000)
    level: BodyLevel = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    supersedes: str | None = Field(default=None, min_length=1, description="id of the chunk this one replaces")
    expires_at: Timestamp | None = None


class BatchIn(Request):
    """Many memories for one stream, written together."""

    chunks: list[ChunkIn] = Field(min_length=1, max_length=MAX_BATCH)


class SearchIn(Request):
    """A hybrid (BM25 + vector), BM25-only or vector-only search."""

    query: NonBlank = Field(max_length=10_000)
    stream: str | None = Field(default=None, min_length=1)
    streams: list[Annotated[str, Field(min_length=1)]] | None = None
    k: BodyInt | None = Field(default=None, ge=1, le=1000, description="defaults to search.default_k")
    levels: list[BodyLevel] | None = None
    mode: Literal["hybrid", "bm25", "vector"] | None = Field(
        default=None, description="defaults to search.default_mode"
    )
    include_superseded: StrictBool = False
    since: Timestamp | None = Field(default=None, description="inclusive, on created_at")
    until: Timestamp | None = Field(default=None, description="exclusive, on created_at")


class EntityIn(Request):
    """An entity of a stream's graph."""

    type: Name
    name: Name
    aliases: list[Name] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class RelationIn(Request):
    """``subject --predicate--> object`` between two entity ids of the stream."""

    subject: NonBlank
    predicate: Name
    object: NonBlank
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    source_chunks: list[NonBlank] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class NoOptions(Request):
    """The body of an admin POST that takes no options: none, or ``{}``. Any field is refused, so
    a client's misspelt or imagined option is a 422, not silently ignored."""


def no_null(value: Any) -> Any:
    """Refuse a JSON ``null`` body (an absent body is fine): it is not an empty object."""
    if value is None:
        raise ValueError("send no body or an empty JSON object {}")
    return value


# -- responses ---------------------------------------------------------------


class ChunkOut(BaseModel):
    id: str
    stream: str
    level: int
    content: str
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    supersedes: str | None
    superseded_by: str | None
    expires_at: int | None
    access_count: int
    last_accessed_at: int | None


class ChunkPage(BaseModel):
    chunks: list[ChunkOut]
    next_cursor: str | None = Field(description="pass back as `cursor` for the next page; null on the last")


class ChunkHistory(BaseModel):
    chunks: list[ChunkOut] = Field(description="the supersede chain, oldest first")


class StreamOut(BaseModel):
    name: str
    chunk_count: int
    current_count: int
    levels: dict[str, int]
    last_write_at: int | None
    entity_count: int = Field(description="entities of the stream's graph (a stream may hold only entities)")


class StreamList(BaseModel):
    streams: list[StreamOut]


class Deleted(BaseModel):
    deleted: str
    count: int = Field(default=1, description="records removed")


class BackupOut(BaseModel):
    path: str = Field(description="the new backup directory on the server's filesystem")
    manifest: dict[str, Any] = Field(description="format, version, created_at, chunks, streams, ...")


class Scores(BaseModel):
    bm25: float | None
    vector: float | None
    recency: float
    fused: float


class SearchHit(BaseModel):
    chunk: ChunkOut
    score: float
    scores: Scores


class SearchOut(BaseModel):
    results: list[SearchHit]


class EntityOut(BaseModel):
    id: str
    stream: str
    type: str
    name: str
    aliases: list[str]
    metadata: dict[str, Any]
    created_at: int
    updated_at: int


class EntityList(BaseModel):
    entities: list[EntityOut]


class RelationOut(BaseModel):
    id: str
    stream: str
    subject: str
    predicate: str
    object: str
    valid_from: int | None
    valid_to: int | None
    source_chunks: list[str]
    metadata: dict[str, Any]
    created_at: int


class RelationList(BaseModel):
    relations: list[RelationOut]


class Health(BaseModel):
    status: Literal["ok", "starting"]
    version: str
    auth: Literal["bearer", "passthrough"]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


#: Documented error answers shared by every authenticated route.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong Bearer key (AUTH_REQUIRED / AUTH_INVALID)"},
    413: {"model": ErrorOut, "description": "body over server.max_body_bytes (PAYLOAD_TOO_LARGE)"},
    422: {"model": ErrorOut, "description": "a field is missing or invalid (VALIDATION_FAILED)"},
}
NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such chunk, stream or entity (NOT_FOUND)"},
}
