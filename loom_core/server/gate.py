"""Bearer check on the raw ASGI request, before anything reads the body.

FastAPI resolves a route's dependencies after it has read and parsed the
body, so with auth only as a dependency an unauthenticated request with a
malformed body got 422, an oversized one 413 and an unknown path 404: each
answer told a caller without the key something. The gate runs first for
every HTTP request except ``OPEN_PATHS``; a refused request is answered 401
(with ``WWW-Authenticate``) and its body is never read. The principal it
finds is handed to ``require_auth`` through the request state.
"""

from __future__ import annotations

from collections.abc import Callable

from loom_core.errors import ErrorCode, LoomError
from loom_core.server.auth import OPEN_PATHS, Authenticator
from loom_core.server.errors import loom_error_response
from loom_core.server.limits import ASGIApp, Receive, Scope, Send

#: Extra ``WWW-Authenticate`` parameters for a refused request (``resource_metadata="..."`` on
#: ``/mcp``, RFC 9728 §5.1), or ``None``.
Challenge = Callable[[Scope], str | None]


class AuthGate:
    """ASGI middleware: authenticate first, then pass the request on."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, challenge: Challenge | None = None) -> None:
        self.app = app
        self.authenticator = authenticator
        self.challenge = challenge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # mounted under a proxy prefix: match the app's own path
            path = path[len(root):]
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = None
        host = ""
        origins: list[str] = []
        credentials = 0
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                credentials += 1
                authorization = authorization if authorization is not None else value.decode("latin-1")
            elif name == b"host" and not host:
                host = value.decode("latin-1")
            elif name == b"origin":
                origins.append(value.decode("latin-1"))
            elif name == b"sec-fetch-site" and value.strip().lower() == b"cross-site":
                origins.append("cross-site")
        client = scope.get("client")
        method, client_host = scope.get("method", ""), client[0] if client else ""
        if credentials > 1:
            # which one counts would be up to each hop (a proxy adding its own, a client's first):
            # refuse rather than pick
            self.authenticator.record_denial("several_authorization_headers", method, scope["path"], client_host)
            await loom_error_response(LoomError(
                ErrorCode.AUTH_INVALID, "the request carries more than one Authorization header; send exactly one"
            ))(scope, receive, send)
            return
        refusal = _passthrough_refusal(host, origins) if self.authenticator.passthrough else None
        if refusal is not None:
            reason, message = refusal
            self.authenticator.record_denial(reason, method, scope["path"], client_host)
            await loom_error_response(LoomError(ErrorCode.AUTH_REQUIRED, message))(scope, receive, send)
            return
        try:
            principal = self.authenticator.authenticate(
                authorization, method=method, path=scope["path"], client=client_host
            )
        except LoomError as exc:
            response = loom_error_response(exc)
            extra = self.challenge(scope) if self.challenge is not None else None
            if extra and "www-authenticate" in response.headers:
                response.headers["www-authenticate"] += f", {extra}"
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _passthrough_refusal(host: str, origins: list[str]) -> tuple[str, str] | None:
    """``(audit reason, message)`` when a key-less server must refuse the request, else ``None``.

    Only a client on this machine may use it: a web page that had its domain re-resolved to
    127.0.0.1 (DNS rebinding) sends its own name as Host, and any page the user visits can send a
    "simple" POST (no preflight) to 127.0.0.1, its browser naming the page's origin.
    """
    how = "set the variable server.auth_token_env names"
    if host and not _loopback_name(host):
        return "passthrough_non_local_host", (
            "this server runs without an API key (local passthrough mode) and answers only requests "
            f"addressed to localhost, 127.0.0.1 or [::1]; {how} to serve other host names"
        )
    if any(not _loopback_origin(origin) for origin in origins):
        return "passthrough_cross_origin", (
            "this server runs without an API key (local passthrough mode) and refuses requests a web "
            f"page on another origin sends; {how} to use it from a browser"
        )
    return None


def is_loopback(name: str) -> bool:
    """Whether a host name or address is this machine's loopback (``localhost``, 127/8, ::1)."""
    import ipaddress

    name = name.strip().lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _loopback_origin(origin: str) -> bool:
    """Whether an ``Origin`` header names a page served from this machine (``null``, an opaque
    origin of a sandboxed frame or a file, and anything unparsable are not)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(origin.strip())
        hostname = parts.hostname
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and hostname is not None and is_loopback(hostname)


def _loopback_name(host: str) -> bool:
    """Whether a Host header names this machine's loopback interface (any port).

    (An empty Host, HTTP/1.0, is let through by the caller: browsers always send one.)
    """
    name = host.strip()
    if name.startswith("["):  # [::1] or [::1]:8420
        return is_loopback(name[1:].split("]", 1)[0])
    return is_loopback(name.rsplit(":", 1)[0])


__all__ = ["AuthGate"]
