"""Chunk and stream routes: add (one or a batch), read, history, list, delete.

Handlers are plain functions, so FastAPI runs the (blocking) engine calls in
its threadpool; they translate between the API's JSON and the engine's
dataclasses and do nothing else. Deletes are audit events, and so is stored input that
looks like markup or instructions to a model (``loom_core.memory.suspicious``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from loom_core.memory import suspicious
from loom_core.memory.models import ChunkInput
from loom_core.server.auth import audit, audited, require_auth
from loom_core.server.deps import EngineDep
from loom_core.server.schemas import (
    ERROR_RESPONSES,
    NOT_FOUND_RESPONSE,
    BatchIn,
    ChunkHistory,
    ChunkIn,
    ChunkOut,
    ChunkPage,
    Deleted,
    Level,
    StreamList,
    to_millis,
)

router = APIRouter(prefix="/v1", tags=["chunks"], dependencies=[Depends(require_auth)],
                   responses=ERROR_RESPONSES)

StreamName = Annotated[str, Path(min_length=1, max_length=256, description="the memory namespace")]
ChunkId = Annotated[str, Path(min_length=1, max_length=128)]


def to_input(item: ChunkIn) -> ChunkInput:
    return ChunkInput(content=item.content, level=item.level, metadata=item.metadata,
                      supersedes=item.supersedes, expires_at=to_millis(item.expires_at))


@router.post("/streams/{stream}/chunks", status_code=201, response_model=ChunkOut,
             responses=NOT_FOUND_RESPONSE, summary="Add one chunk (201 with the chunk)")
def add_chunk(stream: StreamName, body: ChunkIn, request: Request, engine: EngineDep) -> JSONResponse:
    chunk = engine.add_chunk(stream, to_input(body))
    flag_suspicious(request, stream, [(chunk.id, body.content)])
    return JSONResponse(chunk.to_dict(), status_code=201)


@router.post("/streams/{stream}/chunks/batch", status_code=201, response_model=list[ChunkOut],
             responses=NOT_FOUND_RESPONSE, summary="Add many chunks atomically (201 with the list)")
def add_chunks(stream: StreamName, body: BatchIn, request: Request, engine: EngineDep) -> JSONResponse:
    chunks = engine.add_chunks(stream, [to_input(item) for item in body.chunks])
    flag_suspicious(request, stream, [(c.id, item.content) for c, item in zip(chunks, body.chunks)])
    return JSONResponse([c.to_dict() for c in chunks], status_code=201)


def flag_suspicious(request: Request, stream: str, stored: list[tuple[str, str]]) -> None:
    """Audit stored chunks that look like markup or model instructions; they are kept as sent."""
    for chunk_id, content in stored:
        found = suspicious.findings(content)
        if found:
            audit(request, "chunk.suspicious", chunk_id, outcome="accepted", stream=stream, findings=found)


@router.get("/chunks/{chunk_id}", response_model=ChunkOut, responses=NOT_FOUND_RESPONSE,
            summary="Read a chunk (superseded ones too)")
def get_chunk(chunk_id: ChunkId, engine: EngineDep) -> JSONResponse:
    return JSONResponse(engine.get_chunk(chunk_id).to_dict())


@router.get("/chunks/{chunk_id}/history", response_model=ChunkHistory, responses=NOT_FOUND_RESPONSE,
            summary="The supersede chain the chunk belongs to, oldest first")
def chunk_history(chunk_id: ChunkId, engine: EngineDep) -> JSONResponse:
    return JSONResponse({"chunks": [c.to_dict() for c in engine.history(chunk_id)]})


@router.delete("/chunks/{chunk_id}", response_model=Deleted, responses=NOT_FOUND_RESPONSE,
               summary="Delete a chunk from storage, index and vectors")
def delete_chunk(chunk_id: ChunkId, request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "chunk.delete", chunk_id):
        engine.delete_chunk(chunk_id)
    return JSONResponse({"deleted": chunk_id, "count": 1})


@router.get("/streams", response_model=StreamList, tags=["streams"], summary="Every stream with counts")
def list_streams(engine: EngineDep) -> JSONResponse:
    return JSONResponse({"streams": [s.to_dict() for s in engine.list_streams()]})


@router.get("/streams/{stream}/chunks", response_model=ChunkPage, tags=["streams"],
            summary="One page of a stream's chunks in creation order")
def list_chunks(
    stream: StreamName,
    engine: EngineDep,
    level: Annotated[Level | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    page = engine.list_chunks(stream, level=level, cursor=cursor or None, limit=limit)
    return JSONResponse({"chunks": [c.to_dict() for c in page.items], "next_cursor": page.next_cursor})


@router.delete("/streams/{stream}", response_model=Deleted, tags=["streams"], responses=NOT_FOUND_RESPONSE,
               summary="Delete a stream: every chunk, entity and relation in it")
def delete_stream(stream: StreamName, request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "stream.delete", stream) as facts:
        count = engine.delete_stream(stream)
        facts["count"] = count
    return JSONResponse({"deleted": stream, "count": count})

