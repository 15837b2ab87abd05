"""Admin routes: consistency check, index rebuild, online backup. Every call is an audit event."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from loom_core.server.auth import audited, require_admin
from loom_core.server.deps import EngineDep, NoOptionsBody
from loom_core.server.schemas import BODY_ERRORS, COMMON_ERRORS, BackupOut, ConsistencyOut, RebuildOut

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=COMMON_ERRORS)


@router.get("/consistency", response_model=ConsistencyOut,
            summary="Compare storage, index and vectors (counts and differing ids)")
def consistency(request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "admin.consistency_check", None) as facts:
        report = engine.check_consistency()
        facts["consistent"] = report["consistent"]
    return JSONResponse(report)


@router.post("/rebuild-index", response_model=RebuildOut, responses=BODY_ERRORS,
             summary="Rebuild the full-text index from storage")
def rebuild_index(request: Request, engine: EngineDep, _options: NoOptionsBody = None) -> JSONResponse:
    with audited(request, "admin.rebuild_index", None) as facts:
        facts["documents"] = count = engine.rebuild_index()
    return JSONResponse({"documents": count})


def backup_root(configured: str, data_dir: Path) -> Path:
    """``server.backup_dir``, or ``<data_dir>-backups`` beside the data directory (never inside it,
    so copying the data directory does not copy its backups)."""
    if configured:
        return Path(configured)
    resolved = data_dir.resolve()
    return resolved.with_name(resolved.name + "-backups")


@router.post("/backups", status_code=201, response_model=BackupOut, responses=BODY_ERRORS,
             summary="Back up the running server (storage checkpoint + manifest) into server.backup_dir")
def create_backup(request: Request, engine: EngineDep, _options: NoOptionsBody = None) -> JSONResponse:
    # The caller does not choose the path: a client naming a server directory would be a
    # write-anywhere primitive. Backups go under one configured directory, named by time.
    from loom_core.memory.backup import read_manifest

    root = backup_root(request.app.state.config.server.backup_dir, Path(engine.data_dir))
    dest = root / datetime.now(UTC).strftime("loomem-%Y%m%dT%H%M%S%fZ")
    with audited(request, "admin.backup.create", str(dest)) as facts:
        # a folder the server creates is closed to other users too: backup names and times are its own
        with contextlib.suppress(FileExistsError):
            root.mkdir(mode=0o700, parents=True)
        engine.checkpoint(dest)
        manifest = read_manifest(dest)
        facts["chunks"] = manifest.get("chunks")
    return JSONResponse({"path": str(dest), "manifest": manifest}, status_code=201)
