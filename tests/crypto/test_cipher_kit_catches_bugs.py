"""The cipher conformance kit fails on ciphers with the classic mistakes (so it can fail)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loom_core.builtins.aes256gcm import HEADER_SIZE, MAGIC, VERSION, Aes256Gcm
from loom_core.testing.cipher import CipherSuite

FIXED_NONCE = b"\x00" * 12


class FixedNonce(Aes256Gcm):
    """Reuses one nonce: the mistake that breaks GCM."""

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        self._check_key(key, "key")
        self._check_aad(aad)
        return MAGIC + VERSION + FIXED_NONCE + AESGCM(key).encrypt(FIXED_NONCE, plaintext, aad)


class IgnoresAad(Aes256Gcm):
    """Accepts aad but never authenticates it."""

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return super().encrypt(key, plaintext, b"constant")

    def decrypt(self, key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        self._check_aad(aad)
        return super().decrypt(key, ciphertext, b"constant")


class NoTagCheck(Aes256Gcm):
    """Returns bytes without verifying the tag (CTR-style decrypt)."""

    def decrypt(self, key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return super().decrypt(key, ciphertext, aad)
        except Exception:
            return ciphertext[HEADER_SIZE:-16]


class LeakyErrors(Aes256Gcm):
    """Puts the key into its error messages."""

    def decrypt(self, key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return super().decrypt(key, ciphertext, aad)
        except Exception as exc:
            raise ValueError(f"decrypt failed with key {key.hex()}") from exc


CASES: list[tuple[str, Any, str]] = [
    ("fixed nonce", FixedNonce(), "test_fresh_nonce_every_encryption"),
    ("aad ignored", IgnoresAad(), "test_aad_binds_ciphertext"),
    ("no tag check", NoTagCheck(), "test_every_single_byte_flip_fails"),
    ("key in errors", LeakyErrors(), "test_wrong_key_fails"),
]


@pytest.mark.parametrize(("label", "cipher", "test_name"), CASES, ids=[c[0] for c in CASES])
def test_kit_fails_broken_cipher(label: str, cipher: Any, test_name: str) -> None:
    """Proves each broken cipher fails the kit test written for its mistake, while the real one passes it."""
    suite = CipherSuite()
    check: Callable[[Any], None] = getattr(suite, test_name)
    check(Aes256Gcm())  # the correct backend passes
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check(cipher)


def test_generate_key_sizes_are_checked() -> None:
    """Proves the kit notices a generate_key of the wrong size."""

    class ShortKeys(Aes256Gcm):
        def generate_key(self) -> bytes:
            return os.urandom(16)

    with pytest.raises((AssertionError, pytest.fail.Exception)):
        CipherSuite().test_generate_key_is_random_and_sized(ShortKeys())


COUNTER_CIPHER = '''
import itertools
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from loom_core.builtins.aes256gcm import MAGIC, VERSION, Aes256Gcm
from loom_core.hookspecs import hookimpl

_counter = itertools.count(1)  # restarts with every process


class CounterNonce(Aes256Gcm):
    name = "kitcounter"
    capabilities = frozenset({"aead", "wrap"})

    def encrypt(self, key, plaintext, aad):
        self._check_key(key, "key")
        self._check_aad(aad)
        nonce = next(_counter).to_bytes(12, "big")
        return MAGIC + VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


@hookimpl
def loom_register_backends(registry):
    registry.add_cipher("kitcounter", lambda ctx=None: CounterNonce(), capabilities={"aead", "wrap"},
                        description="per-process counter nonces (broken on purpose)")
'''


def test_kit_catches_nonces_that_restart_with_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A counter nonce passes the single-process check (10 000 distinct outputs) but repeats after
    every restart; the cross-process test builds the cipher, installed as a real distribution, in two
    fresh processes and fails it. The built-in passes the same test in its conformance run."""
    (tmp_path / "kit_counter_cipher.py").write_text(COUNTER_CIPHER)
    info = tmp_path / "kit_counter_cipher-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kit-counter-cipher\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loom.cipher]\nkitcounter = kit_counter_cipher\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    import kit_counter_cipher  # type: ignore[import-not-found]

    cipher = kit_counter_cipher.CounterNonce()
    CipherSuite().test_fresh_nonce_every_encryption(cipher)  # one process: looks fine
    with pytest.raises(AssertionError, match="repeated between processes"):
        CipherSuite().test_fresh_nonces_across_processes(cipher)
