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

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    Strict,
    StrictBool,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema

from loom_core.memory.rows import MAX_LEVEL, MAX_NAME, MAX_TIME_MS

MAX_BATCH = 10_000

# -- patterns of the OpenAPI document ---------------------------------------------------
# Written for both ECMA-262 (what OpenAPI tools use) and Python's ``re`` (what jsonschema and
# Python fuzzers use). ``(?![\s\S])`` ends a pattern instead of ``$``: in Python ``$`` also matches
# before a final newline, and ``"notes\n"`` is a name the engine refuses.

#: What :data:`loom_core.memory.rows.STREAM_NAME` accepts.
STREAM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}(?![\s\S])"
MAX_STREAM = 128
#: A record id as the server mints it: a ULID in upper-case Crockford base32.
ID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}(?![\s\S])"
#: A ``next_cursor`` passed back: empty, or a chunk id (ULIDs are case-insensitive there).
CURSOR_PATTERN = r"^(?:[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25})?(?![\s\S])"
#: Python's whitespace (what ``str.strip`` removes), so "not blank" reads the same in the schema.
WHITESPACE_CLASS = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Holds one character that is not whitespace.
NOT_BLANK_PATTERN = f"[^{WHITESPACE_CLASS}]"


class SchemaKeywords:
    """JSON-schema keywords for a check a validator makes: pydantic cannot see into validators,
    so without these the document would allow what the server refuses."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


#: The default of a response field that is left out (never ``null``) when it does not apply: typed
#: ``X | SkipJsonSchema[None]``, it is published as ``X`` and not required.
Omitted = Field(default=None, json_schema_extra=_no_default)


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


#: An ISO-8601 time as the document describes it: a date from 1970 to 9999, optionally a time and
#: a zone (more of ISO-8601 is read, and a time before the epoch in its zone is refused).
ISO_TIME_PATTERN = (
    r"^(?:19[7-9][0-9]|[2-9][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ](?:[01][0-9]|2[0-3])(?::[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]{1,6})?)?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?)?(?![\s\S])"
)
#: Milliseconds written as digits (up to 14: every such value is before the end of year 9999).
MILLIS_PATTERN = r"^[0-9]{1,14}(?![\s\S])"
_TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_TIME_MS},
        {"type": "string", "pattern": ISO_TIME_PATTERN},
        {"type": "string", "pattern": MILLIS_PATTERN, "description": "milliseconds as digits"},
    ],
    "description": "ISO-8601 time (UTC when no zone is given) or integer milliseconds since the epoch, "
                   "up to the end of year 9999",
}
Timestamp = Annotated[
    int,
    BeforeValidator(parse_time),
    Field(ge=0, le=MAX_TIME_MS),
    WithJsonSchema(_TIME_SCHEMA),
]
NonBlank = Annotated[str, AfterValidator(_non_blank), SchemaKeywords(minLength=1, pattern=NOT_BLANK_PATTERN)]
#: An entity type, name or alias, or a predicate: the engine's limit, so API, engine and import agree.
Name = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_non_blank),
                 SchemaKeywords(minLength=1, pattern=NOT_BLANK_PATTERN)]
#: A stream name in a body: the engine refuses other names (422 naming the field), the schema says so.
BodyStream = Annotated[str, Field(min_length=1), SchemaKeywords(maxLength=MAX_STREAM, pattern=STREAM_PATTERN)]
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
    stream: BodyStream | None = None
    streams: list[BodyStream] | None = None
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


class Answer(BaseModel):
    """A response shape. Extra keys are refused, so the published schema says ``additionalProperties:
    false`` and a key a handler starts returning cannot go undocumented (the schema tests fail)."""

    model_config = ConfigDict(extra="forbid")


class ChunkOut(Answer):
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


class ChunkPage(Answer):
    chunks: list[ChunkOut]
    next_cursor: str | None = Field(description="pass back as `cursor` for the next page; null on the last")


class ChunkHistory(Answer):
    chunks: list[ChunkOut] = Field(description="the supersede chain, oldest first")


class StreamOut(Answer):
    name: str
    chunk_count: int
    current_count: int
    levels: dict[str, int]
    last_write_at: int | None
    entity_count: int = Field(description="entities of the stream's graph (a stream may hold only entities)")


class StreamList(Answer):
    streams: list[StreamOut]


class Deleted(Answer):
    deleted: str
    count: int = Field(default=1, description="records removed")


class BackupOut(Answer):
    path: str = Field(description="the new backup directory on the server's filesystem")
    manifest: dict[str, Any] = Field(description="format, version, created_at, chunks, streams, ...")


class RebuildOut(Answer):
    documents: int = Field(description="chunks written to the new full-text index")


class ConsistencyOut(Answer):
    """Counts per layer and the ids on which they differ; ``consistent`` when every list is empty
    and no intent waits."""

    storage: int
    content_rows: int
    index: int
    vectors: int
    missing_in_index: list[str]
    extra_in_index: list[str]
    missing_vectors: list[str]
    extra_vectors: list[str]
    routing_without_content: list[str]
    pending_intents: int
    unreadable_chunks: list[str]
    unreadable_graph: list[str] = Field(description="storage keys of graph rows that do not open")
    consistent: bool


class BackfillError(Answer):
    code: str
    message: str


class BackfillRecord(Answer):
    """The backfill's persisted progress (times in ms). Before any pass only ``state``, ``scanned``,
    ``encrypted`` and ``total`` are there; ``finished_at`` once a pass is done."""

    state: Literal["never", "running", "compacting", "done"]
    scanned: int
    encrypted: int
    total: int | None = Field(description="rows counted when the pass started; null before")
    family: int | SkipJsonSchema[None] = Omitted
    started_at: int | SkipJsonSchema[None] = Omitted
    updated_at: int | SkipJsonSchema[None] = Omitted
    finished_at: int | SkipJsonSchema[None] = Omitted
    running: bool = Field(description="whether this server is running a pass now")


class BackfillStatus(BackfillRecord):
    """The backfill's progress as the status route answers it."""

    percent: float = Field(ge=0, le=100, description="below 100 until the pass is done")
    error: BackfillError | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default,
                                 description="how the last run on this server failed; absent otherwise")


class BackfillStarted(BackfillStatus):
    started: bool = Field(description="false when a pass was already running")


class RotationPending(Answer):
    from_: str | None = Field(alias="from", description="fingerprint of the retiring master key")
    to: str | None = Field(description="fingerprint of the new master key")


class EncryptionStatus(Answer):
    enabled: bool
    cipher: str | None
    fingerprint: str | None = Field(description="one-way digest of the master key in use")
    data_written_encrypted: bool
    expected_fingerprint: str | None = Field(description="the fingerprint the data was written under")
    streams_with_keys: int
    destroyed_keys: int
    rotation_pending: RotationPending | None
    keys_compaction_pending: bool
    backfill: BackfillRecord


class ConsolidationReportOut(Answer):
    """What one consolidation call did: ids and counts, never content."""

    stream: str
    raw_chunks: int = Field(description="raw chunks taken (0: none waited, no model call)")
    memories: list[str] = Field(description="ids of the level-1 chunks written")
    superseded: list[str] = Field(description="ids of the memories the new ones replaced")
    entities_created: int
    entities_matched: int
    relations_created: int
    relations_skipped: int
    through: str | None = Field(description="the stream's mark: the last raw chunk id taken")
    pending: int = Field(description="raw chunks still waiting")


class ConsolidationStatus(Answer):
    stream: str
    through: str | None = Field(description="the last raw chunk id consolidation took; null before the first")
    pending: int | None = Field(description="raw chunks waiting; null when consolidation is not available")
    available: bool = Field(description="whether the LLM backend can chat")


class DreamFailure(Answer):
    stream: str
    code: str = Field(description="the error code of the stream's failed call")


class DreamOut(Answer):
    reports: list[ConsolidationReportOut]
    failures: list[DreamFailure] = Field(description="streams whose call failed; the pass went on")


class UsageTotals(Answer):
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int
    requests: int
    cost_usd: float
    by_model: dict[str, float] = Field(description="cost in USD per model")


class GateStatsOut(Answer):
    calls: int = Field(description="chat calls made through the PII gate")
    pii_redactions: dict[str, int] = Field(description="replacements per kind (counts only)")


class CostAlertOut(Answer):
    day: str | None = Field(description="the UTC day booked (YYYY-MM-DD); null before any cost")
    spent_usd: float
    limit_usd: float
    alerted: bool


class LLMUsageOut(Answer):
    backend: str | None
    chat: bool = Field(description="whether the backend can chat (consolidation available)")
    pii_filter: bool
    usage: UsageTotals
    gate: GateStatsOut | None = Field(description="null without a chat backend")
    cost_alert: CostAlertOut | None = Field(description="null without alerts.daily_cost_limit_usd")


class Scores(Answer):
    bm25: float | None
    vector: float | None
    recency: float
    fused: float


class SearchHit(Answer):
    chunk: ChunkOut
    score: float
    scores: Scores


class SearchOut(Answer):
    results: list[SearchHit]


class EntityOut(Answer):
    id: str
    stream: str
    type: str
    name: str
    aliases: list[str]
    metadata: dict[str, Any]
    created_at: int
    updated_at: int


class EntityList(Answer):
    entities: list[EntityOut]


class RelationOut(Answer):
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


class RelationList(Answer):
    relations: list[RelationOut]


class Health(Answer):
    status: Literal["ok", "starting"]
    version: str
    auth: Literal["bearer", "passthrough"]


class ErrorDetail(Answer):
    code: str = Field(description="stable error code (docs/errors.md)")
    message: str
    details: dict[str, Any] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default,
                                    description="machine-readable; absent when there is nothing to add")


class ErrorOut(Answer):
    error: ErrorDetail


#: What each error status of the API means, with its codes (docs/api.md "Errors").
ERROR_STATUSES: dict[int, str] = {
    400: "the body is not UTF-8 text, e.g. compressed (USAGE_ERROR)",
    401: "missing or wrong Bearer key (AUTH_REQUIRED / AUTH_INVALID)",
    404: "no such record or stream (NOT_FOUND)",
    409: "the request conflicts with the stored state (CONFLICT)",
    413: "body over server.max_body_bytes (PAYLOAD_TOO_LARGE)",
    422: "a field, path or query parameter is missing or invalid (VALIDATION_FAILED, INDEX_QUERY_INVALID)",
    431: "request line and headers over 16 KiB (HEADERS_TOO_LARGE)",
    502: "the LLM provider answered outside its API or the consolidation contract, or refused the "
         "server's key (LLM_BAD_RESPONSE, LLM_AUTH_INVALID, LLM_AUTH_MISSING)",
    503: "the engine is starting or stopping, storage or index is locked, or the LLM provider is "
         "unavailable or rate-limited (STORAGE_CLOSED, STORAGE_LOCKED, INDEX_LOCKED, LLM_UNAVAILABLE, "
         "LLM_RATE_LIMITED, SECRETS_PROVIDER_UNAVAILABLE)",
}


def error_responses(*statuses: int, said: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each with the error body; ``said`` words one
    status for the routes at hand (which codes a 409 carries there, say)."""
    words = {**ERROR_STATUSES, **(said or {})}
    return {status: {"model": ErrorOut, "description": words[status]} for status in statuses}


#: Every authenticated route: the gate, the head limit, and an engine that may be starting or stopping.
COMMON_ERRORS = error_responses(401, 431, 503)
#: A route that reads a JSON body: undecodable (400), too large (413), wrong shape (422).
BODY_ERRORS = error_responses(400, 413, 422)
#: Routes that call the LLM backend (embeddings or chat).
LLM_ERRORS = error_responses(502)
