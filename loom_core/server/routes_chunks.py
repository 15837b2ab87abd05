"""Chunk and stream routes: add (one or a batch), read, history, list, delete.

Handlers are plain functions, so FastAPI runs the (blocking) engine calls in
its threadpool; they translate between the API's JSON and the engine's
dataclasses and do nothing else. Deletes are audit events, and so is stored input that
looks like markup or instructions to a model (``loom_core.memory.suspicious``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from loom_core.memory import suspicious
from loom_core.memory.models import ChunkInput
from loom_core.server.auth import audit, audited, require_auth
from loom_core.server.deps import ChunkIdPath, EngineDep, StreamPath
from loom_core.server.schemas import (
    BODY_ERRORS,
    COMMON_ERRORS,
    CURSOR_PATTERN,
    LLM_ERRORS,
    BatchIn,
    ChunkHistory,
    ChunkIn,
    ChunkOut,
    ChunkPage,
    Deleted,
    Level,
    StreamList,
    error_responses,
    to_millis,
)

router = APIRouter(prefix="/v1", tags=["chunks"], dependencies=[Depends(require_auth)],
                   responses=COMMON_ERRORS)

#: A write: its body, a supersede naming no chunk (404) or an already superseded one (409), the embedder.
WRITE_ERRORS = {**BODY_ERRORS, **LLM_ERRORS, **error_responses(
    404, 409, said={404: "`supersedes` names no chunk (NOT_FOUND)",
                    409: "`supersedes` names a chunk that is already superseded (CONFLICT)"})}
#: Reading or deleting one record by id: an id over 128 characters (422), no such record (404).
BY_ID_ERRORS = error_responses(404, 422)


def to_input(item: ChunkIn) -> ChunkInput:
    return ChunkInput(content=item.content, level=item.level, metadata=item.metadata,
                      supersedes=item.supersedes, expires_at=to_millis(item.expires_at))


@router.post("/streams/{stream}/chunks", status_code=201, response_model=ChunkOut,
             responses=WRITE_ERRORS, summary="Add one chunk (201 with the chunk)")
def add_chunk(stream: StreamPath, body: ChunkIn, request: Request, engine: EngineDep) -> JSONResponse:
    chunk = engine.add_chunk(stream, to_input(body))
    flag_suspicious(request, stream, [(chunk.id, body.content)])
    return JSONResponse(chunk.to_dict(), status_code=201)


@router.post("/streams/{stream}/chunks/batch", status_code=201, response_model=list[ChunkOut],
             responses=WRITE_ERRORS, summary="Add many chunks atomically (201 with the list)")
def add_chunks(stream: StreamPath, body: BatchIn, request: Request, engine: EngineDep) -> JSONResponse:
    chunks = engine.add_chunks(stream, [to_input(item) for item in body.chunks])
    flag_suspicious(request, stream, [(c.id, item.content) for c, item in zip(chunks, body.chunks)])
    return JSONResponse([c.to_dict() for c in chunks], status_code=201)


def flag_suspicious(request: Request, stream: str, stored: list[tuple[str, str]]) -> None:
    """Audit stored chunks that look like markup or model instructions; they are kept as sent."""
    for chunk_id, content in stored:
        found = suspicious.findings(content)
        if found:
            audit(request, "chunk.suspicious", chunk_id, outcome="accepted", stream=stream, findings=found)


@router.get("/chunks/{chunk_id}", response_model=ChunkOut, responses=BY_ID_ERRORS,
            summary="Read a chunk (superseded ones too)")
def get_chunk(chunk_id: ChunkIdPath, engine: EngineDep) -> JSONResponse:
    return JSONResponse(engine.get_chunk(chunk_id).to_dict())


@router.get("/chunks/{chunk_id}/history", response_model=ChunkHistory, responses=BY_ID_ERRORS,
            summary="The supersede chain the chunk belongs to, oldest first")
def chunk_history(chunk_id: ChunkIdPath, engine: EngineDep) -> JSONResponse:
    return JSONResponse({"chunks": [c.to_dict() for c in engine.history(chunk_id)]})


@router.delete("/chunks/{chunk_id}", response_model=Deleted, responses=BY_ID_ERRORS,
               summary="Delete a chunk from storage, index and vectors")
def delete_chunk(chunk_id: ChunkIdPath, request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "chunk.delete", chunk_id):
        engine.delete_chunk(chunk_id)
    return JSONResponse({"deleted": chunk_id, "count": 1})


@router.get("/streams", response_model=StreamList, tags=["streams"], summary="Every stream with counts")
def list_streams(engine: EngineDep) -> JSONResponse:
    return JSONResponse({"streams": [s.to_dict() for s in engine.list_streams()]})


@router.get("/streams/{stream}/chunks", response_model=ChunkPage, tags=["streams"],
            responses=error_responses(422),
            summary="One page of a stream's chunks in creation order")
def list_chunks(
    stream: StreamPath,
    engine: EngineDep,
    level: Annotated[Level | None, Query()] = None,
    cursor: Annotated[str | None, Query(
        max_length=512, description="the previous page's `next_cursor` (a chunk id); empty for the first page",
        json_schema_extra={"pattern": CURSOR_PATTERN})] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    page = engine.list_chunks(stream, level=level, cursor=cursor or None, limit=limit)
    return JSONResponse({"chunks": [c.to_dict() for c in page.items], "next_cursor": page.next_cursor})


@router.delete("/streams/{stream}", response_model=Deleted, tags=["streams"], responses=BY_ID_ERRORS,
               summary="Delete a stream: every chunk, entity and relation in it")
def delete_stream(stream: StreamPath, request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "stream.delete", stream) as facts:
        count = engine.delete_stream(stream)
        facts["count"] = count
    return JSONResponse({"deleted": stream, "count": count})

