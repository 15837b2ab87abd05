"""The seam where row values can be sealed (encrypted) before storage sees them.

Every content, metadata, entity and relation value the memory engine writes
goes through a :class:`RowCodec`. ``record_key`` is always the exact storage
key the value is written under and ``stream`` the stream it belongs to, so an
authenticated cipher can bind ciphertext to its place (a row copied onto
another key fails to open). Routing metadata, embeddings and intents never go
through the codec: they are plaintext by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class RowCodec(Protocol):
    """Seals and opens row values; ``open(seal(x)) == x`` for the same place."""

    def seal(self, stream: str, record_key: bytes, plaintext: bytes) -> bytes:
        """The bytes to store under ``record_key`` for ``plaintext``."""
        ...

    def open(self, stream: str, record_key: bytes, stored: bytes) -> bytes:
        """The plaintext of ``stored`` read from ``record_key``; raises a
        ``LoomError`` when it cannot be opened (never returns garbage)."""
        ...

    def forget_streams(self, streams: Sequence[str]) -> None:
        """Called after streams are deleted or emptied: drop any key material for them."""
        ...


class PlainRowCodec:
    """The identity codec: values are stored as given (encryption off)."""

    def seal(self, stream: str, record_key: bytes, plaintext: bytes) -> bytes:
        return plaintext

    def open(self, stream: str, record_key: bytes, stored: bytes) -> bytes:
        return stored

    def forget_streams(self, streams: Sequence[str]) -> None:
        return None


__all__ = ["PlainRowCodec", "RowCodec"]
