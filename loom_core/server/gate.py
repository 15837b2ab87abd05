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

from loom_core.errors import LoomError
from loom_core.server.auth import OPEN_PATHS, Authenticator
from loom_core.server.errors import loom_error_response
from loom_core.server.limits import ASGIApp, Receive, Scope, Send


class AuthGate:
    """ASGI middleware: authenticate first, then pass the request on."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

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
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        client = scope.get("client")
        try:
            principal = self.authenticator.authenticate(
                authorization, method=scope.get("method", ""), path=scope["path"],
                client=client[0] if client else "",
            )
        except LoomError as exc:
            await loom_error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


__all__ = ["AuthGate"]
