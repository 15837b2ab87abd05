"""The built-in ``env`` secrets provider passes the secrets conformance suite."""

from __future__ import annotations

import pytest

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import SecretRef, SecretsProvider
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.testing.secrets import SecretsProviderSuite


class EnvStore:
    """``secret_store`` for ``env``: entries are variables of the context's environment.

    Optional hooks: ``put_empty`` only (a variable has no fields, and one
    name cannot hold two variables; no child processes).
    """

    def __init__(self) -> None:
        self.environ: dict[str, str] = {"PATH": "/usr/bin"}
        self.allowed_dirs: list[object] = []

    def put(self, name: str, value: bytes) -> str:
        self.environ[name.upper()] = value.decode("utf-8")
        return f"env://{name.upper()}"

    def provider(self) -> SecretsProvider:
        provider: SecretsProvider = PluginHost(environ={}).create(
            "secrets", "env", BackendContext(environ=self.environ)
        )
        return provider

    def put_empty(self, name: str) -> str:
        self.environ[name.upper()] = ""
        return f"env://{name.upper()}"

    def missing_ref(self) -> str:
        return "env://LOOM_KIT_NOT_SET_ANYWHERE"

    def break_vault(self) -> None:
        self.environ.clear()

    def invalid_refs(self) -> list[str]:
        return ["env://", "env://1STARTS_WITH_DIGIT", "env://has space", "env://A-B", "env://A/B", "env://A#f"]


class TestEnvProvider(SecretsProviderSuite):
    capabilities = frozenset()

    @pytest.fixture
    def secret_store(self) -> EnvStore:
        return EnvStore()


def test_empty_variable_is_refused() -> None:
    """Proves an empty variable fails closed with SECRETS_VALUE_UNSAFE instead of resolving to b""."""
    provider = PluginHost(environ={}).create("secrets", "env", BackendContext(environ={"EMPTY": ""}))
    with pytest.raises(LoomError) as info:
        provider.resolve(SecretRef.parse("env://EMPTY"))
    assert info.value.code is ErrorCode.SECRETS_VALUE_UNSAFE


def test_reads_context_environ_not_process_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves the provider reads only BackendContext.environ, never os.environ."""
    monkeypatch.setenv("LOOM_KIT_PROCESS_ONLY", "process-only-value")
    provider = PluginHost(environ={}).create("secrets", "env", BackendContext(environ={}))
    with pytest.raises(LoomError) as info:
        provider.resolve(SecretRef.parse("env://LOOM_KIT_PROCESS_ONLY"))
    assert info.value.code is ErrorCode.SECRETS_NOT_FOUND


def test_options_are_refused() -> None:
    """Proves unknown options are a CONFIG_INVALID error rather than silently ignored."""
    with pytest.raises(LoomError) as info:
        PluginHost(environ={}).create("secrets", "env", BackendContext(options={"prefix": "X"}))
    assert info.value.code is ErrorCode.CONFIG_INVALID
