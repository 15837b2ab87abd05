"""Plugin hooks around a run: loom_startup/loom_shutdown, and loom_redaction_forms feeding the redactor."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from loom_core.contracts.secrets import SecretRef, SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.host import PluginHost

from .conftest import run_inprocess

VALUE = "hooked-secret-value-6e0f"


class Recorder:
    """An in-process plugin that records lifecycle calls and adds a reversed form."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    @hookimpl
    def loom_startup(self, component: str, config: Any) -> None:
        self.calls.append(("startup", component, config))

    @hookimpl
    def loom_shutdown(self, component: str) -> None:
        self.calls.append(("shutdown", component, None))

    @hookimpl
    def loom_redaction_forms(self, value: bytes) -> Iterable[bytes]:
        return [value[::-1]]


def _host(plugin: object) -> PluginHost:
    host = PluginHost(environ={})
    host.register_plugin(plugin, "recorder-test")
    return host


def test_startup_shutdown_and_extra_forms(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """startup/shutdown get component="workflow"; a plugin's extra form is redacted too."""
    path = write_workflow(
        """\
        jobs:
          a:
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script: ['rev < "$DATABASE_PASSWORD"']
        """
    )
    plugin = Recorder()
    result: Any
    result, out, err = run_inprocess(path, {"DB_PW": VALUE}, host=_host(plugin))
    assert result.exit_code == 0, err
    assert (VALUE[::-1].encode() in out) is False, "plugin-declared form not redacted"
    assert b"[REDACTED:SECRET_DATABASE_PASSWORD]" in out
    assert [(c[0], c[1]) for c in plugin.calls] == [("startup", "workflow"), ("shutdown", "workflow")]
    assert plugin.calls[0][2].secrets.min_length == 8


def test_shutdown_after_failure(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """loom_shutdown is called when a resolution failure aborts the run."""
    path = write_workflow("jobs:\n  a: {secrets: {S: {ref: 'env://UNSET_X'}}, script: ['true']}\n")
    plugin = Recorder()
    result: Any
    result, _, _ = run_inprocess(path, {}, host=_host(plugin))
    assert result.error.code == ErrorCode.SECRETS_NOT_FOUND
    assert [c[0] for c in plugin.calls] == ["startup", "shutdown"]


class LeakyProvider:
    """Resolves `leaky://good`, then fails on anything else quoting the earlier value."""

    scheme = "leaky"
    capabilities: frozenset[str] = frozenset()

    def validate(self, ref: SecretRef) -> None:
        pass

    def resolve(self, ref: SecretRef) -> SecretValue:
        if ref.path == "good":
            return SecretValue(VALUE.encode())
        raise LoomError(ErrorCode.SECRETS_AUTH_INVALID, f"vault said: token {VALUE} rejected")

    def close(self) -> None:
        raise RuntimeError(f"close failed with {VALUE}")


class LeakyPlugin:
    @hookimpl
    def loom_register_backends(self, registry: Any) -> None:
        registry.add_secrets("leaky", lambda ctx: LeakyProvider())


def test_provider_error_and_lifecycle_messages_are_redacted(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A provider error quoting a resolved value is redacted; a close failure prints no value."""
    path = write_workflow(
        "jobs:\n  a:\n    secrets: {GOOD: {ref: 'leaky://good'}, BAD: {ref: 'leaky://bad'}}\n"
        "    script: ['touch a.marker']\n"
    )
    result: Any
    result, out, err = run_inprocess(path, {}, host=_host(LeakyPlugin()))
    assert result.error.code == ErrorCode.SECRETS_AUTH_INVALID
    assert (VALUE in result.error.message) is False, "value in provider error"
    assert "[REDACTED:SECRET_GOOD]" in result.error.message and "leaky://bad" in result.error.message
    raw = (tmp_path / "receipt.json").read_bytes()
    assert (VALUE.encode() in raw + out + err) is False, "value in receipt or console"
    assert b"failed to close: RuntimeError" in err
    assert not (tmp_path / "a.marker").exists()


class CodedCloseProvider(LeakyProvider):
    def close(self) -> None:
        raise LoomError(ErrorCode.SECRETS_PROVIDER_FAILED, f"could not release handles for: {VALUE}")


class CodedClosePlugin:
    @hookimpl
    def loom_register_backends(self, registry: Any) -> None:
        registry.add_secrets("leaky", lambda ctx: CodedCloseProvider())


def test_a_coded_close_failure_shows_its_code_only(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """Providers close at the end of the run, when its values are no longer held to mask a message
    with; a coded close error quoting a value (here one a failed job had resolved) shows its code."""
    path = write_workflow(
        "jobs:\n  a:\n    secrets: {GOOD: {ref: 'leaky://good'}, BAD: {ref: 'leaky://bad'}}\n"
        "    script: ['true']\n"
    )
    _result, out, err = run_inprocess(path, {}, host=_host(CodedClosePlugin()))
    assert b"failed to close: SECRETS_PROVIDER_FAILED" in err
    assert (VALUE.encode() in out + err + (tmp_path / "receipt.json").read_bytes()) is False
