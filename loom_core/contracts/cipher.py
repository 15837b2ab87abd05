"""Cipher contract: authenticated encryption and key wrapping for envelopes."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Cipher(Protocol):
    """Authenticated encryption with associated data (AEAD).

    Guarantees every backend gives:

    * ``encrypt`` never returns output containing the plaintext, and two
      encryptions of the same plaintext differ (fresh nonce each time).
    * ``aad`` is required and non-empty (``CIPHER_AAD_REQUIRED``): it binds the
      ciphertext to where it belongs, so a ciphertext moved to another record
      fails to decrypt.
    * ``decrypt`` with the wrong key, wrong ``aad`` or any modified byte raises
      ``CIPHER_DECRYPT_FAILED``; it never returns unauthenticated bytes.
    * A key of the wrong size raises ``CIPHER_KEY_INVALID``.
    * Ciphertext starts with :attr:`magic`, so :meth:`is_ciphertext` tells it
      from legacy plaintext rows.
    * Keys never appear in ``repr``, ``str``, exceptions or logs.
    """

    name: str
    key_size: int
    magic: bytes
    capabilities: frozenset[str]

    def generate_key(self) -> bytes:
        """A fresh random key of :attr:`key_size` bytes."""
        ...

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Seal ``plaintext``; output is ``magic + nonce + ciphertext + tag``."""
        ...

    def decrypt(self, key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Open what :meth:`encrypt` sealed with the same key and ``aad``."""
        ...

    def wrap_key(self, kek: bytes, key: bytes, aad: bytes) -> bytes:
        """Seal a data-encryption key under a key-encryption key."""
        ...

    def unwrap_key(self, kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
        """Open a wrapped key; wrong ``kek`` raises ``CIPHER_DECRYPT_FAILED``."""
        ...

    def is_ciphertext(self, blob: bytes) -> bool:
        """Whether ``blob`` was produced by this cipher (magic prefix check)."""
        ...

    def fingerprint(self, key: bytes) -> str:
        """A one-way digest of ``key``, safe to log and store beside backups."""
        ...
