"""The built-in ``aes256gcm`` cipher: AES-256-GCM with random 96-bit nonces.

Output layout (all lengths fixed, so parsing needs no length fields)::

    magic (4) | version (1) | nonce (12) | ciphertext | tag (16)

The magic prefix lets readers tell encrypted rows from legacy plaintext rows;
the version byte leaves room for a future layout without guessing. Random
nonces are safe for AES-GCM up to about 2**32 encryptions under one key, far
beyond what one stream's data key seals in practice.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl

MAGIC = b"LMc\x01"
VERSION = b"\x01"
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
HEADER_SIZE = len(MAGIC) + len(VERSION) + NONCE_SIZE
_FINGERPRINT_LABEL = b"loom.cipher.aes256gcm.fingerprint.v1"
_WRAP_DOMAIN = b"loom.wrap.v1:"


_NONCE_BLOCK = 256
#: Fresh random nonces, one ``os.urandom`` call per block. ``deque.popleft`` is
#: atomic under the GIL, so threads never receive the same nonce.
_nonces: deque[bytes] = deque()


def _nonce() -> bytes:
    """A fresh random 96-bit nonce (from the OS CSPRNG, drawn in blocks)."""
    while True:
        try:
            return _nonces.popleft()
        except IndexError:
            block = os.urandom(NONCE_SIZE * _NONCE_BLOCK)
            _nonces.extend(block[i : i + NONCE_SIZE] for i in range(0, len(block), NONCE_SIZE))


def _reset_nonces_after_fork() -> None:
    """A forked child must not hand out the nonces its parent also holds."""
    _nonces.clear()


os.register_at_fork(after_in_child=_reset_nonces_after_fork)


_AEADS: dict[bytes, AESGCM] = {}
_AEADS_MAX = 1024
_PREFIX = MAGIC + VERSION
_PREFIX_LEN = len(_PREFIX)
_MIN_SIZE = HEADER_SIZE + TAG_SIZE


def _aead(key: bytes) -> AESGCM:
    """One AESGCM context per key: building it (key schedule) costs more than sealing a row."""
    aead = _AEADS.get(key)
    if aead is None:
        if len(_AEADS) >= _AEADS_MAX:
            _AEADS.clear()
        aead = _AEADS[key] = AESGCM(key)
    return aead


class KeyContext:
    """One key bound to its AES context: the per-row hot path (capability ``keyed``).

    Same output format and checks as :meth:`Aes256Gcm.encrypt` / ``decrypt``,
    without re-validating the key on every call.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "KeyContext(aes256gcm, key=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("KeyContext cannot be pickled")

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        if not aad:
            Aes256Gcm._check_aad(aad)
        nonce = _nonce()
        return b"".join((_PREFIX, nonce, self._aead.encrypt(nonce, plaintext, aad)))

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        if not aad:
            Aes256Gcm._check_aad(aad)
        if len(ciphertext) >= _MIN_SIZE and ciphertext[:_PREFIX_LEN] == _PREFIX:
            try:  # plain slicing: cheaper than memoryview bookkeeping for row-sized values
                return self._aead.decrypt(ciphertext[_PREFIX_LEN:HEADER_SIZE], ciphertext[HEADER_SIZE:], aad)
            except InvalidTag:
                raise LoomError(
                    ErrorCode.CIPHER_DECRYPT_FAILED,
                    "authentication failed: wrong key, modified bytes, or a value moved to another record",
                ) from None
        Aes256Gcm._malformed(ciphertext)

    def split_decrypt(self) -> tuple[bytes, int, Callable[[bytes, bytes, bytes], bytes]]:
        """``(prefix, nonce_size, decrypt)`` for callers that parse the output themselves.

        The output is ``prefix | nonce | ciphertext+tag``; ``decrypt(nonce,
        ciphertext+tag, aad)`` verifies the tag and raises (never returns) on any
        failure, with an exception that is not a ``LoomError``: the caller must
        check the prefix and that ``nonce`` has ``nonce_size`` bytes, pass a non-empty
        ``aad``, and report a failure through :meth:`decrypt`, which names the
        reason. It lets a row codec open a row in one Python frame (the per-row
        read hot path); ``decrypt`` is the bound method of the AES context, whose
        repr names no key.
        """
        return _PREFIX, NONCE_SIZE, self._aead.decrypt


class Aes256Gcm:
    """AES-256-GCM authenticated encryption; holds no key material itself."""

    name = "aes256gcm"
    key_size = KEY_SIZE
    magic = MAGIC
    capabilities: frozenset[str] = frozenset({"aead", "wrap", "keyed"})

    def __repr__(self) -> str:
        return "Aes256Gcm()"

    # -- keys ---------------------------------------------------------------
    def generate_key(self) -> bytes:
        return os.urandom(KEY_SIZE)

    def _check_key(self, key: bytes, role: str) -> None:
        if type(key) is bytes and len(key) == KEY_SIZE:
            return
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
            size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
            raise LoomError(
                ErrorCode.CIPHER_KEY_INVALID,
                f"aes256gcm needs a {KEY_SIZE}-byte {role}, got {size}"
                + (" bytes" if isinstance(size, int) else ""),
            )

    @staticmethod
    def _check_aad(aad: bytes) -> None:
        if not aad:
            raise LoomError(
                ErrorCode.CIPHER_AAD_REQUIRED,
                "aes256gcm refuses to encrypt or decrypt without associated data; "
                "pass the record's identity (stream, key) as aad",
            )

    # -- data ---------------------------------------------------------------
    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        if type(key) is not bytes or len(key) != KEY_SIZE:
            self._check_key(key, "key")
            key = bytes(key)
        if not aad:
            self._check_aad(aad)
        nonce = _nonce()
        return b"".join((_PREFIX, nonce, _aead(key).encrypt(nonce, plaintext, aad)))

    def decrypt(self, key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        if type(key) is not bytes or len(key) != KEY_SIZE:
            self._check_key(key, "key")
            key = bytes(key)
        if not aad:
            self._check_aad(aad)
        if len(ciphertext) >= _MIN_SIZE and ciphertext[:_PREFIX_LEN] == _PREFIX:
            try:
                return _aead(key).decrypt(ciphertext[_PREFIX_LEN:HEADER_SIZE], ciphertext[HEADER_SIZE:], aad)
            except InvalidTag:
                raise LoomError(
                    ErrorCode.CIPHER_DECRYPT_FAILED,
                    "authentication failed: wrong key, modified bytes, or a value moved to another record",
                ) from None
        self._malformed(ciphertext)

    def key_context(self, key: bytes) -> KeyContext:
        """``key`` bound once for many encryptions/decryptions (capability ``keyed``)."""
        self._check_key(key, "key")
        return KeyContext(bytes(key))

    @staticmethod
    def _malformed(ciphertext: bytes) -> NoReturn:
        """Raise the precise reason a value is not aes256gcm output."""
        ciphertext = bytes(ciphertext)
        if len(ciphertext) < HEADER_SIZE + TAG_SIZE:
            raise LoomError(
                ErrorCode.CIPHER_DECRYPT_FAILED,
                f"ciphertext is {len(ciphertext)} bytes, shorter than the "
                f"{HEADER_SIZE + TAG_SIZE}-byte minimum of aes256gcm output",
            )
        if not ciphertext.startswith(MAGIC):
            raise LoomError(
                ErrorCode.CIPHER_DECRYPT_FAILED, "value does not carry the aes256gcm magic prefix"
            )
        version = ciphertext[len(MAGIC) : len(MAGIC) + 1]
        if version != VERSION:
            raise LoomError(
                ErrorCode.CIPHER_DECRYPT_FAILED,
                f"unsupported aes256gcm layout version {version.hex()}",
            )
        raise LoomError(ErrorCode.CIPHER_DECRYPT_FAILED, "value is not aes256gcm output")

    # -- key wrapping -------------------------------------------------------
    def wrap_key(self, kek: bytes, key: bytes, aad: bytes) -> bytes:
        self._check_key(kek, "key-encryption key")
        self._check_key(key, "data key")
        self._check_aad(aad)
        return self.encrypt(kek, bytes(key), _WRAP_DOMAIN + bytes(aad))

    def unwrap_key(self, kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
        self._check_key(kek, "key-encryption key")
        self._check_aad(aad)
        key = self.decrypt(kek, wrapped, _WRAP_DOMAIN + bytes(aad))
        if len(key) != KEY_SIZE:  # authenticated, so only a foreign writer could cause this
            raise LoomError(ErrorCode.CIPHER_DECRYPT_FAILED, "unwrapped key has the wrong size")
        return key

    # -- inspection ---------------------------------------------------------
    def is_ciphertext(self, blob: bytes) -> bool:
        return (
            len(blob) >= HEADER_SIZE + TAG_SIZE
            and blob.startswith(MAGIC)
            and blob[len(MAGIC) : len(MAGIC) + 1] == VERSION
        )

    def fingerprint(self, key: bytes) -> str:
        """HMAC-SHA256 of a fixed label under ``key``, first 16 bytes as hex.

        A keyed MAC of a public label reveals nothing about the key (HMAC is a
        PRF), so the digest can be stored beside backups; recovering the key
        from it means breaking HMAC-SHA256 or brute-forcing 256 bits.
        """
        self._check_key(key, "key")
        return hmac.new(bytes(key), _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]


def create(_ctx: Any = None) -> Aes256Gcm:
    """Factory for the registry; the cipher needs no options."""
    return Aes256Gcm()


@hookimpl
def loom_register_backends(registry: Any) -> None:
    registry.add_cipher(
        "aes256gcm",
        create,
        capabilities={"aead", "wrap", "keyed"},
        description="AES-256-GCM with random 96-bit nonces (cryptography's AESGCM)",
    )
