"""The kernel's own hooks behave as their specs say."""

from __future__ import annotations

import logging

import pytest

from loom_core.audit import AuditEvent, emit
from loom_core.contracts import BackendContext, Kind
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.host import PluginHost


class Recorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    @hookimpl
    def loom_register_backends(self, registry: object) -> None:
        registry.add_secrets("recorded", lambda ctx: ("built", dict(ctx.options)))  # type: ignore[attr-defined]

    @hookimpl
    def loom_audit_event(self, event: AuditEvent) -> None:
        self.events.append(event)


def test_loom_register_backends_fills_the_registry() -> None:
    """A plugin's loom_register_backends makes its backend buildable through the host."""
    host = PluginHost(environ={})
    host.register_plugin(Recorder(), name="recorder")
    built = host.create(Kind.SECRETS, "recorded", BackendContext(options={"a": 1}))
    assert built == ("built", {"a": 1})
    assert host.registry.get(Kind.SECRETS, "recorded") is not None


def test_registering_a_name_twice_conflicts() -> None:
    """Two plugins registering one kind:name is PLUGIN_CONFLICT."""
    host = PluginHost(environ={})
    host.register_plugin(Recorder(), name="first")
    with pytest.raises(LoomError) as info:
        host.register_plugin(Recorder(), name="second")
    assert info.value.code is ErrorCode.PLUGIN_CONFLICT


def test_loom_audit_event_reaches_plugins_and_the_audit_log(caplog: pytest.LogCaptureFixture) -> None:
    """emit() logs with target=audit and calls every loom_audit_event implementation."""
    host = PluginHost(environ={})
    recorder = Recorder()
    host.register_plugin(recorder, name="recorder")
    event = AuditEvent(action="chunk.delete", outcome="success", actor="admin", resource="01J00")
    with caplog.at_level(logging.INFO, logger="loom.audit"):
        emit(event, host.hook)
    assert recorder.events == [event]
    record = caplog.records[-1]
    assert record.audit["target"] == "audit"  # type: ignore[attr-defined]


def test_a_failing_audit_observer_does_not_break_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in an audit hook is logged, not raised into the audited request."""

    class Broken:
        @hookimpl
        def loom_audit_event(self, event: AuditEvent) -> None:
            raise RuntimeError("observer down")

    host = PluginHost(environ={})
    host.register_plugin(Broken(), name="broken")
    emit(AuditEvent(action="auth.failure", outcome="denied"), host.hook)
    assert "audit hook failed" in caplog.text


def test_backend_context_repr_names_no_environment_value() -> None:
    """A BackendContext carries the environment (master key, tokens) to factories; its repr, which a
    log line or a traceback may print, shows how many variables there are, never a name's value."""
    key = "bWFzdGVyLWtleS1zaG91bGQtbmV2ZXItcHJpbnQtMDAwMDA="
    context = BackendContext(options={"path": "x"}, environ={"LOOMEM_AT_REST_MASTER_KEY": key, "TOKEN": "t0k3n-value"})
    for text in (repr(context), str(context), f"{context}"):
        assert key not in text and "t0k3n-value" not in text
        assert "2 variables" in text
