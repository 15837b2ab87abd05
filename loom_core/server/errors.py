"""Turn every failure into ``{"error": {"code": ..., "message": ...}}`` with a fitting status.

Clients match on the stable code, so every path out of the server, including
FastAPI's own validation errors, unknown routes and unexpected exceptions,
answers in the same shape. Server-side failures (5xx) answer with the
catalogue's generic meaning and log the real message, so internals such as
paths or backend text never reach the client.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loom_core.errors import CATALOGUE, ErrorCode, LoomError
from loom_core.memory.rows import MAX_METADATA_DEPTH
from loom_core.server.logging import clip_path

log = logging.getLogger("loom.server")

#: HTTP status per error code; codes not listed are server failures (500).
STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.USAGE_ERROR: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.OAUTH_UNAVAILABLE: 404,
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.INDEX_QUERY_INVALID: 422,
    ErrorCode.CONFLICT: 409,
    ErrorCode.AUTH_REQUIRED: 401,
    ErrorCode.AUTH_INVALID: 401,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.HEADERS_TOO_LARGE: 431,
    ErrorCode.ENCRYPTION_KEY_DESTROYED: 410,
    ErrorCode.ENCRYPTION_KEY_MISSING: 409,  # e.g. a backfill asked of a server running without a key
    ErrorCode.STORAGE_LOCKED: 503,
    ErrorCode.STORAGE_CLOSED: 503,
    ErrorCode.INDEX_LOCKED: 503,
    ErrorCode.LLM_UNAVAILABLE: 503,
    ErrorCode.LLM_RATE_LIMITED: 503,
    ErrorCode.LLM_CAPABILITY_MISSING: 409,  # e.g. consolidation asked of an embeddings-only backend
    ErrorCode.LLM_BAD_RESPONSE: 502,
    ErrorCode.LLM_AUTH_INVALID: 502,  # the provider refused the server's key: not the client's fault
    ErrorCode.LLM_AUTH_MISSING: 502,
    ErrorCode.SECRETS_PROVIDER_UNAVAILABLE: 503,
}

#: Codes whose message the client gets verbatim (they describe the request, not the server).
_CLIENT_FACING = {code for code, status in STATUS_BY_CODE.items() if status < 500}

_BEARER_CHALLENGE = 'Bearer realm="loomem"'


def status_for(code: ErrorCode) -> int:
    """The HTTP status a :class:`LoomError` with ``code`` is answered with."""
    return STATUS_BY_CODE.get(code, 500)


def error_body(code: ErrorCode, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape of the API."""
    body: dict[str, Any] = {"code": code.value, "message": message}
    if details:
        body["details"] = dict(details)
    return {"error": body}


def auth_headers(code: ErrorCode) -> dict[str, str]:
    """RFC 6750 challenge: plain when no token came, ``invalid_token`` when a wrong one did."""
    if code is ErrorCode.AUTH_INVALID:
        return {"WWW-Authenticate": f'{_BEARER_CHALLENGE}, error="invalid_token"'}
    return {"WWW-Authenticate": _BEARER_CHALLENGE}


def loom_error_response(exc: LoomError, request: Request | None = None) -> JSONResponse:
    """Render ``exc``; 5xx answers carry the catalogue meaning, the log carries the detail."""
    status = status_for(exc.code)
    headers = auth_headers(exc.code) if status == 401 else None
    if exc.code in _CLIENT_FACING:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=status, headers=headers)
    where = f"{request.method} {clip_path(request.url.path)}" if request is not None else "request"
    log.error("%s failed: %s: %s", where, exc.code.value, exc.message)
    meaning = CATALOGUE[exc.code][0]
    return JSONResponse(error_body(exc.code, f"{meaning} (details in the server log)"), status_code=status)


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    """``("body.content: Field required; ...", [{field, message, type}])`` without input values.

    Pydantic's raw errors echo the offending input, which may be memory
    content; only the location, the reason and the error type are kept.
    """
    items: list[dict[str, str]] = []
    for err in errors:
        parts = tuple(err.get("loc", ()))
        kind = str(err.get("type", ""))
        if kind == "json_invalid":  # loc is ("body", <character offset>)
            where = f" at character {parts[1]}" if len(parts) > 1 else ""
            items.append({"field": "body", "message": f"the body is not valid JSON{where}", "type": kind})
            continue
        loc = ".".join(str(part) for part in parts)
        items.append({"field": loc or "request", "message": str(err.get("msg", "invalid")), "type": kind})
    message = "; ".join(f"{item['field']}: {item['message']}" for item in items) or "invalid request"
    return message, items


async def _on_loom_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LoomError)
    return loom_error_response(exc, request)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, items = describe_validation_errors(exc.errors())
    return JSONResponse(
        error_body(ErrorCode.VALIDATION_FAILED, message, {"errors": items}), status_code=422
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    path = clip_path(request.url.path)  # echoed: a 16 KiB path is not sent back whole
    if status == 404:
        code, message = ErrorCode.NOT_FOUND, f"no route for {request.method} {path}"
    elif status == 405:
        allowed = _allowed_methods(request)
        code, message = ErrorCode.USAGE_ERROR, f"method {request.method} is not allowed on {path}"
        if allowed:
            message += f"; use {', '.join(allowed)}"
            headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
            return JSONResponse(error_body(code, message), status_code=status, headers=headers)
    elif status == 413:
        code, message = ErrorCode.PAYLOAD_TOO_LARGE, str(exc.detail)
    elif status == 400:  # the body could not be parsed: FastAPI chains the parser's exception
        unreadable = _unreadable_json(exc.__cause__)
        if unreadable is not None:  # valid JSON, but more than the parser takes: say what
            kind, why = unreadable
            item = {"field": "body", "message": why, "type": kind}
            return JSONResponse(error_body(ErrorCode.VALIDATION_FAILED, f"body: {why}", {"errors": [item]}),
                                status_code=422)
        code, message = ErrorCode.USAGE_ERROR, (
            "the request body could not be read: send uncompressed UTF-8 JSON (Content-Type: application/json)"
        )
    elif status < 500:
        code, message = ErrorCode.VALIDATION_FAILED, str(exc.detail)
    else:
        code, message = ErrorCode.INTERNAL_ERROR, CATALOGUE[ErrorCode.INTERNAL_ERROR][0]
    return JSONResponse(error_body(code, message), status_code=status, headers=exc.headers)


def _unreadable_json(cause: BaseException | None) -> tuple[str, str] | None:
    """``(error type, reason)`` for a body that is valid JSON the parser refused, else ``None``.

    Python's json module gives up on nesting past the recursion limit and on integers of more
    than ``sys.get_int_max_str_digits()`` digits; both were answered "send UTF-8 JSON", which the
    client had done. Python's own wording (``sys.set_int_max_str_digits()``) is not passed on.
    """
    if isinstance(cause, RecursionError):
        return "json_too_deep", (
            f"the JSON nests arrays and objects too deeply to read (metadata may nest at most "
            f"{MAX_METADATA_DEPTH} levels)"
        )
    if isinstance(cause, ValueError) and not isinstance(cause, UnicodeError) \
            and "integer string conversion" in str(cause):
        return "json_number_too_long", (
            f"the JSON holds a number of more than {sys.get_int_max_str_digits()} digits, longer than "
            "any value the API takes"
        )
    return None


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only the first route's)."""
    path, root = request.scope.get("path", ""), request.scope.get("root_path", "")
    if root and path.startswith(root):  # mounted under a proxy prefix: match the app's own path
        path = path[len(root):]
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        regex, served = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and served and regex.match(path):
            methods.update(served)
    return sorted(methods)


def _routes(routes: Any) -> Iterator[Any]:
    """Routes, with those of included routers (whose prefixes are in their own paths) flattened."""
    for route in routes:
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is not None:
            yield from _routes(inner)
        else:
            yield route


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer and the ASGI server logs the traceback; one line here.
    log.error("%s %s failed with %s", request.method, clip_path(request.url.path), type(exc).__name__)
    return JSONResponse(
        error_body(ErrorCode.INTERNAL_ERROR, f"internal error while handling {request.method} "
                   f"{clip_path(request.url.path)} (details in the server log)"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that keep every answer in the API's error shape."""
    app.add_exception_handler(LoomError, _on_loom_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
