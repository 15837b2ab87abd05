"""The dir provider passes Loom's secrets conformance kit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from loom_secrets_dir import plugin

from loom_core.contracts import BackendContext, Kind
from loom_core.contracts.secrets import SecretsProvider
from loom_core.plugins.host import PluginHost
from loom_core.testing.secrets import SecretsProviderSuite


def make_host() -> PluginHost:
    host = PluginHost(environ={})
    if not any(info.name == "dir" for info in host.installed(Kind.SECRETS)):
        host.register_plugin(plugin, name="loom.secrets:dir")  # running from a source checkout
    return host


class DirStore:
    """The ``secret_store`` the kit asks for: a directory of files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.allowed_dirs = [root]
        self.vault_paths = [root]  # the secret files themselves: plaintext by design

    def put(self, name: str, value: bytes) -> str:
        (self.root / name).write_bytes(value)
        return f"dir://{name}"

    def provider(self) -> SecretsProvider:
        backend: SecretsProvider = make_host().create(
            "secrets", "dir", BackendContext(options={"root": str(self.root)})
        )
        return backend

    def put_empty(self, name: str) -> str:
        (self.root / name).write_bytes(b"")
        return f"dir://{name}"

    def missing_ref(self) -> str:
        return "dir://no_such_file"

    def break_vault(self) -> None:
        shutil.rmtree(self.root)

    def invalid_refs(self) -> list[str]:
        return ["dir://../etc/passwd", "dir://a/b", "dir://.hidden", "dir://name#field"]


class TestDirProvider(SecretsProviderSuite):
    capabilities = frozenset({"binary"})

    @pytest.fixture
    def secret_store(self, tmp_path: Path) -> DirStore:
        root = tmp_path / "secrets"
        root.mkdir()
        return DirStore(root)
