"""Encryption routes: status, and the encrypt-at-rest backfill (admin, audited).

The backfill runs in one background thread per server; ``POST`` starts it (or
reports the run already going), ``GET .../status`` reports the progress the
backfill persists in storage, so a restart mid-way shows where it stopped and
the next ``POST`` resumes there.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from loom_core.errors import ErrorCode, LoomError
from loom_core.server.auth import audited, require_admin, require_auth
from loom_core.server.deps import EngineDep
from loom_core.server.schemas import ERROR_RESPONSES

log = logging.getLogger("loom.crypto")
#: what a backfill meets when the server closes the engine under it
_CLOSED = frozenset({ErrorCode.STORAGE_CLOSED, ErrorCode.INDEX_CLOSED})

router = APIRouter(tags=["encryption"], responses=ERROR_RESPONSES)


class BackfillRunner:
    """One background backfill at a time for one engine."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: dict[str, str] | None = None
        self._guard = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, engine: Any) -> bool:
        """Start a run unless one is going; whether this call started it."""
        from loom_core.crypto import backfill
        from loom_core.crypto.engine_glue import engine_codec, engine_lock, engine_storage, sealed_families

        with self._guard:
            if self.running:
                return False
            codec = engine_codec(engine)
            if not getattr(codec, "encrypting", False):
                raise LoomError(
                    ErrorCode.ENCRYPTION_KEY_MISSING,
                    "encryption at rest is off: set LOOMEM_AT_REST_MASTER_KEY and restart before backfilling",
                )
            storage, families, lock = engine_storage(engine), sealed_families(engine), engine_lock(engine)
            self._error = None

            def work() -> None:
                try:
                    backfill.run(storage, codec, families, lock=lock)
                except LoomError as exc:
                    self._error = {"code": exc.code.value, "message": exc.message}
                    if exc.code in _CLOSED:  # the server is shutting down: nothing failed
                        log.info("encrypt-at-rest backfill stopped by shutdown; the next call resumes it")
                    else:
                        log.error("encrypt-at-rest backfill failed: %s", exc.code.value)
                except Exception as exc:  # reported through status, never lost
                    self._error = {"code": ErrorCode.INTERNAL_ERROR.value, "message": type(exc).__name__}
                    log.exception("encrypt-at-rest backfill failed")

            self._thread = threading.Thread(target=work, name="loom-encrypt-backfill", daemon=True)
            self._thread.start()
            return True

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def status(self, engine: Any) -> dict[str, Any]:
        from loom_core.crypto import backfill
        from loom_core.crypto.engine_glue import engine_storage

        view = backfill.status(engine_storage(engine))
        view["running"] = self.running
        if self._error is not None:
            view["error"] = self._error
        total, scanned = view.get("total"), int(view.get("scanned") or 0)
        view["percent"] = 100.0 if view.get("state") == "done" else (
            min(99.9, round(100.0 * scanned / total, 1)) if total else 0.0  # rows written meanwhile add up
        )
        return view


def runner(request: Request) -> BackfillRunner:
    state = request.app.state
    found = getattr(state, "encryption_backfill", None)
    if not isinstance(found, BackfillRunner):
        found = BackfillRunner()
        state.encryption_backfill = found
    return found


@router.post(
    "/v1/admin/backfill/encrypt-at-rest",
    dependencies=[Depends(require_admin)],
    summary="Encrypt rows written before encryption was on (idempotent, resumable, runs in background)",
    status_code=202,
)
def start_backfill(request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "admin.backfill.encrypt_at_rest", None) as facts:
        started = runner(request).start(engine)
        facts["started"] = started
        body = runner(request).status(engine)
        body["started"] = started
    return JSONResponse(body, status_code=202)


@router.get(
    "/v1/admin/backfill/encrypt-at-rest/status",
    dependencies=[Depends(require_admin)],
    summary="Progress of the encrypt-at-rest backfill (persisted; survives restarts)",
)
def backfill_status(request: Request, engine: EngineDep) -> dict[str, Any]:
    with audited(request, "admin.backfill.encrypt_at_rest.status", None) as facts:
        body = runner(request).status(engine)
        facts["state"] = body.get("state")
    return body


@router.get(
    "/v1/encryption/status",
    dependencies=[Depends(require_auth)],
    summary="Whether encryption at rest is active and the master-key fingerprint (one-way digest)",
)
def encryption_status(request: Request, engine: EngineDep) -> dict[str, Any]:
    from loom_core.crypto.engine_glue import engine_codec, engine_storage
    from loom_core.crypto.offline import describe

    info = describe(engine_storage(engine), engine_codec(engine))
    info["backfill"]["running"] = runner(request).running
    return info
