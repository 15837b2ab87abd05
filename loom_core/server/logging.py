"""Log lines on stdout: compact text for people, one JSON object per line for shippers.

Every record gets a ``target``: ``"audit"`` for audit events (so a log
shipper can isolate the security stream), otherwise the logger's name.
Structured fields come from ``extra={"fields": {...}}`` or, for audit events,
from :meth:`loom_core.audit.AuditEvent.as_log_fields`; neither ever holds
content or tokens.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from loom_core.audit import AUDIT_TARGET
from loom_core.errors import ErrorCode, LoomError

LOG_FORMATS = ("text", "json")
_HANDLER_NAME = "loom-stdout"
#: Loggers whose records reach our handler (uvicorn's are reset to propagate to root).
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def record_target(record: logging.LogRecord) -> str:
    audit = getattr(record, "audit", None)
    if isinstance(audit, dict):
        return str(audit.get("target", AUDIT_TARGET))
    return record.name


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    audit = getattr(record, "audit", None)
    if isinstance(audit, dict):
        return {k: v for k, v in audit.items() if k != "target"}
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        return dict(fields)
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, http_version, status = record.args
        return {"client": client, "method": method, "path": path, "http_version": http_version,
                "status": status}
    return {}


class _AccessPathOnly(logging.Filter):
    """Drop the query string from access-log lines: it may hold entity names and relation
    predicates (content that is encrypted at rest) or a token sent in the wrong place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, http_version, status = record.args
            if isinstance(path, str):
                record.args = (client, method, clip_path(path.split("?", 1)[0] + ("?…" if "?" in path else "")),
                               http_version, status)
        return True


#: longest request path a log line carries: an unauthenticated 8 kB path was logged whole, twice
MAX_LOGGED_PATH = 256


def clip_path(path: str) -> str:
    """``path`` cut to ``MAX_LOGGED_PATH`` characters (marked), for access and audit lines."""
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "…[cut]"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", "target", "fields"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "target": record_target(record),
            "fields": record_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z INFO  target: message key=value`` for local use."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "uvicorn.access":  # the message already says it all
            fields = {}
        else:
            fields = record_fields(record)
        if isinstance(getattr(record, "audit", None), dict):  # the message already says action and outcome
            fields = {k: v for k, v in fields.items() if k not in ("action", "outcome")}
        rendered = " ".join(f"{k}={_compact(v)}" for k, v in fields.items() if v not in (None, {}, ""))
        message = _one_line(record.getMessage())
        line = f"{_timestamp(record)} {record.levelname:<7} {record_target(record)}: {message}"
        if rendered:
            line = f"{line} {rendered}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _compact(value: Any) -> str:
    """A field value that cannot break the line: strings with spaces or control characters
    (a percent-decoded ``%0A`` in a request path) are JSON-quoted, and what JSON leaves raw
    (U+0085, U+2028, U+2029, C1 controls: line breaks to ``str.splitlines``) is escaped too."""
    if isinstance(value, str):
        if value and " " not in value and value.isprintable():
            return value
        return _one_line(json.dumps(value, ensure_ascii=False))
    return _one_line(json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False))


def _one_line(text: str) -> str:
    """``text`` with control characters escaped, so one record is always one line: a request
    path decoded from ``%0A...`` could otherwise start a line that looks like an audit record."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else json.dumps(ch)[1:-1] for ch in text)


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise LoomError(
        ErrorCode.CONFIG_INVALID,
        f"server.log_format / LOOMEM_LOG_FORMAT is {fmt!r}; use one of {', '.join(LOG_FORMATS)}",
    )


def configure_logging(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Send every record (Loom's and uvicorn's) to ``stream`` (stdout) in ``fmt``.

    Idempotent: a second call replaces the handler this function installed
    before, so tests and restarts do not duplicate lines.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"server.log_level is {level!r}; use debug, info, warning or error",
        )
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(_AccessPathOnly())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
