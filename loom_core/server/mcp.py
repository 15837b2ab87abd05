"""MCP on ``/mcp``: the memory tools of the REST API for MCP clients (official ``mcp`` SDK, 2.x).

The transport is streamable HTTP, stateless, with JSON responses: every
JSON-RPC message is one ``POST /mcp`` answered with one JSON body, so no
session lives in the server (a restart or a second worker loses nothing) and
the request passes the same middleware as the REST API: head-size limit, the
Bearer gate (``/mcp`` is not an open path) and the body-size limit.

Tools call the engine the REST routes call, validate their arguments with the
REST API's request models (strict integers and booleans, the same limits),
audit deletes like the REST deletes and flag suspicious input like the REST
writes. A failure is an MCP tool error whose text is the REST API's error body
``{"error": {"code", "message", "details"?}}``: the stable Loom code, never a
traceback, never submitted content.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import Field, StrictBool, ValidationError
from starlette.requests import Request

from loom_core import __version__
from loom_core.errors import CATALOGUE, ErrorCode, LoomError, raised_at
from loom_core.memory.models import ChunkInput
from loom_core.server.auth import audited
from loom_core.server.errors import describe_validation_errors, error_body, status_for
from loom_core.server.limits import Receive, Scope, Send
from loom_core.server.routes_chunks import flag_suspicious, to_input
from loom_core.server.routes_consolidation import get_services
from loom_core.server.routes_search import search_hit, to_search_request
from loom_core.server.schemas import (
    MAX_BATCH,
    BatchIn,
    BodyInt,
    BodyLevel,
    ChunkIn,
    EntityIn,
    Name,
    NonBlank,
    RelationIn,
    SearchIn,
    Timestamp,
    to_millis,
)

if TYPE_CHECKING:
    from loom_core.memory.engine import MemoryEngine

log = logging.getLogger("loom.server.mcp")

MCP_PATH = "/mcp"

StreamName = Annotated[str, Field(min_length=1, max_length=256, description="the memory namespace")]
RecordId = Annotated[str, Field(min_length=1, max_length=128)]
Filter = Annotated[str | None, Field(min_length=1, max_length=1000)]
Metadata = Annotated[dict[str, Any] | None, Field(description="a JSON object (default {})")]
Time = Annotated[Timestamp | None, Field(description="ISO-8601 (UTC when zone-less) or ms since the epoch")]

_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
_DELETE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)


class LoomMCP(MCPServer[Any]):
    """``MCPServer`` whose tool failures carry Loom's error body and whose tools refuse
    arguments they do not take (the REST API's request models forbid unknown fields)."""

    def __init__(self) -> None:
        with _sdk_logging_left_alone():
            super().__init__(
                name="loomem",
                title="Loomem",
                version=__version__,
                instructions="Long-term memory: remember chunks in streams, search them, keep an entity graph.",
            )
        self.accepted: dict[str, frozenset[str]] = {}

    def register(self, fn: Callable[..., Any], annotations: ToolAnnotations) -> None:
        """Add ``fn`` as a tool named after it, its docstring as the description."""
        names = frozenset(p for p in inspect.signature(fn).parameters if p != "ctx")
        self.accepted[fn.__name__] = names
        self.add_tool(fn, annotations=annotations, description=inspect.getdoc(fn))

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        accepted = self.accepted.get(name)
        unknown = sorted(set(arguments) - accepted) if accepted is not None else []
        if unknown:
            items = [{"field": key, "message": "Extra inputs are not permitted", "type": "extra_forbidden"}
                     for key in unknown]
            return error_result(LoomError(
                ErrorCode.VALIDATION_FAILED, "; ".join(f"{i['field']}: {i['message']}" for i in items),
                details={"errors": items}), name)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            return error_result(as_loom_error(exc, name), name)


def as_loom_error(exc: ToolError, tool: str) -> LoomError:
    """The Loom error behind a tool failure, without input values or internals."""
    cause = exc.__cause__
    if isinstance(cause, LoomError):
        return cause
    if isinstance(cause, ValidationError):  # the arguments, or a REST model inside the tool
        message, items = describe_validation_errors(cause.errors(include_input=False))
        return LoomError(ErrorCode.VALIDATION_FAILED, message, details={"errors": items})
    if cause is None and not isinstance(exc, UnexpectedToolError):  # the SDK's own: an unknown tool
        return LoomError(ErrorCode.NOT_FOUND, f"no tool named {tool!r}; tools/list names them")
    failed = cause if cause is not None else exc
    log.error("MCP tool %s failed with %s%s", tool, type(failed).__name__, raised_at(failed))
    return LoomError(ErrorCode.INTERNAL_ERROR, f"internal error in tool {tool} (details in the server log)")


def error_result(error: LoomError, tool: str) -> CallToolResult:
    """An ``is_error`` result holding the REST API's error body as JSON text."""
    if status_for(error.code) >= 500 and error.code is not ErrorCode.INTERNAL_ERROR:
        log.error("MCP tool %s failed: %s: %s", tool, error.code.value, error.message)
        error = LoomError(error.code, f"{CATALOGUE[error.code][0]} (details in the server log)")
    body = error_body(error.code, error.message, error.details)
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body))], is_error=True)


@contextmanager
def _sdk_logging_left_alone() -> Iterator[None]:
    """``MCPServer()`` calls ``logging.basicConfig``, which gives an unconfigured root logger a
    stderr handler: an embedding application's logging is not the SDK's to set up."""
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)


# -- request context -------------------------------------------------------------------------


def _http_request(ctx: Context[Any]) -> Request:
    request = ctx.request_context.request
    if not isinstance(request, Request):
        raise LoomError(ErrorCode.INTERNAL_ERROR, "an MCP tool ran outside an HTTP request")
    return request


def _engine(request: Request) -> MemoryEngine:
    engine: MemoryEngine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise LoomError(ErrorCode.STORAGE_CLOSED, "the memory engine is not open (server starting or stopping)")
    return engine


# -- tools (sync: the SDK runs them on a worker thread, off the event loop) --------------------


def remember(
    stream: StreamName,
    content: NonBlank,
    ctx: Context[Any],
    level: BodyLevel = 0,
    metadata: Metadata = None,
    supersedes: Annotated[str | None, Field(min_length=1, description="id of the chunk this one replaces")] = None,
    expires_at: Time = None,
) -> dict[str, Any]:
    """Store one memory (a chunk) in a stream; returns the chunk with its id. To update a memory,
    store the new text with `supersedes` set to the old chunk's id: history is kept."""
    body = ChunkIn.model_validate({"content": content, "level": level, "metadata": metadata or {},
                                   "supersedes": supersedes, "expires_at": expires_at})
    request = _http_request(ctx)
    chunk = _engine(request).add_chunk(stream, to_input(body))
    flag_suspicious(request, stream, [(chunk.id, body.content)])
    return chunk.to_dict()


def remember_many(
    stream: StreamName,
    chunks: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)],
    ctx: Context[Any],
) -> dict[str, Any]:
    """Store many memories in one stream atomically; each item is {content, level?, metadata?,
    supersedes?, expires_at?}. Returns the chunks in order."""
    body = BatchIn.model_validate({"chunks": chunks})
    request = _http_request(ctx)
    items: list[ChunkInput] = [to_input(item) for item in body.chunks]
    stored = _engine(request).add_chunks(stream, items)
    flag_suspicious(request, stream, [(c.id, item.content) for c, item in zip(stored, body.chunks)])
    return {"chunks": [c.to_dict() for c in stored]}


def search(
    query: NonBlank,
    ctx: Context[Any],
    stream: Annotated[str | None, Field(min_length=1)] = None,
    streams: list[Annotated[str, Field(min_length=1)]] | None = None,
    k: Annotated[BodyInt | None, Field(ge=1, le=1000, description="defaults to search.default_k")] = None,
    mode: Literal["hybrid", "bm25", "vector"] | None = None,
    levels: list[BodyLevel] | None = None,
    include_superseded: StrictBool = False,
    since: Time = None,
    until: Time = None,
) -> dict[str, Any]:
    """Search memories, best first, with bm25, vector, recency and fused scores. No stream or
    streams searches every stream; `since` is inclusive and `until` exclusive, on created_at."""
    body = SearchIn.model_validate({
        "query": query, "stream": stream, "streams": streams, "k": k, "mode": mode, "levels": levels,
        "include_superseded": include_superseded, "since": since, "until": until,
    })
    found = _engine(_http_request(ctx)).search(to_search_request(body))
    return {"results": [search_hit(r) for r in found]}


def get_chunk(chunk_id: RecordId, ctx: Context[Any]) -> dict[str, Any]:
    """Read one chunk by id (superseded ones too)."""
    return _engine(_http_request(ctx)).get_chunk(chunk_id).to_dict()


def chunk_history(chunk_id: RecordId, ctx: Context[Any]) -> dict[str, Any]:
    """The supersede chain the chunk belongs to, oldest first."""
    return {"chunks": [c.to_dict() for c in _engine(_http_request(ctx)).history(chunk_id)]}


def forget(chunk_id: RecordId, ctx: Context[Any]) -> dict[str, Any]:
    """Delete one chunk from storage, index and vectors (an audited delete)."""
    request = _http_request(ctx)
    with audited(request, "chunk.delete", chunk_id):
        _engine(request).delete_chunk(chunk_id)
    return {"deleted": chunk_id, "count": 1}


def list_streams(ctx: Context[Any]) -> dict[str, Any]:
    """Every stream with its chunk, level and entity counts."""
    return {"streams": [s.to_dict() for s in _engine(_http_request(ctx)).list_streams()]}


def list_chunks(
    stream: StreamName,
    ctx: Context[Any],
    level: BodyLevel | None = None,
    cursor: Annotated[str | None, Field(max_length=512)] = None,
    limit: Annotated[BodyInt, Field(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """One page of a stream's chunks in creation order; pass next_cursor back as cursor."""
    page = _engine(_http_request(ctx)).list_chunks(stream, level=level, cursor=cursor or None, limit=limit)
    return {"chunks": [c.to_dict() for c in page.items], "next_cursor": page.next_cursor}


def add_entity(
    stream: StreamName,
    type: Name,
    name: Name,
    ctx: Context[Any],
    aliases: list[Name] | None = None,
    metadata: Metadata = None,
) -> dict[str, Any]:
    """Create an entity (type, name, aliases) in a stream's graph."""
    body = EntityIn.model_validate({"type": type, "name": name, "aliases": aliases or [], "metadata": metadata or {}})
    entity = _engine(_http_request(ctx)).add_entity(stream, type=body.type, name=body.name, aliases=body.aliases,
                                                    metadata=body.metadata)
    return entity.to_dict()


def list_entities(stream: StreamName, ctx: Context[Any], type: Filter = None, name: Filter = None) -> dict[str, Any]:
    """Entities of a stream; `name` matches names and aliases case-insensitively."""
    return {"entities": [e.to_dict() for e in _engine(_http_request(ctx)).list_entities(stream, type=type, name=name)]}


def get_entity(entity_id: RecordId, ctx: Context[Any]) -> dict[str, Any]:
    """Read one entity by id."""
    return _engine(_http_request(ctx)).get_entity(entity_id).to_dict()


def forget_entity(entity_id: RecordId, ctx: Context[Any]) -> dict[str, Any]:
    """Delete an entity and every relation that mentions it (an audited delete)."""
    request = _http_request(ctx)
    with audited(request, "entity.delete", entity_id):
        _engine(request).delete_entity(entity_id)
    return {"deleted": entity_id, "count": 1}


def add_relation(
    stream: StreamName,
    subject: NonBlank,
    predicate: Name,
    object: NonBlank,
    ctx: Context[Any],
    valid_from: Time = None,
    valid_to: Time = None,
    source_chunks: list[NonBlank] | None = None,
    metadata: Metadata = None,
) -> dict[str, Any]:
    """Relate two entity ids of the stream: subject --predicate--> object, optionally valid in a time range."""
    body = RelationIn.model_validate({
        "subject": subject, "predicate": predicate, "object": object, "valid_from": valid_from,
        "valid_to": valid_to, "source_chunks": source_chunks or [], "metadata": metadata or {},
    })
    relation = _engine(_http_request(ctx)).add_relation(
        stream, subject=body.subject, predicate=body.predicate, object=body.object,
        valid_from=to_millis(body.valid_from), valid_to=to_millis(body.valid_to),
        source_chunks=body.source_chunks, metadata=body.metadata,
    )
    return relation.to_dict()


def list_relations(
    stream: StreamName,
    ctx: Context[Any],
    entity: Filter = None,
    predicate: Filter = None,
    at: Time = None,
) -> dict[str, Any]:
    """Relations of a stream; filter by entity (either end), predicate, or an instant they are valid at."""
    relations = _engine(_http_request(ctx)).list_relations(stream, entity=entity, predicate=predicate, at=at)
    return {"relations": [r.to_dict() for r in relations]}


def forget_relation(relation_id: RecordId, ctx: Context[Any]) -> dict[str, Any]:
    """Delete one relation (an audited delete)."""
    request = _http_request(ctx)
    with audited(request, "relation.delete", relation_id):
        _engine(request).delete_relation(relation_id)
    return {"deleted": relation_id, "count": 1}


def consolidate(stream: StreamName, ctx: Context[Any]) -> dict[str, Any]:
    """Condense the stream's oldest raw (level 0) notes into level 1 memories and graph facts with
    the LLM (at most consolidation.batch_size per call; `pending` says how many still wait). Needs a
    chat-capable LLM backend; an audited call, like the REST route."""
    request = _http_request(ctx)
    consolidator = get_services(request).require_consolidator()
    with audited(request, "consolidation.run", stream) as facts:
        report = consolidator.consolidate(stream)
        facts.update(raw_chunks=report.raw_chunks, memories=len(report.memories),
                     superseded=len(report.superseded))
    return report.to_dict()


TOOLS: tuple[tuple[Callable[..., Any], ToolAnnotations], ...] = (
    (remember, _WRITE), (remember_many, _WRITE), (search, _READ), (get_chunk, _READ),
    (chunk_history, _READ), (forget, _DELETE), (list_streams, _READ), (list_chunks, _READ),
    (add_entity, _WRITE), (list_entities, _READ), (get_entity, _READ), (forget_entity, _DELETE),
    (add_relation, _WRITE), (list_relations, _READ), (forget_relation, _DELETE), (consolidate, _WRITE),
)


def build_mcp_server() -> LoomMCP:
    """The MCP server with every memory tool registered."""
    server = LoomMCP()
    for fn, hints in TOOLS:
        server.register(fn, hints)
    return server


class MCPEndpoint:
    """The ASGI app at ``/mcp``: hands each request to the running session manager.

    The manager is made anew at each start-up (:meth:`running`), since one can run only once.
    """

    def __init__(self, server: LoomMCP, max_body_bytes: int) -> None:
        self.server = server
        self.max_body_bytes = max_body_bytes

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the session manager for the app's lifetime (entered in the app's lifespan)."""
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=self.max_body_bytes,
            # the Bearer gate already refuses other hosts and origins in passthrough mode; the SDK's own
            # check would refuse every Host but 127.0.0.1/localhost, also behind a reverse proxy
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        async with self.server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.session_manager.handle_request(scope, receive, send)
