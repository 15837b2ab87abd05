"""Start-up refuses a malformed, missing or wrong master key (real RocksDB)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from loom_core.config import LoomConfig
from loom_core.crypto import EncryptingRowCodec, PlaintextRowCodec
from loom_core.crypto.masterkey import parse_master_key
from loom_core.errors import ErrorCode, LoomError

from .helpers import ENV, codec_for, new_key_b64, open_storage


@pytest.mark.parametrize(
    "value",
    [
        "not base64 at all!",
        base64.b64encode(os.urandom(16)).decode(),
        base64.b64encode(os.urandom(31)).decode(),
        base64.b64encode(os.urandom(33)).decode(),
        base64.b64encode(os.urandom(32)).decode()[:-2],
        "   ",
        os.urandom(32).hex(),
    ],
    ids=["garbage", "16-bytes", "31-bytes", "33-bytes", "no-padding", "blank", "hex-not-base64"],
)
def test_malformed_master_key_refuses_start(tmp_path: Path, value: str) -> None:
    """Proves anything but 32 bytes of base64 in the variable refuses start-up with ENCRYPTION_KEY_INVALID,
    and the message names the variable but not the value."""
    storage = open_storage(tmp_path)
    try:
        with pytest.raises(LoomError) as info:
            codec_for(storage, {ENV: value})
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_INVALID
        assert ENV in info.value.message
        if value.strip():
            assert (value.strip() in str(info.value)) is False, "the rejected key value leaked into the error"
    finally:
        storage.close()


def test_url_safe_base64_accepted() -> None:
    """Proves the URL-safe base64 alphabet is accepted for the same 32 bytes."""
    raw = bytes([0xFB, 0xFF] * 16)
    assert parse_master_key(base64.urlsafe_b64encode(raw).decode(), ENV).reveal() == raw
    assert parse_master_key(base64.b64encode(raw).decode(), ENV).reveal() == raw


def test_no_key_is_plaintext_mode(tmp_path: Path) -> None:
    """Proves a fresh directory without a key runs in plaintext mode (encryption is opt-in)."""
    storage = open_storage(tmp_path)
    try:
        codec = codec_for(storage, {})
        assert isinstance(codec, PlaintextRowCodec)
        assert codec.status() == {"enabled": False, "cipher": None, "fingerprint": None}
    finally:
        storage.close()


@pytest.mark.parametrize("how", ["env-flag", "config"])
def test_expect_enabled_without_key_refuses_start(tmp_path: Path, how: str) -> None:
    """Proves LOOMEM_AT_REST_EXPECT_ENABLED=1 (or encryption.expect_enabled) without a key refuses start-up."""
    storage = open_storage(tmp_path)
    try:
        environ = {"LOOMEM_AT_REST_EXPECT_ENABLED": "1"} if how == "env-flag" else {}
        config = LoomConfig.model_validate({"encryption": {"expect_enabled": how == "config"}})
        with pytest.raises(LoomError) as info:
            codec_for(storage, environ, config)
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_MISSING
        assert ENV in info.value.message
    finally:
        storage.close()


def test_wrong_master_key_refuses_start_naming_expected_fingerprint(tmp_path: Path) -> None:
    """Proves a different master key refuses start-up with ENCRYPTION_KEY_MISMATCH naming the
    fingerprint the data was written with (and never the key)."""
    right, wrong = new_key_b64(), new_key_b64()
    storage = open_storage(tmp_path)
    try:
        codec = codec_for(storage, {ENV: right})
        assert isinstance(codec, EncryptingRowCodec)
        expected = codec.fingerprint
        codec.seal("s", b"chunk:L0:1", b"hello")
        with pytest.raises(LoomError) as info:
            codec_for(storage, {ENV: wrong})
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_MISMATCH
        assert expected in info.value.message
        assert info.value.details["expected_fingerprint"] == expected
        for key in (right, wrong):
            assert (key in repr(info.value) or key in str(info.value.details)) is False, "key leaked"
        assert codec_for(storage, {ENV: right}).fingerprint == expected
    finally:
        storage.close()


def test_missing_key_over_encrypted_data_refuses_start(tmp_path: Path) -> None:
    """Proves starting without a key over data written encrypted refuses with ENCRYPTION_KEY_MISSING,
    naming the expected fingerprint, instead of silently running in plaintext mode."""
    storage = open_storage(tmp_path)
    try:
        codec = codec_for(storage, {ENV: new_key_b64()})
        codec.seal("s", b"chunk:L0:1", b"hello")
        with pytest.raises(LoomError) as info:
            codec_for(storage, {})
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_MISSING
        assert codec.fingerprint in info.value.message
    finally:
        storage.close()


def test_plaintext_codec_refuses_sealed_rows(tmp_path: Path) -> None:
    """Proves the plaintext codec never hands out ciphertext as if it were content."""
    storage = open_storage(tmp_path)
    try:
        sealed = codec_for(storage, {ENV: new_key_b64()}).seal("s", b"k", b"hello")
    finally:
        storage.close()
    with pytest.raises(LoomError) as info:
        PlaintextRowCodec().open("s", b"k", sealed)
    assert info.value.code == ErrorCode.ENCRYPTION_KEY_MISSING


def test_master_key_from_secret_reference(tmp_path: Path) -> None:
    """Proves encryption.master_key_ref resolves through the secrets backend (env://)."""
    key = new_key_b64()
    config = LoomConfig.model_validate({"encryption": {"master_key_ref": "env://VAULTED_KEY"}})
    storage = open_storage(tmp_path)
    try:
        codec = codec_for(storage, {"VAULTED_KEY": key}, config)
        assert isinstance(codec, EncryptingRowCodec)
        assert codec.open("s", b"k", codec.seal("s", b"k", b"v")) == b"v"
    finally:
        storage.close()


def test_master_key_never_in_repr_or_logs(tmp_path: Path, secret_leak_check: object) -> None:
    """Proves the master key and data keys print as redacted and never reach logs or errors."""
    key = new_key_b64()
    raw = base64.b64decode(key)
    storage = open_storage(tmp_path)
    errors: list[BaseException] = []
    try:
        codec = codec_for(storage, {ENV: key})
        codec.seal("s", b"k", b"v")
        data_key = codec.keyring.current("s")
        try:
            codec_for(storage, {ENV: new_key_b64()})
        except LoomError as exc:
            errors.append(exc)
        try:
            codec.open("s", b"other", codec.seal("s", b"k", b"v"))
        except LoomError as exc:
            errors.append(exc)
        objects = [codec, codec.keyring, data_key, parse_master_key(key, ENV)]
        check = secret_leak_check
        for value, what in ((key, "master key (base64)"), (raw, "master key (raw)"), (raw.hex(), "master key (hex)")):
            check.assert_absent(value, what=what, exceptions=errors, objects=objects)  # type: ignore[attr-defined]
        check.assert_absent(data_key.reveal(), what="data key", exceptions=errors, objects=objects)  # type: ignore[attr-defined,union-attr]
    finally:
        storage.close()


def test_switching_cipher_over_encrypted_data_refuses_start(tmp_path: Path) -> None:
    """Proves the cipher is pluggable (a cipher registered by another plugin is used when
    encryption.cipher names it) and that data written with one cipher refuses to start with
    another configured, naming the cipher it was written with."""
    from loom_core.builtins.aes256gcm import Aes256Gcm
    from loom_core.hookspecs import hookimpl
    from loom_core.plugins.host import PluginHost

    class OtherCipher(Aes256Gcm):
        name = "othercipher"

    class OtherPlugin:
        @hookimpl
        def loom_register_backends(self, registry: object) -> None:
            registry.add_cipher("othercipher", lambda ctx: OtherCipher(), capabilities={"aead", "wrap"})  # type: ignore[attr-defined]

    key = new_key_b64()
    other = LoomConfig.model_validate({"encryption": {"cipher": "othercipher"}})
    storage = open_storage(tmp_path)
    try:
        host = PluginHost(environ={ENV: key})
        host.register_plugin(OtherPlugin(), "other-cipher-plugin")
        from loom_core.crypto import build_row_codec

        codec = build_row_codec(other, host, storage, {ENV: key})
        assert codec.cipher.name == "othercipher"
        codec.seal("s", b"k", b"v")
        with pytest.raises(LoomError) as info:
            codec_for(storage, {ENV: key})  # default config: aes256gcm
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_MISMATCH
        assert "othercipher" in info.value.message
    finally:
        storage.close()


def test_master_key_env_name_is_configurable(tmp_path: Path) -> None:
    """Proves encryption.master_key_env names the variable the key is read from (and only that one)."""
    config = LoomConfig.model_validate({"encryption": {"master_key_env": "MY_AT_REST_KEY"}})
    storage = open_storage(tmp_path)
    try:
        # naming another variable means the data is meant to be encrypted: missing, it is refused (the
        # default variable is not read), never a silent start in plaintext
        with pytest.raises(LoomError) as unset:
            codec_for(storage, {ENV: new_key_b64()}, config)
        assert unset.value.code == ErrorCode.ENCRYPTION_KEY_MISSING and "MY_AT_REST_KEY" in unset.value.message
        pasted = "c3" + "9f" * 31  # a hex key pasted where the variable's name belongs passes as a name
        pasted_config = LoomConfig.model_validate({"encryption": {"master_key_env": pasted}})
        other = open_storage(tmp_path / "other")
        try:
            with pytest.raises(LoomError) as echoed:
                codec_for(other, {}, pasted_config)
        finally:
            other.close()
        assert echoed.value.code == ErrorCode.ENCRYPTION_KEY_MISSING and pasted not in echoed.value.message
        codec = codec_for(storage, {"MY_AT_REST_KEY": new_key_b64()}, config)
        assert isinstance(codec, EncryptingRowCodec)
        with pytest.raises(LoomError) as info:
            codec_for(storage, {}, config)
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_MISSING and "MY_AT_REST_KEY" in info.value.message
    finally:
        storage.close()


class _NoCompaction:
    """Real RocksDB storage that does not declare ``compact`` (as a backend without it would)."""

    def __init__(self, storage: object) -> None:
        self._storage = storage
        self.capabilities = frozenset(storage.capabilities) - {"compact"}  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)


def test_encryption_refuses_a_storage_that_cannot_compact(tmp_path: Path) -> None:
    """Crypto-shredding drops a destroyed key by compaction: over a storage without ``compact`` a
    stream delete answered 500 (or, with a no-op compact, left the wrapped key on disk while status
    counted it destroyed). A key over such a storage is refused at start; without a key it opens."""
    storage = open_storage(tmp_path)
    try:
        with pytest.raises(LoomError) as info:
            codec_for(_NoCompaction(storage), {ENV: new_key_b64()})
        assert info.value.code is ErrorCode.CONFIG_INVALID
        assert "'compact' capability" in info.value.message and "_NoCompaction" in info.value.message
        assert isinstance(codec_for(_NoCompaction(storage), {}), PlaintextRowCodec)
    finally:
        storage.close()
