"""``POST /v1/search``: hybrid, BM25 or vector search with filters and per-signal scores."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from loom_core.memory.models import SearchRequest
from loom_core.server.auth import require_auth
from loom_core.server.deps import EngineDep
from loom_core.server.schemas import ERROR_RESPONSES, SearchIn, SearchOut, to_millis

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[Depends(require_auth)],
                   responses=ERROR_RESPONSES)


@router.post("/search", response_model=SearchOut,
             summary="Search chunks; results best first with bm25, vector, recency and fused scores")
def search(body: SearchIn, engine: EngineDep) -> JSONResponse:
    request = SearchRequest(
        query=body.query,
        stream=body.stream,
        streams=body.streams,
        k=body.k,
        levels=body.levels,
        mode=body.mode,
        include_superseded=body.include_superseded,
        since=to_millis(body.since),
        until=to_millis(body.until),
    )
    return JSONResponse({"results": [r.to_dict() for r in engine.search(request)]})
