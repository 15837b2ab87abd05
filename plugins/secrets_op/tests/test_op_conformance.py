"""The op provider passes the shared secrets-provider conformance suite against the stand-in CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from loom_secrets_op.provider import CAPABILITIES
from loom_secrets_op.testing import FakeOp

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import SecretsProvider
from loom_core.plugins.host import PluginHost
from loom_core.testing.secrets import SecretsProviderSuite

KIT_TOKEN = "ops_kit-service-account-token-5e1b"


class OpStore:
    """``secret_store``: vault ``kit`` of a stand-in op; only the stand-in's directory is written.

    Optional hooks: ``put_duplicate``, ``put_empty``, ``missing_field_ref``, ``break_vault`` and
    ``process_log``.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.op = FakeOp(tmp_path / "op-bin")
        self.op.grant(KIT_TOKEN, ["kit"])
        self.allowed_dirs = [self.op.path.parent]  # the stand-in's own call log
        self.vault_paths = [self.op.state_path]  # the stand-in's vault (values base64 in JSON, by design)
        self.auth_material = [KIT_TOKEN.encode()]
        self.auth_environ = {"OP_SERVICE_ACCOUNT_TOKEN": KIT_TOKEN}
        self.environ = {"PATH": "/usr/bin:/bin", **self.auth_environ}

    def put(self, name: str, value: bytes) -> str:
        return self.op.put("kit", name, "password", value)

    def put_duplicate(self, name: str, value: bytes) -> str:
        return self.op.put_duplicate("kit", name, "password", value)

    def put_empty(self, name: str) -> str:
        return self.op.put("kit", name, "password", b"")

    def missing_field_ref(self, ref: str | None = None) -> str:
        if ref is None:
            ref = self.op.put("kit", "loom_kit_fieldless", "password", b"has-a-password-only-6b20")
        return ref.rpartition("/")[0] + "/no_such_field"

    def break_vault(self) -> None:
        """The 1Password CLI is gone (an image without it, a removed binary)."""
        self.op.path.unlink()

    def process_log(self) -> list[tuple[list[str], dict[str, str]]]:
        """argv and environment of every ``op`` the provider started (the stand-in records them)."""
        return [(call["argv"], call["env"]) for call in self.op.calls()]

    def _build(self, environ: dict[str, str]) -> SecretsProvider:
        provider: SecretsProvider = PluginHost(environ={}).create(
            "secrets", "op", BackendContext(options={"op_path": str(self.op.path)}, environ=environ)
        )
        return provider

    def provider(self) -> SecretsProvider:
        return self._build(self.environ)

    def missing_ref(self) -> str:
        return "op://kit/loom_kit_no_such_item/password"

    def invalid_refs(self) -> list[str]:
        return [
            "op://kit/item",
            "op://kit/a/b/c/d",
            "op://kit//password",
            "op://kit/item/password#x",
            "op://kit/item/pass%word",
            "op://kit/item/password?attribute=bogus",
        ]

    def provider_without_auth(self) -> SecretsProvider:
        return self._build({"PATH": "/usr/bin:/bin"})

    def provider_with_bad_auth(self) -> SecretsProvider:
        return self._build({**self.environ, "OP_SERVICE_ACCOUNT_TOKEN": "ops_wrong-token-7a9c"})


class TestOpProvider(SecretsProviderSuite):
    capabilities = CAPABILITIES

    @pytest.fixture
    def secret_store(self, tmp_path: Path) -> OpStore:
        return OpStore(tmp_path)
