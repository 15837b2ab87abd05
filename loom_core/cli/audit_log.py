"""Audit events for admin commands run from the command line.

The server logs its admin actions with ``target: "audit"``. ``loom backup``,
``loom export`` / ``import`` and ``loom encryption rotate`` / ``backfill``
read, copy or change the same data without a server, so they log the same
kind of event: one per command, success or failure (with the error code),
naming the OS user who ran it and the stream or path, never content or keys.
Events go to stderr (stdout may carry an export) in the configured log format
(``server.log_format`` / ``LOOMEM_LOG_FORMAT``) and to plugins' audit hook.
"""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loom_core.audit import AUDIT_LOGGER, AuditEvent, emit
from loom_core.errors import ErrorCode, LoomError


def cli_actor() -> str:
    """``cli:<OS user>``: who ran the command, as far as the machine knows."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli"


@contextmanager
def audited_command(action: str, resource: str | None, *, config: Any, host: Any) -> Iterator[dict[str, Any]]:
    """Log one audit event for the wrapped command, in ``config``'s log format and to ``host``'s
    audit hook; the yielded dict collects facts (counts)."""
    from loom_core.server.logging import make_formatter

    hook = host.hook
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(config.server.log_format))
    logger = logging.getLogger(AUDIT_LOGGER)
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # this handler alone: no duplicate through a root handler
    facts: dict[str, Any] = {}
    try:
        try:
            yield facts
        except LoomError as exc:
            emit(AuditEvent(action, "failure", cli_actor(), resource, {**facts, "code": exc.code.value}), hook)
            raise
        except BaseException as exc:
            if isinstance(exc, SystemExit) and not exc.code:  # a clean exit is not a failure
                emit(AuditEvent(action, "success", cli_actor(), resource, facts), hook)
                raise
            code = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else ErrorCode.INTERNAL_ERROR.value
            emit(AuditEvent(action, "failure", cli_actor(), resource, {**facts, "code": code}), hook)
            raise
        emit(AuditEvent(action, "success", cli_actor(), resource, facts), hook)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


__all__ = ["audited_command", "cli_actor"]
