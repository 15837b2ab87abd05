"""Consolidation routes: condense a stream's raw memories, run the dream pass, read LLM usage.

Each call that makes the model write is an audit event carrying ids and counts only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.llm_services import LLMServices
from loom_core.server.auth import audited, require_admin, require_auth
from loom_core.server.deps import EngineDep, NoOptionsBody
from loom_core.server.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["consolidation"], dependencies=[Depends(require_auth)],
                   responses=ERROR_RESPONSES)

StreamName = Annotated[str, Path(min_length=1, max_length=256, description="the memory namespace")]


def get_services(request: Request) -> LLMServices:
    services: LLMServices | None = getattr(request.app.state, "llm_services", None)
    if services is None:
        raise LoomError(ErrorCode.STORAGE_CLOSED, "the memory engine is not open (server starting or stopping)")
    return services

ServicesDep = Annotated[LLMServices, Depends(get_services)]


@router.post("/streams/{stream}/consolidate",
             summary="Condense the stream's oldest waiting raw (L0) chunks into L1 memories and graph facts")
def consolidate(stream: StreamName, request: Request, services: ServicesDep,
                _options: NoOptionsBody = None) -> dict[str, Any]:
    consolidator = services.require_consolidator()
    with audited(request, "consolidation.run", stream) as facts:
        report = consolidator.consolidate(stream)
        facts.update(raw_chunks=report.raw_chunks, memories=len(report.memories),
                     superseded=len(report.superseded))
    return report.to_dict()


@router.get("/streams/{stream}/consolidation", summary="How far consolidation of the stream has got")
def consolidation_status(stream: StreamName, engine: EngineDep, services: ServicesDep) -> dict[str, Any]:
    consolidator = services.consolidator
    return {
        "stream": stream,
        "through": engine.consolidation_mark(stream),
        "pending": consolidator.pending_count(stream) if consolidator is not None else None,
        "available": consolidator is not None,
    }


@router.post("/admin/dream", dependencies=[Depends(require_admin)], tags=["admin"],
             summary="Consolidate every stream with raw chunks waiting (the dream pass)")
def dream(request: Request, services: ServicesDep, _options: NoOptionsBody = None) -> dict[str, Any]:
    consolidator = services.require_consolidator()
    with audited(request, "admin.dream", None) as facts:
        result = consolidator.dream()
        facts.update(streams=len({r.stream for r in result.reports}),
                     memories=sum(len(r.memories) for r in result.reports), failures=len(result.failures))
    return result.to_dict()


@router.get("/llm/usage", summary="LLM tokens, requests and cost since start; PII replacements; today's spend")
def llm_usage(engine: EngineDep, services: ServicesDep) -> dict[str, Any]:
    return services.usage(engine.llm)
