"""``create_app``: the Loomem FastAPI application, assembled from small router modules.

The app owns the request-facing concerns (auth, body limit, error shape,
OpenAPI); the engine owns memory. Routers are listed in
:data:`ROUTER_MODULES` by module name, each exposing ``router``; adding a
feature's routes is one line there. Start-up opens the engine (unless one is
passed in), calls ``loom_startup(component="server")`` and starts the
retention sweeper; shutdown reverses it and calls ``loom_shutdown``.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from loom_core import __version__
from loom_core.audit import AuditEvent, emit
from loom_core.config import LoomConfig
from loom_core.config.reserved import reserved_in_use
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.consolidate import ConsolidationReport
from loom_core.memory.llm_services import check_llm_settings, open_llm_services
from loom_core.plugins.host import PluginHost
from loom_core.server.auth import AuthDep, Authenticator, declare_bearer_security, resolve_api_key
from loom_core.server.errors import install_error_handlers
from loom_core.server.gate import AuthGate
from loom_core.server.head_limit import HeadSizeLimit
from loom_core.server.limits import BodySizeLimit
from loom_core.server.mcp import MCP_PATH, MCPEndpoint, build_mcp_server
from loom_core.server.oauth import LoomOAuthProvider, build_router, check_public_url, mcp_challenge
from loom_core.server.runtime import make_host, open_engine
from loom_core.server.schemas import Health
from loom_core.server.tokens import Clock

if TYPE_CHECKING:
    from loom_core.memory.engine import MemoryEngine

#: threads for searches in flight at once (more wait for a free one)
SEARCH_THREADS = min(32, (os.cpu_count() or 1) + 4)
log = logging.getLogger("loom.server")

#: Modules whose ``router`` is mounted, in order. Add a feature's router module here.
ROUTER_MODULES: tuple[str, ...] = (
    "loom_core.server.routes_chunks",
    "loom_core.server.routes_search",
    "loom_core.server.routes_graph",
    "loom_core.server.routes_admin",
    "loom_core.server.routes_encryption",
    "loom_core.server.routes_consolidation",
)

EngineFactory = Callable[[], "MemoryEngine"]


def _dream_audit(hook: Any) -> Callable[[ConsolidationReport], None]:
    """Audit each consolidation the background dream pass makes (ids and counts only)."""

    def record(report: ConsolidationReport) -> None:
        emit(AuditEvent("consolidation.dream", "success", actor="server", resource=report.stream,
                        details={"raw_chunks": report.raw_chunks, "memories": len(report.memories),
                                 "superseded": len(report.superseded)}), hook)

    return record


def load_routers(modules: Iterable[str] = ROUTER_MODULES) -> list[APIRouter]:
    """Import each module and take its ``router``."""
    routers: list[APIRouter] = []
    for name in modules:
        router = getattr(importlib.import_module(name), "router", None)
        if not isinstance(router, APIRouter):
            raise LoomError(ErrorCode.INTERNAL_ERROR, f"server module {name} has no APIRouter named `router`")
        routers.append(router)
    return routers


def create_app(
    config: LoomConfig | None = None,
    *,
    host: PluginHost | None = None,
    data_dir: Path | None = None,
    engine: MemoryEngine | None = None,
    engine_factory: EngineFactory | None = None,
    environ: Mapping[str, str] | None = None,
    routers: Iterable[APIRouter] | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Assemble the app. Auth is resolved here, so a bad key setting fails before serving.

    ``engine`` (or one assigned to ``app.state.engine`` before start-up) is
    used as is and left open on shutdown (the caller owns it); otherwise
    ``engine_factory`` (default: open ``data_dir`` or
    ``server.data_dir``) runs at start-up and the engine is closed at shutdown.
    ``clock`` (seconds since the epoch) dates OAuth tokens and codes; tests move it.
    """
    cfg = config if config is not None else LoomConfig()
    env: Mapping[str, str] = os.environ if environ is None else environ
    plugin_host = host if host is not None else make_host(cfg, env)
    key = resolve_api_key(
        cfg.server.auth_token_env, cfg.server.auth_token_ref, env, plugin_host, cfg.secrets.resolve_timeout_seconds,
        # another variable than the default, written in the file: the server is meant to need a key
        env_configured=cfg.server.auth_token_env != type(cfg.server)().auth_token_env,
    )
    check_public_url(cfg.server.public_url)
    check_llm_settings(cfg, plugin_host, env)  # before any data is touched, like the key
    authenticator = Authenticator(key, plugin_host.hook, clock or time.time)
    oauth = LoomOAuthProvider(authenticator.tokens) if authenticator.tokens is not None else None
    factory: EngineFactory = engine_factory or (lambda: open_engine(cfg, plugin_host, data_dir, env))
    mcp_endpoint = MCPEndpoint(build_mcp_server(), cfg.server.max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        authenticator.announce()
        for note in reserved_in_use(cfg):  # a setting the operator relies on that does nothing yet
            log.warning("%s", note)
        preset: MemoryEngine | None = app.state.engine  # passed in, or set by the caller before serving
        owned = preset is None
        app.state.engine = preset if preset is not None else await run_in_threadpool(factory)
        # searches run here, off the event loop; threads start on demand
        app.state.search_pool = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="loom-search")
        stop_sweeper: Callable[[], None] | None = None
        try:
            plugin_host.hook.loom_startup(component="server", config=cfg)
            stop_sweeper = _start_sweeper(app.state.engine, cfg, plugin_host.hook)
            app.state.llm_services = await run_in_threadpool(
                open_llm_services, app.state.engine, cfg, plugin_host, env, on_report=_dream_audit(plugin_host.hook)
            )
            async with mcp_endpoint.running():
                log.info("loomem server ready", extra={"fields": {"auth": _auth_mode(authenticator)}})
                yield
        finally:
            # searches in flight finish before the engine closes
            pool, app.state.search_pool = app.state.search_pool, None
            await run_in_threadpool(pool.shutdown)
            if stop_sweeper is not None:
                await run_in_threadpool(stop_sweeper)
            services, app.state.llm_services = getattr(app.state, "llm_services", None), None
            if services is not None:
                await run_in_threadpool(services.close)  # the dream pass ends before the engine closes
            try:
                plugin_host.hook.loom_shutdown(component="server")
            finally:
                current = app.state.engine
                app.state.engine = None
                if owned and current is not None:
                    await run_in_threadpool(current.close)
                    log.info("memory engine closed")
                log.info("loomem server stopped")

    app = FastAPI(
        title="Loomem",
        version=__version__,
        description="Loomem memory server: streams of chunks, hybrid search, entity graph.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # no 307 to the slash-less path: its Location was built from the client's own Host header
        redirect_slashes=False,
    )
    app.state.config = cfg
    app.state.host = plugin_host
    app.state.hook = plugin_host.hook
    app.state.authenticator = authenticator
    app.state.engine = engine
    app.state.search_pool = None  # set while the app runs (lifespan)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=cfg.server.max_body_bytes)
    app.add_middleware(AuthGate, authenticator=authenticator,
                       challenge=mcp_challenge(cfg.server.public_url) if oauth is not None else None)
    app.add_middleware(HeadSizeLimit)  # added last: runs first

    @app.api_route("/health", methods=["GET", "HEAD"], tags=["health"], response_model=Health,
                   summary="Liveness; never authenticated (HEAD too, for monitors)")
    async def health(request: Request) -> dict[str, Any]:
        ready = request.app.state.engine is not None
        return {"status": "ok" if ready else "starting", "version": __version__,
                "auth": _auth_mode(authenticator)}

    _mount_docs(app)
    app.include_router(build_router(authenticator, oauth, cfg.server.public_url))
    for router in routers if routers is not None else load_routers():
        app.include_router(router)
    # JSON-RPC over streamable HTTP, POST only (stateless: no GET stream that would hang open, no
    # session to DELETE); behind the same gate and limits as every other route
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp_endpoint, methods=["POST"], include_in_schema=False))
    return app


def _auth_mode(authenticator: Authenticator) -> str:
    return "passthrough" if authenticator.passthrough else "bearer"


def _mount_docs(app: FastAPI) -> None:
    """OpenAPI and Swagger UI, behind the same key as the API (open in passthrough mode)."""

    document: dict[str, Any] = {}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(_principal: AuthDep) -> JSONResponse:
        if not document:
            document.update(declare_bearer_security(app.openapi()))
        return JSONResponse(document)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(_principal: AuthDep) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Loomem API")


def _start_sweeper(engine: MemoryEngine, config: LoomConfig, hook: Any) -> Callable[[], None]:
    """Start the engine's retention sweeper; return the callable that stops it.
    Each round that deletes expired chunks is an audit event (deletes are)."""

    def swept(count: int) -> None:
        emit(AuditEvent(action="chunk.expire", outcome="success", actor="retention", details={"count": count}),
             hook)

    engine.start_sweeper(config.retention.sweep_interval_seconds, on_swept=swept)
    return engine.stop_sweeper
