"""keepass:// references resolve to the exact stored bytes, in every database flavour."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from loom_secrets_keepass.provider import KeepassProvider

from loom_core.contracts import BackendContext, Kind
from loom_core.contracts.secrets import SecretRef, SecretsProvider, SecretValue
from loom_core.plugins.host import PluginHost

Resolve = Callable[[str], SecretValue]


def test_default_field_is_the_password(resolve: Resolve, values: SimpleNamespace) -> None:
    """Without ``#field`` the entry's password comes back, byte for byte."""
    assert resolve("keepass://main/ci/db/postgres").reveal() == values.secret.encode()


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("password", "pg-Secret-value-0001"),
        ("username", "pg-admin"),
        ("UserName", "pg-admin"),
        ("url", "https://db.internal:5432"),
        ("title", "postgres"),
        ("api%20token", "custom-token-value-42"),
        ("api token", "custom-token-value-42"),
        ("quote%22key", "quoted-key-value"),
    ],
)
def test_named_fields(resolve: Resolve, fragment: str, expected: str) -> None:
    """Standard fields (lower-case or KeePass spelling) and custom string properties by name."""
    assert resolve(f"keepass://main/ci/db/postgres#{fragment}").reveal() == expected.encode()


def test_multiline_notes_keep_their_line_breaks(resolve: Resolve, values: SimpleNamespace) -> None:
    """Notes come back with their CRLF/LF breaks and quotes untouched."""
    assert resolve("keepass://main/ci/db/postgres#notes").reveal() == values.notes.encode()


def test_attachment_returns_raw_bytes(resolve: Resolve, values: SimpleNamespace) -> None:
    """``#attachment:<file>`` returns the attachment's binary content (NULs and all)."""
    assert resolve("keepass://main/ci/db/postgres#attachment:client.pem").reveal() == values.attachment


def test_unicode_value_is_utf8(resolve: Resolve, values: SimpleNamespace) -> None:
    """Non-ASCII values are returned UTF-8 encoded."""
    assert resolve("keepass://main/ci/unicode").reveal() == values.unicode.encode("utf-8")


def test_trailing_line_breaks_are_kept(resolve: Resolve) -> None:
    """A value ending in LF or CRLF comes back with it; nothing is stripped."""
    assert resolve("keepass://main/ci/trailing").reveal() == b"value-ends-in-newline\n"
    assert resolve("keepass://main/ci/trailing#crlf").reveal() == b"a-b-c\r\n"


def test_root_level_entry(resolve: Resolve) -> None:
    """``keepass://ALIAS/Entry`` names an entry directly in the root group."""
    assert resolve("keepass://main/root-entry").reveal() == b"root-level-secret"


def test_percent_encoded_slash_and_hash_in_names(resolve: Resolve) -> None:
    """Group and entry names holding '/' and '#' are reached with %2F and %23."""
    ref = "keepass://main/team%2Fa/x%23y/svc%2F1%232"
    assert resolve(ref).reveal() == b"escaped-names-secret"


def test_alias_spelling_maps_to_the_same_variables(main_db: Any) -> None:
    """Alias ``MAIN`` and ``main`` read the same LOOM_KEEPASS_DB_MAIN_* settings."""
    p = main_db.provider()
    try:
        assert p.resolve(SecretRef.parse("keepass://MAIN/root-entry")).reveal() == b"root-level-secret"
    finally:
        p.close()


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("creds", ["password", "keyfile", "both"])
def test_kdbx_versions_and_credential_kinds(variants: dict[tuple[int, str], Any], version: int, creds: str) -> None:
    """KDBX 3.1/AES-KDF and KDBX 4/Argon2 open with a password, a keyfile, or both; all fields work."""
    db = variants[(version, creds)]
    p: KeepassProvider = db.provider()
    try:

        def get(raw: str) -> bytes:
            return p.resolve(SecretRef.parse(raw)).reveal()

        assert get(f"keepass://{db.alias}/ci/api") == f"{db.alias}-secret-value".encode()
        assert get(f"keepass://{db.alias}/ci/api#username") == b"bot"
        assert get(f"keepass://{db.alias}/ci/api#k") == b"custom-v"
        assert get(f"keepass://{db.alias}/ci/cert#attachment:c.der") == b"\x00\x01binary attachment bytes\xff\n"
        assert p.opens == 1
    finally:
        p.close()


def test_kdbx_versions_are_what_they_claim(variants: dict[tuple[int, str], Any]) -> None:
    """The fixtures really are KDBX 3.1 with AES-KDF and KDBX 4 with Argon2 (checked by header)."""
    from pykeepass import PyKeePass

    v3 = variants[(3, "password")]
    kp3 = PyKeePass(str(v3.path), password=v3.environ["KP_V3_PASSWORD_MASTER"])
    assert (kp3.version, kp3.kdf_algorithm) == ((3, 1), "aeskdf")
    v4 = variants[(4, "password")]
    kp4 = PyKeePass(str(v4.path), password=v4.environ["KP_V4_PASSWORD_MASTER"])
    assert (kp4.version, kp4.kdf_algorithm) == ((4, 0), "argon2")


def test_plugin_host_builds_the_provider_from_its_entry_point(main_db: Any) -> None:
    """The installed ``loom.secrets: keepass`` entry point yields a SecretsProvider reading ctx.environ."""
    host = PluginHost(environ={})
    p = host.create(Kind.SECRETS, "keepass", BackendContext(environ=main_db.environ))
    try:
        assert isinstance(p, SecretsProvider)
        assert p.scheme == "keepass"
        assert p.resolve(SecretRef.parse("keepass://main/root-entry")).reveal() == b"root-level-secret"
    finally:
        p.close()
