"""Storage contract: ordered key-value keyspaces with atomic batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

#: Capabilities a storage backend may declare beyond the core contract.
STORAGE_CAPABILITIES = frozenset({"checkpoint", "compact", "durable", "multiprocess_lock"})


@dataclass(frozen=True)
class WriteOp:
    """One put (``value`` set) or delete (``value`` is ``None``)."""

    keyspace: str
    key: bytes
    value: bytes | None


@dataclass
class WriteBatch:
    """Writes applied all together or not at all, across keyspaces."""

    ops: list[WriteOp] = field(default_factory=list)

    def put(self, keyspace: str, key: bytes, value: bytes) -> None:
        self.ops.append(WriteOp(keyspace, key, value))

    def delete(self, keyspace: str, key: bytes) -> None:
        self.ops.append(WriteOp(keyspace, key, None))

    def __len__(self) -> int:
        return len(self.ops)


@runtime_checkable
class Storage(Protocol):
    """An ordered byte key-value store split into named keyspaces.

    Guarantees every backend gives:

    * Keys and values are arbitrary bytes; iteration is in unsigned
      byte-lexicographic key order.
    * A keyspace not given at open time raises ``STORAGE_UNKNOWN_KEYSPACE``.
    * :meth:`write` is atomic: after a crash either every op of the batch is
      visible or none is. With ``durable=True`` the batch survives power loss
      once the call returns (WAL synced).
    * Any use after :meth:`close` raises ``STORAGE_CLOSED``.
    * A second process opening the same directory gets ``STORAGE_LOCKED``
      naming the directory (capability ``multiprocess_lock``).
    * Nothing is written outside the directory the backend was given.
    * One open storage is used from several threads at once (the server's
      request threads, the index commit thread): any thread, not only the
      one that opened it, may read, iterate and write concurrently.
    * ``durable`` is the backend's promise; the conformance kit can check
      only that acknowledged batches survive the process being killed.
    """

    capabilities: frozenset[str]

    def keyspaces(self) -> Sequence[str]:
        """The keyspaces this storage was opened with."""
        ...

    def get(self, keyspace: str, key: bytes) -> bytes | None:
        """The value under ``key``; ``None`` only when the key is absent."""
        ...

    def put(self, keyspace: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        ...

    def delete(self, keyspace: str, key: bytes) -> None:
        """Remove ``key``; deleting an absent key is not an error."""
        ...

    def write(self, batch: WriteBatch, *, durable: bool = False) -> None:
        """Apply every op of ``batch`` atomically, in order."""
        ...

    def iterate(
        self,
        keyspace: str,
        *,
        prefix: bytes = b"",
        start: bytes | None = None,
        end: bytes | None = None,
        order: Literal["asc", "desc"] = "asc",
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` pairs with ``key`` starting with ``prefix``
        and ``start <= key < end``, in key order (or reversed)."""
        ...

    def flush(self) -> None:
        """Persist everything written so far (memtables and WAL) to disk."""
        ...

    def compact(self, keyspace: str | None = None) -> None:
        """Rewrite files so deleted values are physically dropped
        (capability ``compact``)."""
        ...

    def checkpoint(self, dest: Path) -> None:
        """Write a consistent, openable copy into the new directory ``dest``
        (capability ``checkpoint``)."""
        ...

    def close(self) -> None:
        """Flush and release files and locks; idempotent."""
        ...
