"""The server's log formats: one JSON object per line, or compact text, with audit targets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from loom_core.audit import AuditEvent, emit
from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.server.logging import configure_logging


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_timestamp_level_logger_message_target_fields(restore_root_logging: None) -> None:
    """Each record becomes one parseable JSON object with the documented keys."""
    out = io.StringIO()
    configure_logging("json", "info", out)
    logging.getLogger("loom.server").info("ready", extra={"fields": {"port": 8420}})
    emit(AuditEvent(action="chunk.delete", outcome="success", actor="api-key", resource="01ABC"))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first, audit = lines
    assert set(first) == {"timestamp", "level", "logger", "message", "target", "fields"}
    assert first["level"] == "INFO" and first["message"] == "ready" and first["fields"] == {"port": 8420}
    assert first["target"] == "loom.server" and first["timestamp"].endswith("Z")
    assert audit["target"] == "audit"
    assert audit["fields"]["action"] == "chunk.delete" and audit["fields"]["resource"] == "01ABC"


def test_text_format_is_one_compact_line_with_the_target(restore_root_logging: None) -> None:
    """The default format names the level and target and renders audit fields as key=value."""
    out = io.StringIO()
    configure_logging("text", "info", out)
    emit(AuditEvent(action="stream.delete", outcome="success", actor="api-key", resource="agent-1"))
    (line,) = out.getvalue().splitlines()
    assert " INFO " in line and " audit: stream.delete success" in line
    assert "resource=agent-1" in line and "actor=api-key" in line


@pytest.mark.parametrize("breaker", ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_no_line_break_of_any_kind_splits_a_text_record(restore_root_logging: None, breaker: str) -> None:
    """A request path decoded from ``%C2%85`` (NEL) or holding U+2028 stayed raw in ``resource="..."``
    (JSON leaves them unescaped), and readers that split on them (``str.splitlines``) saw a forged line."""
    out = io.StringIO()
    configure_logging("text", "info", out)
    forged = f"x{breaker}2026-01-01T00:00:00.000Z INFO    audit: stream.delete success"
    emit(AuditEvent(action="chunk.read", outcome="failure", actor="anonymous", resource=forged,
                    details={"path": forged}))
    logging.getLogger("loom.server").info("message %s", forged)
    assert len(out.getvalue().splitlines()) == 2


def test_configure_twice_does_not_duplicate_lines(restore_root_logging: None) -> None:
    """Re-configuring replaces the handler rather than adding a second one."""
    out = io.StringIO()
    configure_logging("text", "info", out)
    configure_logging("text", "info", out)
    logging.getLogger("loom.server").info("once")
    assert out.getvalue().count("once") == 1


def test_level_filters_records(restore_root_logging: None) -> None:
    """At level warning, info records (such as access lines) are dropped."""
    out = io.StringIO()
    configure_logging("json", "warning", out)
    logging.getLogger("uvicorn.access").info("GET / 200")
    logging.getLogger("loom.server").warning("careful")
    assert [json.loads(x)["message"] for x in out.getvalue().splitlines()] == ["careful"]


def test_unknown_format_is_a_config_error() -> None:
    """A format other than text/json fails closed with CONFIG_INVALID naming the setting."""
    with pytest.raises(LoomError) as info:
        configure_logging("yaml", "info", io.StringIO())
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "log_format" in info.value.message


def test_access_lines_have_structured_fields_in_json(restore_root_logging: None) -> None:
    """uvicorn's access records get client, method, path and status as JSON fields."""
    out = io.StringIO()
    configure_logging("json", "info", out)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/v1/streams", "1.1", 200
    )
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["fields"] == {"client": "127.0.0.1:5000", "method": "GET", "path": "/v1/streams",
                              "http_version": "1.1", "status": 200}
    assert line["message"] == '127.0.0.1:5000 - "GET /v1/streams HTTP/1.1" 200'


def test_default_destination_is_stdout(restore_root_logging: None) -> None:
    """Without an explicit stream, records go to stdout (12-factor), not stderr."""
    import sys

    handler = configure_logging("text", "info")
    assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_lines_leave_out_the_query_string(restore_root_logging: None, fmt: str) -> None:
    """``?name=...`` holds entity names (encrypted at rest) and may hold a token sent in the wrong
    place: access lines keep the path and drop the query, in both formats."""
    out = io.StringIO()
    configure_logging(fmt, "info", out)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/v1/streams/s/entities?name=QS-MARKER", "1.1", 200
    )
    text = out.getvalue()
    assert "QS-MARKER" not in text and "/v1/streams/s/entities?" in text


def test_a_newline_in_a_request_path_cannot_forge_an_audit_line(restore_root_logging: None) -> None:
    """A path decoded from ``%0A`` went into the text line raw, starting a second line that read
    like an audit record. Control characters are escaped: one record, one line."""
    out = io.StringIO()
    configure_logging("text", "info", out)
    forged = "/v1/x\n2026-11-24T00:00:00.000Z\tINFO\taudit:\tFORGED"
    emit(AuditEvent(action="auth.failure", outcome="failure", actor="anonymous", resource=forged))
    logging.getLogger("loom.server").warning("request %s failed", forged)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert not any(line.startswith("2026-11-24T00:00:00.000Z") for line in lines)
    assert "\\n2026-11-24T00:00:00.000Z\\tINFO" in lines[0]


def test_a_long_request_path_is_cut_in_access_and_audit_lines(restore_root_logging: None) -> None:
    """An unauthenticated request with an 8 kB path was logged whole in its access line and its
    auth.failure audit line: anyone could inflate the logs. Both carry 256 characters, marked."""
    from loom_core.server.auth import Authenticator

    out = io.StringIO()
    configure_logging("json", "info", out)
    long_path = "/v1/" + "p" * 8000
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", long_path, "1.1", 401
    )
    with pytest.raises(LoomError):
        Authenticator(SecretValue(b"k" * 40)).authenticate(None, method="GET", path=long_path, client="127.0.0.1")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(len(line) < 1200 for line in lines)
    assert all("…[cut]" in line for line in lines)
