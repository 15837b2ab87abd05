"""Row codecs: what the memory engine calls on every content row it stores.

:class:`EncryptingRowCodec` seals a row as ``ROW_MAGIC | key_id | cipher
output`` with associated data covering the stream, the storage key and the
data-key generation, so a row copied onto another key or stream fails with
``CIPHER_DECRYPT_FAILED`` instead of returning the wrong memory. Rows without
the magic prefix are legacy plaintext and are returned as they are.

:class:`PlaintextRowCodec` is used when encryption is off; it refuses to hand
out sealed rows (``ENCRYPTION_KEY_MISSING``) rather than returning ciphertext
as if it were content.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loom_core.crypto import layout
from loom_core.crypto.keyring import KeyRing
from loom_core.errors import ErrorCode, LoomError

_MAGIC_LEN = len(layout.ROW_MAGIC)
_HEADER = _MAGIC_LEN + layout.KEY_ID_SIZE
_ROW_MAGIC = layout.ROW_MAGIC


def is_sealed(stored: bytes) -> bool:
    """Whether ``stored`` is an encrypted row (magic prefix), not legacy plaintext."""
    return len(stored) > _HEADER and stored[:_MAGIC_LEN] == layout.ROW_MAGIC


class EncryptingRowCodec:
    """Envelope encryption of row values with the stream's data key."""

    encrypting = True

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self.cipher = keyring.cipher
        self._cached = keyring.cache_lookup()  # hot path: the key ring's in-memory cache

    def __repr__(self) -> str:
        return f"EncryptingRowCodec({self.keyring!r})"

    @property
    def fingerprint(self) -> str:
        return self.keyring.fingerprint

    def seal(self, stream: str, record_key: bytes, plaintext: bytes) -> bytes:
        key = self._cached(stream) or self.keyring.for_write(stream)
        sealed: bytes = key.ctx.encrypt(plaintext, key.aad_prefix + record_key)
        return b"".join((_ROW_MAGIC, key.key_id, sealed))

    def open(self, stream: str, record_key: bytes, stored: bytes) -> bytes:
        # Hot path, one frame: the row's header (magics, key generation, layout
        # version) equals the stream's cached key's, and the cipher's own AEAD
        # call checks the tag against aad = stream | key generation | record key.
        key = self._cached(stream)
        if key is not None and key.opener is not None:
            header, header_len, body_at, decrypt, aad_prefix = key.opener
            if stored[:header_len] == header and len(stored) > body_at:
                try:
                    return decrypt(stored[header_len:body_at], stored[body_at:], aad_prefix + record_key)
                except Exception:  # noqa: S110 - reported precisely by the checked path below
                    pass
        return self._open_checked(stream, record_key, stored)

    def _open_checked(self, stream: str, record_key: bytes, stored: bytes) -> bytes:
        """Legacy rows, other key generations, ciphers that cannot split, and every failure."""
        if stored[:_MAGIC_LEN] != _ROW_MAGIC or len(stored) <= _HEADER:
            return bytes(stored)  # legacy plaintext row
        key_id = stored[_MAGIC_LEN:_HEADER]
        key = self._cached(stream)
        if key is None or key.key_id != key_id:
            key = self.keyring.for_read(stream, bytes(key_id))
        try:
            opened: bytes = key.ctx.decrypt(stored[_HEADER:], key.aad_prefix + record_key)
            return opened
        except LoomError as exc:
            raise LoomError(
                ErrorCode.CIPHER_DECRYPT_FAILED,
                f"row {bytes(record_key)!r} of stream {stream!r} failed authentication: it was "
                "modified or copied from another record",
                details={"stream": stream},
            ) from exc

    def is_sealed(self, stored: bytes) -> bool:
        return is_sealed(stored)

    def bind(self, storage: Any) -> None:
        """Attach the engine's open storage (see :func:`loom_core.crypto.build_row_codec`)."""
        self.keyring.bind(storage)

    def forget_streams(self, streams: Sequence[str]) -> None:
        """Crypto-shred: destroy the streams' data keys (see :meth:`KeyRing.destroy`)."""
        self.keyring.destroy(streams)

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "cipher": self.cipher.name, "fingerprint": self.keyring.fingerprint}


class PlaintextRowCodec:
    """Encryption off: rows are stored as given; sealed rows are refused."""

    encrypting = False
    fingerprint: str | None = None

    def __init__(self, env_name: str = "LOOMEM_AT_REST_MASTER_KEY") -> None:
        self.env_name = env_name

    def __repr__(self) -> str:
        return "PlaintextRowCodec()"

    def seal(self, stream: str, record_key: bytes, plaintext: bytes) -> bytes:
        return bytes(plaintext)

    def open(self, stream: str, record_key: bytes, stored: bytes) -> bytes:
        if is_sealed(stored):
            raise LoomError(
                ErrorCode.ENCRYPTION_KEY_MISSING,
                f"row {bytes(record_key)!r} of stream {stream!r} is encrypted but no master key is "
                f"set; set {self.env_name}",
            )
        return bytes(stored)

    def is_sealed(self, stored: bytes) -> bool:
        return is_sealed(stored)

    def bind(self, storage: Any) -> None:
        return None

    def forget_streams(self, streams: Sequence[str]) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"enabled": False, "cipher": None, "fingerprint": None}
