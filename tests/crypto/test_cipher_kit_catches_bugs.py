"""The cipher conformance kit fails on ciphers with the classic mistakes (so it can fail)."""

from __future__ import annotations

import os
from collections.abc import Callable
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
