"""Every pluggy hook Loom calls, with when and how.

Plugins implement these with :data:`hookimpl`. The project name for pluggy is
``"loom"``; every hook is ``loom_``-prefixed. ``tests/test_hookspecs.py`` fails
when a hook here lacks a docstring or a test that exercises it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from loom_core.audit import AuditEvent
    from loom_core.plugins.registry import BackendRegistry

PROJECT = "loom"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def loom_register_backends(registry: BackendRegistry) -> None:
    """Add this plugin's backends to ``registry``.

    :param registry: call ``registry.add_storage(name, factory, ...)`` (or
        ``add_cipher``, ``add_index``, ``add_llm``, ``add_pii``,
        ``add_secrets``) once per backend the plugin provides.

    Called once for each plugin, right after the plugin's entry point was
    imported because configuration selected one of its backends; plugins that
    nobody selected are never imported. All implementations are called (not
    ``firstresult``). A plugin loaded through the entry point ``loom.<kind>``
    named ``N`` must register a backend of that kind named ``N``; registering a
    name twice is a ``PLUGIN_CONFLICT``.
    """


@hookspec
def loom_startup(component: str, config: Any) -> None:
    """React to a long-lived component having started.

    :param component: ``"server"`` for the memory server, ``"workflow"`` for a
        ``loom run``.
    :param config: the validated :class:`loom_core.config.LoomConfig`.

    Called once per component start, after every selected backend was built
    and before the first request or job. All implementations are called; an
    exception aborts the start-up with that error.
    """


@hookspec
def loom_shutdown(component: str) -> None:
    """Release whatever :func:`loom_startup` acquired.

    :param component: the same name that was passed to :func:`loom_startup`.

    Called once when the component stops, also after a failure; all
    implementations are called, in reverse registration order.
    """


@hookspec
def loom_audit_event(event: AuditEvent) -> None:
    """Observe a security-relevant event (auth failure, delete, admin action).

    :param event: the :class:`loom_core.audit.AuditEvent`; it carries ids,
        actions and outcomes, never content, tokens or secret values.

    Called synchronously for every audit event after it was logged with
    ``target: "audit"``; all implementations are called. Keep it fast:
    forward to a queue rather than doing network I/O inline. Exceptions are
    logged and swallowed so an observer cannot break the request it audits.
    """


@hookspec
def loom_redaction_forms(value: bytes) -> Iterable[bytes]:
    """Return extra encodings of a resolved secret that must be redacted too.

    :param value: the resolved secret bytes. Do not store or log them.
    :returns: byte strings that, if seen in any output, reveal the value
        (e.g. a provider-specific escaping). Results of all implementations
        are merged with Loom's own forms (base64, JSON, URL, shell escapes).

    Called once per resolved secret when a run builds its redactor, before
    any job output is read.
    """
    return ()
