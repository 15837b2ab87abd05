"""A third-party secrets provider's credentials are protected once it declares them (its AuthPolicy).

The probe this answers: a ``vault://`` provider reading ``VAULT_TOKEN`` from ``ctx.environ``
while every job inherited ``VAULT_TOKEN`` and printed it, and ``env://VAULT_TOKEN`` resolved.
With the provider's policy naming ``VAULT_TOKEN`` as its credential: no job inherits it,
``env://`` is refused it, ``loom check`` refuses a workflow variable of that name, and
providers that did not declare a variable never see it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import AuthPolicy, SecretRef, SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.host import PluginHost
from loom_core.plugins.registry import BackendRegistry
from loom_core.secrets.providers import ProviderPool
from loom_core.workflow.check import check_document
from loom_core.workflow.loader import load_file

from .conftest import run_inprocess

VAULT_TOKEN = "hvs.runner-vault-credential-5c1e"  # a made-up test credential
VAULT_VALUE = b"vault-resolved-value-8d2f"
VAULT_POLICY = AuthPolicy(credentials=frozenset({"VAULT_TOKEN"}), reads=frozenset({"VAULT_ADDR"}))


class VaultProvider:
    """``vault://`` stub: resolves only when its context holds the token; records the context."""

    scheme = "vault"
    capabilities = frozenset({"auth"})

    def __init__(self, ctx: BackendContext) -> None:
        self.environ = dict(ctx.environ)

    def validate(self, ref: SecretRef) -> None:
        if ref.scheme != self.scheme:
            raise LoomError(ErrorCode.SECRETS_REF_INVALID, f"{ref.raw}: not a vault:// reference")

    def resolve(self, ref: SecretRef) -> SecretValue:
        self.validate(ref)
        if self.environ.get("VAULT_TOKEN") != VAULT_TOKEN:
            raise LoomError(ErrorCode.SECRETS_AUTH_MISSING, f"{ref.raw}: VAULT_TOKEN is not set")
        return SecretValue(VAULT_VALUE)

    def close(self) -> None:
        return None


class VaultPlugin:
    """Registers ``vault`` with ``policy``, and ``peek`` (no policy) to see what it is given."""

    def __init__(self, policy: AuthPolicy | None = VAULT_POLICY) -> None:
        self.policy = policy
        self.contexts: dict[str, BackendContext] = {}

    def _build(self, scheme: str) -> Callable[[BackendContext], VaultProvider]:
        def factory(ctx: BackendContext) -> VaultProvider:
            self.contexts[scheme] = ctx
            provider = VaultProvider(ctx)
            provider.scheme = scheme
            return provider

        return factory

    @hookimpl
    def loom_register_backends(self, registry: BackendRegistry) -> None:
        registry.add_secrets("vault", self._build("vault"), capabilities=frozenset({"auth"}), auth_policy=self.policy)
        registry.add_secrets("peek", self._build("peek"), capabilities=frozenset({"auth"}))


def _host(plugin: VaultPlugin) -> PluginHost:
    host = PluginHost(environ={})
    host.register_plugin(plugin, "vault-test")
    return host


def _environ(**extra: str) -> dict[str, str]:
    return {"VAULT_TOKEN": VAULT_TOKEN, "VAULT_ADDR": "https://vault.invalid:8200", **extra}


def _run(path: Path, environ: Mapping[str, str], plugin: VaultPlugin) -> tuple[Any, bytes, bytes]:
    """The run's result and output; a workflow refused before running gives its error as result."""
    try:
        return run_inprocess(path, environ, host=_host(plugin))
    except LoomError as exc:

        class Refused:
            error = exc

        return Refused(), b"", b""


def test_no_job_inherits_a_declared_credential(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """The probe end to end: job ``a`` (no secrets) and job ``b`` (a vault:// secret) print
    ``$VAULT_TOKEN``; both see it unset, the provider still got it and resolved, and the
    token is nowhere in the output or the receipt. A variable the policy only reads is not a
    credential: jobs inherit it and env:// reads it, as any undeclared variable."""
    path = write_workflow(
        """\
        jobs:
          a:
            secrets:
              ADDR: {ref: "env://VAULT_ADDR", file: false}
              PLAIN: {ref: "env://PLAIN_VALUE", file: false}
            script:
              - 'echo "a sees [$VAULT_TOKEN] at [$VAULT_ADDR]"'
              - 'test "$ADDR" = https://vault.invalid:8200 && test "$PLAIN" = plain-value-0b7c && echo "a read both"'
          b:
            needs: [a]
            secrets:
              DB: {ref: "vault://kv/db"}
            script: ['echo "b sees [$VAULT_TOKEN]"; test -s "$DB" && echo "b has DB"']
        """
    )
    result, out, err = _run(path, _environ(PLAIN_VALUE="plain-value-0b7c"), VaultPlugin())
    assert result.error is None, result.error
    # env:// sources are never inherited under their own name; the secret carries the value
    assert b"a sees [] at []" in out and b"a read both" in out
    assert b"b sees []" in out and b"b has DB" in out
    receipt = (tmp_path / "receipt.json").read_bytes()
    assert VAULT_TOKEN.encode() not in out + err + receipt
    assert [job["status"] for job in json.loads(receipt)["jobs"]] == ["success", "success"]


def test_a_registered_providers_credential_is_withheld_even_when_no_reference_uses_it(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A workflow with no vault:// reference at all: the registered backend's credential is
    still not inherited (protection does not depend on the provider being built)."""
    path = write_workflow("jobs:\n  a:\n    script: ['echo \"sees [$VAULT_TOKEN]\"']\n")
    result, out, err = _run(path, _environ(), VaultPlugin())
    assert result.error is None, result.error
    assert b"sees []" in out
    assert VAULT_TOKEN.encode() not in out + err + (tmp_path / "receipt.json").read_bytes()


@pytest.mark.parametrize("with_vault_reference", [False, True])
def test_env_reference_to_a_declared_credential_is_access_denied(
    tmp_path: Path, write_workflow: Callable[..., Path], with_vault_reference: bool
) -> None:
    """``env://VAULT_TOKEN`` is SECRETS_ACCESS_DENIED before any job runs, like
    ``env://OP_SERVICE_ACCOUNT_TOKEN``: whether or not the workflow also references vault://
    (in a later job, so the env provider is built first), and never showing the token."""
    later = (
        "  b:\n    secrets: {DB: {ref: \"vault://kv/db\"}}\n    script: ['true']\n" if with_vault_reference else ""
    )
    path = write_workflow(
        "jobs:\n  a:\n    secrets: {LOOT: {ref: \"env://VAULT_TOKEN\", file: false}}\n"
        "    script: ['echo \"loot=$LOOT\"; touch ran.marker']\n" + later
    )
    result, out, err = _run(path, _environ(), VaultPlugin())
    assert result.error is not None and result.error.code is ErrorCode.SECRETS_ACCESS_DENIED
    assert not (tmp_path / "ran.marker").exists()
    assert VAULT_TOKEN not in result.error.message
    assert VAULT_TOKEN.encode() not in out + err


def test_check_refuses_a_workflow_variable_named_after_a_declared_credential(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """``loom check`` (``check_document`` with the host's providers) refuses ``VAULT_TOKEN`` as a
    workflow or job variable, as it refuses ``OP_SERVICE_ACCOUNT_TOKEN``; a run refuses it too."""
    path = write_workflow(
        """\
        variables:
          VAULT_TOKEN: "written-into-the-workflow"
        jobs:
          a:
            variables: {VAULT_TOKEN: "again"}
            script: ['true']
        """
    )
    pool = ProviderPool(_host(VaultPlugin()), _environ())
    try:
        problems = check_document(load_file(path), pool)
    finally:
        pool.close()
    refused = {p.to_dict()["path"]: p for p in problems}
    assert set(refused) == {"$.variables.VAULT_TOKEN", "$.jobs.a.variables.VAULT_TOKEN"}
    assert all(p.code is ErrorCode.WORKFLOW_SCHEMA_INVALID for p in problems)
    assert all("credential" in p.message for p in problems)
    result, _, _ = _run(path, _environ(), VaultPlugin())
    assert result.error is not None and result.error.code is ErrorCode.WORKFLOW_SCHEMA_INVALID


def test_a_provider_sees_only_the_variables_its_policy_allows(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """The vault provider gets its credential and what it reads, nothing else (not another
    provider's token, not an unrelated secret); ``peek``, registered without a policy, gets
    no variable at all, so it cannot resolve without declaring its token. Both contexts
    carry the protected names, and their reprs show no value."""
    path = write_workflow(
        """\
        jobs:
          a:
            secrets:
              DB: {ref: "vault://kv/db"}
            script: ['true']
          b:
            secrets:
              PEEK: {ref: "peek://kv/db"}
            script: ['touch peek.marker']
        """
    )
    plugin = VaultPlugin()
    environ = _environ(OP_SERVICE_ACCOUNT_TOKEN="ops_other-provider-token-1f3a", UNRELATED_SECRET="unrelated-4e9d")
    result, _, _ = _run(path, environ, plugin)
    assert set(plugin.contexts["vault"].environ) == {"VAULT_TOKEN", "VAULT_ADDR"}
    assert dict(plugin.contexts["peek"].environ) == {}
    assert result.error is not None and result.error.code is ErrorCode.SECRETS_AUTH_MISSING
    assert "peek://" in result.error.message and not (tmp_path / "peek.marker").exists()
    for ctx in plugin.contexts.values():
        assert {"VAULT_TOKEN", "OP_SERVICE_ACCOUNT_TOKEN"} <= ctx.protected
        assert ctx.is_protected("LOOM_KEEPASS_DB_ANY_PATH")
        assert "VAULT_ADDR" not in ctx.protected and not ctx.is_protected("UNRELATED_SECRET")
        assert VAULT_TOKEN not in repr(ctx) and "unrelated-4e9d" not in repr(ctx)


def test_an_undeclared_credential_is_not_seen_and_fails_closed(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """The probe's provider as written (no policy): it no longer reads VAULT_TOKEN behind the
    kernel's back; it fails closed with its own SECRETS_AUTH_MISSING instead."""
    path = write_workflow("jobs:\n  b:\n    secrets: {DB: {ref: \"vault://kv/db\"}}\n    script: ['true']\n")
    plugin = VaultPlugin(policy=None)
    result, _, _ = _run(path, _environ(), plugin)
    assert dict(plugin.contexts["vault"].environ) == {}
    assert result.error is not None and result.error.code is ErrorCode.SECRETS_AUTH_MISSING


def test_indirection_targets_reach_the_provider_and_are_protected() -> None:
    """A policy's settings (by prefix) and the variable an indirection setting names reach the
    provider; the named variable is then protected like a credential."""
    policy = AuthPolicy(setting_prefixes=("LOOM_VLT_",), indirection_suffixes=("_TOKEN_ENV",))
    environ = {
        "LOOM_VLT_MAIN_ADDR": "https://vault.invalid",
        "LOOM_VLT_MAIN_TOKEN_ENV": " MY_VAULT_PW ",
        "MY_VAULT_PW": "indirect-credential-2a6b",
        "PATH": "/usr/bin",
    }
    plugin = VaultPlugin(policy=policy)
    pool = ProviderPool(_host(plugin), environ)
    try:
        pool.get("vault")
        assert pool.protected() >= {"LOOM_VLT_MAIN_ADDR", "LOOM_VLT_MAIN_TOKEN_ENV", "MY_VAULT_PW"}
        assert "PATH" not in pool.protected()
    finally:
        pool.close()
    assert set(plugin.contexts["vault"].environ) == {"LOOM_VLT_MAIN_ADDR", "LOOM_VLT_MAIN_TOKEN_ENV", "MY_VAULT_PW"}


def test_a_provider_reading_an_undeclared_variable_is_told_why(tmp_path: Path) -> None:
    """A factory that reads ``ctx.environ["X"]`` without declaring X fails closed, and the error says
    that providers see only what their AuthPolicy declares (not just "KeyError")."""

    class Strict:
        @hookimpl
        def loom_register_backends(self, registry: BackendRegistry) -> None:
            registry.add_secrets("strict", lambda ctx: ctx.environ["STRICT_TOKEN"])

    host = PluginHost(environ={})
    host.register_plugin(Strict(), "strict-test")
    pool = ProviderPool(host, {"STRICT_TOKEN": "set-but-undeclared-7e1f"})
    with pytest.raises(LoomError) as info:
        pool.get("strict")
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_FAILED
    assert "AuthPolicy" in info.value.message and "set-but-undeclared" not in info.value.message


def test_a_provider_raising_a_foreign_exception_is_located_not_quoted(tmp_path: Path) -> None:
    """``resolve`` raising RuntimeError: the error names the type and the place it was raised (the
    plugin author's lead), never the exception's text, which may hold a value."""
    class Crashing:
        scheme = "crash"
        capabilities: frozenset[str] = frozenset()

        def validate(self, ref: SecretRef) -> None:
            return None

        def resolve(self, ref: SecretRef) -> object:
            raise RuntimeError("vault said: value-in-text-5d2a")

        def close(self) -> None:
            return None

    class Plugin:
        @hookimpl
        def loom_register_backends(self, registry: BackendRegistry) -> None:
            registry.add_secrets("crash", lambda ctx: Crashing(), auth_policy=AuthPolicy())

    host = PluginHost(environ={})
    host.register_plugin(Plugin(), "crash-test")
    from loom_core.secrets.providers import resolve_reference

    with pytest.raises(LoomError) as info:
        resolve_reference("crash://x", host, {}, setting="server.auth_token_ref", timeout=5)
    message = info.value.message
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_FAILED
    assert "RuntimeError in test_auth_policy.py:" in message and "(resolve)" in message
    assert "value-in-text-5d2a" not in message
