"""Refuse a request whose head (request line and headers) is over 16 KiB, whatever reached the parser.

h11 bounds only a head still incomplete in its buffer: a 70 KB header that
arrives in one read is parsed and served. This middleware checks what the
parser handed over, before authentication, so the documented limit holds for
every request.
"""

from __future__ import annotations

import json
import logging

from loom_core.errors import ErrorCode
from loom_core.server.limits import ASGIApp, Receive, Scope, Send
from loom_core.server.logging import clip_path

log = logging.getLogger("loom.server")

#: The largest request head served, in bytes (request line plus every header line).
MAX_HEAD_BYTES = 16 * 1024


def head_size(scope: Scope) -> int:
    """Bytes of the request line and header lines as sent (``name: value\\r\\n`` each)."""
    target = len(scope.get("raw_path") or scope.get("path", "").encode("utf-8"))
    query = scope.get("query_string", b"")
    line = len(scope.get("method", "")) + target + (len(query) + 1 if query else 0) + 12
    return line + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))


class HeadSizeLimit:
    """ASGI middleware answering 431 ``HEADERS_TOO_LARGE`` to a head over :data:`MAX_HEAD_BYTES`."""

    def __init__(self, app: ASGIApp, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self.app = app
        self.max_head_bytes = max_head_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or head_size(scope) <= self.max_head_bytes:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: request head over %d bytes", scope.get("method"),
                    clip_path(scope.get("path", "")), self.max_head_bytes)
        payload = json.dumps({"error": {
            "code": ErrorCode.HEADERS_TOO_LARGE.value,
            "message": f"the request line and headers exceed {self.max_head_bytes} bytes; send shorter headers",
        }}).encode("utf-8")
        await send({"type": "http.response.start", "status": 431, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode("ascii")),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": payload, "more_body": False})
