"""The keepass provider passes the shared secrets-provider conformance suite (KDBX 4 and 3.1)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from loom_secrets_keepass.provider import CAPABILITIES
from loom_secrets_keepass.testing import add_entry, create_database, write_keyfile

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import SecretsProvider
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.testing.secrets import SecretsProviderSuite

# Characters a KeePass string field (XML text) cannot carry; such values go in an attachment.
_NOT_XML_TEXT = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class KeepassStore:
    """``secret_store``: a real database under ``tmp_path`` with alias ``kit``.

    Optional hooks: ``put_duplicate`` (same title twice in a group),
    ``put_empty`` and ``missing_field_ref``; no ``process_log`` (no child
    processes).
    """

    def __init__(self, tmp_path: Path, version: int, keyfile: bool) -> None:
        self.password = "kit-master-" + secrets.token_urlsafe(12)
        self.auth_material = [self.password.encode()]
        self.allowed_dirs: list[Path] = []
        self.path = tmp_path / "kit.kdbx"
        kf = write_keyfile(tmp_path / "kit.keyx") if keyfile else None
        self.kp = create_database(self.path, version=version, password=self.password, keyfile=kf)
        self.environ = {
            "LOOM_KEEPASS_DB_KIT_PATH": str(self.path),
            "LOOM_KEEPASS_DB_KIT_PASSWORD_ENV": "KIT_MASTER",
            "KIT_MASTER": self.password,
        }
        if kf is not None:
            self.environ |= {"LOOM_KEEPASS_DB_KIT_KEYFILE_ENV": "KIT_KEYFILE", "KIT_KEYFILE": str(kf)}
        # what unlocks the database in production; the kit puts it in os.environ to prove it is ignored
        self.auth_environ = {k: v for k, v in self.environ.items() if k != "LOOM_KEEPASS_DB_KIT_PATH"}

    def put(self, name: str, value: bytes) -> str:
        try:
            text: str | None = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and not _NOT_XML_TEXT.search(text):
            add_entry(self.kp, ("loom",), name, password=text)
            ref = f"keepass://kit/loom/{name}"
        else:
            add_entry(self.kp, ("loom",), name, attachments={"value.bin": value})
            ref = f"keepass://kit/loom/{name}#attachment:value.bin"
        self.kp.save()
        return ref

    def put_duplicate(self, name: str, value: bytes) -> str:
        """Two entries with one title in one group, as KeePass allows."""
        for _ in range(2):
            add_entry(self.kp, ("loom",), name, password=value.decode("utf-8"))
        self.kp.save()
        return f"keepass://kit/loom/{name}"

    def put_empty(self, name: str) -> str:
        add_entry(self.kp, ("loom",), name, username="someone", password="")
        self.kp.save()
        return f"keepass://kit/loom/{name}"

    def missing_field_ref(self, ref: str | None = None) -> str:
        if ref is None:
            add_entry(self.kp, ("loom",), "loom_kit_fieldless", password="has-a-password-only-6b20")
            self.kp.save()
            ref = "keepass://kit/loom/loom_kit_fieldless"
        return ref.partition("#")[0] + "#no_such_field"

    def _build(self, environ: dict[str, str]) -> SecretsProvider:
        provider: SecretsProvider = PluginHost(environ={}).create(
            "secrets", "keepass", BackendContext(environ=environ)
        )
        return provider

    def provider(self) -> SecretsProvider:
        return self._build(self.environ)

    def missing_ref(self) -> str:
        return "keepass://kit/loom/loom_kit_no_such_entry"

    def break_vault(self) -> None:
        self.path.unlink()  # the database file is gone (a moved or unmounted volume)

    def invalid_refs(self) -> list[str]:
        return [
            "keepass://kit",
            "keepass://kit//entry",
            "keepass://k%41t/loom/x",
            "keepass://kit/loom/x#",
            "keepass://kit/loom/%G1",
            "keepass://kit/loom/x#attachment:",
        ]

    def provider_without_auth(self) -> SecretsProvider:
        return self._build({k: v for k, v in self.environ.items() if "PASSWORD" not in k and "KEYFILE" not in k})

    def provider_with_bad_auth(self) -> SecretsProvider:
        return self._build({**self.environ, "KIT_MASTER": "not-the-kit-master-password"})


class TestKeepassKdbx4Password(SecretsProviderSuite):
    capabilities = CAPABILITIES

    @pytest.fixture
    def secret_store(self, tmp_path: Path) -> KeepassStore:
        return KeepassStore(tmp_path, version=4, keyfile=False)


class TestKeepassKdbx3PasswordAndKeyfile(SecretsProviderSuite):
    capabilities = CAPABILITIES

    @pytest.fixture
    def secret_store(self, tmp_path: Path) -> KeepassStore:
        return KeepassStore(tmp_path, version=3, keyfile=True)


def test_options_are_refused() -> None:
    """Any option is CONFIG_INVALID: databases and credentials come only from the environment."""
    with pytest.raises(LoomError) as info:
        PluginHost(environ={}).create("secrets", "keepass", BackendContext(options={"path": "/x.kdbx"}))
    assert info.value.code is ErrorCode.CONFIG_INVALID
