"""Encryption routes: status, and the encrypt-at-rest backfill (admin, audited).

The backfill runs in one background thread per server; ``POST`` starts it (or
reports the run already going), ``GET .../status`` reports the progress the
backfill persists in storage, so a restart mid-way shows where it stopped and
the next ``POST`` resumes there. How the background run ends (finished, failed,
stopped by shutdown) is an audit event of its own, since the ``POST`` that
started it returned long before.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from loom_core.audit import AuditEvent, emit
from loom_core.errors import CATALOGUE, ErrorCode, LoomError
from loom_core.server.auth import Principal, audited, require_admin, require_auth
from loom_core.server.deps import EngineDep, NoOptionsBody
from loom_core.server.schemas import (
    BODY_ERRORS,
    COMMON_ERRORS,
    BackfillStarted,
    BackfillStatus,
    EncryptionStatus,
    error_responses,
)

log = logging.getLogger("loom.crypto")
#: what a backfill meets when the server closes the engine under it
_CLOSED = frozenset({ErrorCode.STORAGE_CLOSED, ErrorCode.INDEX_CLOSED})
#: the audit action recording how a background backfill run ended
RUN_ACTION = "admin.backfill.encrypt_at_rest.run"


def _error_view(code: ErrorCode, interrupted: bool = False) -> dict[str, str]:
    """The status body's error: a code and the catalogue's meaning, never the raw message
    (it can name paths or internals; the server log has it)."""
    if interrupted:
        return {"code": code.value, "message": "the server stopped during the backfill; the next call resumes it"}
    return {"code": code.value, "message": f"{CATALOGUE[code][0]} (details in the server log)"}

router = APIRouter(tags=["encryption"], responses=COMMON_ERRORS)


class BackfillRunner:
    """One background backfill at a time for one engine."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: dict[str, str] | None = None
        self._guard = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, engine: Any, *, actor: str = "system", hook: Any | None = None) -> bool:
        """Start a run unless one is going; whether this call started it.

        Returns once the pass's record is persisted, so the status
        never shows the previous pass's ``done`` beside ``running``. ``actor``
        and ``hook`` are for the audit event of how the run ends.
        """
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
            begun = threading.Event()

            def ended(outcome: str, **details: Any) -> None:
                emit(AuditEvent(action=RUN_ACTION, outcome=outcome, actor=actor, details=details), hook)

            def work() -> None:
                try:
                    try:
                        backfill.begin(storage, codec)
                    finally:
                        begun.set()
                    result = backfill.run(storage, codec, families, lock=lock)
                except LoomError as exc:
                    if exc.code in _CLOSED:  # the server is shutting down: nothing failed
                        self._error = _error_view(exc.code, interrupted=True)
                        log.info("encrypt-at-rest backfill stopped by shutdown; the next call resumes it")
                        ended("failure", code=exc.code.value, interrupted=True)
                    else:
                        self._error = _error_view(exc.code)
                        log.error("encrypt-at-rest backfill failed: %s: %s", exc.code.value, exc.message)
                        ended("failure", code=exc.code.value)
                except Exception:  # reported through status, never lost
                    self._error = _error_view(ErrorCode.INTERNAL_ERROR)
                    log.exception("encrypt-at-rest backfill failed")
                    ended("failure", code=ErrorCode.INTERNAL_ERROR.value)
                else:
                    ended("success", state=result.get("state"), encrypted=result.get("encrypted"),
                          scanned=result.get("scanned"))

            self._thread = threading.Thread(target=work, name="loom-encrypt-backfill", daemon=True)
            self._thread.start()
            begun.wait()
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


def _actor(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return principal.actor if isinstance(principal, Principal) else "anonymous"


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
    response_model=BackfillStarted,
    responses={**BODY_ERRORS, **error_responses(
        409, said={409: "the server runs without a master key (ENCRYPTION_KEY_MISSING)"})},
)
def start_backfill(request: Request, engine: EngineDep, _options: NoOptionsBody = None) -> JSONResponse:
    with audited(request, "admin.backfill.encrypt_at_rest", None) as facts:
        started = runner(request).start(engine, actor=_actor(request), hook=getattr(request.app.state, "hook", None))
        facts["started"] = started
        body = runner(request).status(engine)
        body["started"] = started
    return JSONResponse(body, status_code=202)


@router.get(
    "/v1/admin/backfill/encrypt-at-rest/status",
    dependencies=[Depends(require_admin)],
    summary="Progress of the encrypt-at-rest backfill (persisted; survives restarts)",
    response_model=BackfillStatus,
)
def backfill_status(request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "admin.backfill.encrypt_at_rest.status", None) as facts:
        body = runner(request).status(engine)
        facts["state"] = body.get("state")
    return JSONResponse(body)


@router.get(
    "/v1/encryption/status",
    dependencies=[Depends(require_auth)],
    summary="Whether encryption at rest is active and the master-key fingerprint (one-way digest)",
    response_model=EncryptionStatus,
)
def encryption_status(request: Request, engine: EngineDep) -> JSONResponse:
    from loom_core.crypto.engine_glue import engine_codec, engine_storage
    from loom_core.crypto.offline import describe

    with audited(request, "admin.encryption.status", None) as facts:
        info = describe(engine_storage(engine), engine_codec(engine))
        info["backfill"]["running"] = runner(request).running
        facts["enabled"] = info["enabled"]
    return JSONResponse(info)
