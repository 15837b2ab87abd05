"""Admin routes: consistency check and index rebuild. Every call is an audit event."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from loom_core.server.auth import audited, require_admin
from loom_core.server.deps import EngineDep
from loom_core.server.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=ERROR_RESPONSES)


@router.get("/consistency", summary="Compare storage, index and vectors (counts and differing ids)")
def consistency(request: Request, engine: EngineDep) -> dict[str, Any]:
    with audited(request, "admin.consistency_check", None) as facts:
        report = engine.check_consistency()
        facts["consistent"] = not report.get("missing_in_index") and not report.get("extra_in_index")
    return report


@router.post("/rebuild-index", summary="Rebuild the full-text index from storage")
def rebuild_index(request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "admin.rebuild_index", None) as facts:
        facts["documents"] = count = engine.rebuild_index()
    return JSONResponse({"documents": count})
