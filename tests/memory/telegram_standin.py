"""A local stand-in for the Telegram Bot API's ``sendMessage``, on a real 127.0.0.1 HTTP server.

It answers as Telegram does: ``POST /bot<token>/sendMessage`` with a JSON body holding
``chat_id`` and ``text`` gets 200 ``{"ok": true, "result": {message}}``; a wrong token gets
401 ``{"ok": false, "error_code": 401, "description": "Unauthorized"}``; an unknown chat 400
``Bad Request: chat not found``. ``fail_next`` makes the next answers 429 or 5xx.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class TelegramStandIn:
    token: str
    chat_id: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet, and the path holds the token
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = standin._answer(self.path, body)
                standin.statuses.append(status)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, status: int, count: int = 1) -> None:
        self.failures.extend([status] * count)

    def _answer(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.failures:
            status = self.failures.pop(0)
            return status, {"ok": False, "error_code": status, "description": "Too Many Requests: retry later"
                            if status == 429 else "Internal Server Error"}
        if path != f"/bot{self.token}/sendMessage":
            if path.endswith("/sendMessage"):
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            message = json.loads(body)
        except ValueError:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse JSON"}
        if str(message.get("chat_id")) != self.chat_id:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        if not message.get("text"):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        self.sent.append(message)
        return 200, {"ok": True, "result": {"message_id": len(self.sent), "chat": {"id": int(self.chat_id)},
                                            "date": 0, "text": message["text"]}}

    def __enter__(self) -> TelegramStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
