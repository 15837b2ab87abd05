"""Consolidation routes: condense a stream's raw memories, run the dream pass, read LLM usage.

Each call that makes the model write is an audit event carrying ids and counts only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.llm_services import LLMServices
from loom_core.server.auth import audited, require_admin, require_auth
from loom_core.server.deps import EngineDep, NoOptionsBody, StreamPath
from loom_core.server.schemas import (
    BODY_ERRORS,
    COMMON_ERRORS,
    LLM_ERRORS,
    ConsolidationReportOut,
    ConsolidationStatus,
    DreamOut,
    LLMUsageOut,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["consolidation"], dependencies=[Depends(require_auth)],
                   responses=COMMON_ERRORS)

#: 409 from a consolidation: no chat backend, or the stream is being consolidated already.
_BUSY_OR_NO_CHAT = error_responses(409, said={409: "the LLM backend only embeds (LLM_CAPABILITY_MISSING), "
                                                   "or the stream is being consolidated (CONFLICT)"})


def get_services(request: Request) -> LLMServices:
    services: LLMServices | None = getattr(request.app.state, "llm_services", None)
    if services is None:
        raise LoomError(ErrorCode.STORAGE_CLOSED, "the memory engine is not open (server starting or stopping)")
    return services

ServicesDep = Annotated[LLMServices, Depends(get_services)]


@router.post("/streams/{stream}/consolidate", response_model=ConsolidationReportOut,
             responses={**BODY_ERRORS, **_BUSY_OR_NO_CHAT, **LLM_ERRORS},
             summary="Condense the stream's oldest waiting raw (L0) chunks into L1 memories and graph facts")
def consolidate(stream: StreamPath, request: Request, services: ServicesDep,
                _options: NoOptionsBody = None) -> JSONResponse:
    consolidator = services.require_consolidator()
    with audited(request, "consolidation.run", stream) as facts:
        report = consolidator.consolidate(stream)
        facts.update(raw_chunks=report.raw_chunks, memories=len(report.memories),
                     superseded=len(report.superseded))
    return JSONResponse(report.to_dict())


@router.get("/streams/{stream}/consolidation", response_model=ConsolidationStatus,
            responses=error_responses(422), summary="How far consolidation of the stream has got")
def consolidation_status(stream: StreamPath, engine: EngineDep, services: ServicesDep) -> JSONResponse:
    consolidator = services.consolidator
    return JSONResponse({
        "stream": stream,
        "through": engine.consolidation_mark(stream),
        "pending": consolidator.pending_count(stream) if consolidator is not None else None,
        "available": consolidator is not None,
    })


@router.post("/admin/dream", dependencies=[Depends(require_admin)], tags=["admin"], response_model=DreamOut,
             responses={**BODY_ERRORS, **error_responses(
                 409, said={409: "the LLM backend only embeds (LLM_CAPABILITY_MISSING)"})},
             summary="Consolidate every stream with raw chunks waiting (the dream pass); a stream whose "
                     "call fails is listed in `failures` and the pass goes on")
def dream(request: Request, services: ServicesDep, _options: NoOptionsBody = None) -> JSONResponse:
    consolidator = services.require_consolidator()
    with audited(request, "admin.dream", None) as facts:
        result = consolidator.dream()
        facts.update(streams=len({r.stream for r in result.reports}),
                     memories=sum(len(r.memories) for r in result.reports), failures=len(result.failures))
    return JSONResponse(result.to_dict())


@router.get("/llm/usage", response_model=LLMUsageOut,
            summary="LLM tokens, requests and cost since start; PII replacements; today's spend")
def llm_usage(engine: EngineDep, services: ServicesDep) -> JSONResponse:
    return JSONResponse(services.usage(engine.llm))
