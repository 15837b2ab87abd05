"""Per-stream data keys under the master key: lazy creation, cache, shredding.

A stream's data-encryption key (DEK) is generated on the stream's first
encrypted write and stored wrapped under the master key in the ``keys``
keyspace, with associated data binding it to the stream and its generation
(``key_id``). Rows name the generation they were sealed with, so a row whose
key was destroyed reports ``ENCRYPTION_KEY_DESTROYED`` instead of a generic
authentication failure, even if the stream name was later reused.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from loom_core.contracts.storage import WriteBatch
from loom_core.crypto import layout
from loom_core.crypto.masterkey import MasterKey
from loom_core.errors import ErrorCode, LoomError

log = logging.getLogger("loom.crypto")


class _GenericContext:
    """A key bound to a cipher without the ``keyed`` capability (same contract, slower)."""

    __slots__ = ("_cipher", "_key")

    def __init__(self, cipher: Any, key: bytes) -> None:
        self._cipher = cipher
        self._key = key

    def __repr__(self) -> str:
        return f"KeyContext({self._cipher.name}, key=<redacted>)"

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        sealed: bytes = self._cipher.encrypt(self._key, plaintext, aad)
        return sealed

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        opened: bytes = self._cipher.decrypt(self._key, bytes(ciphertext), aad)
        return opened


def key_context(cipher: Any, key: bytes) -> Any:
    """``key`` bound for the per-row hot path: the cipher's own context if it has one."""
    if "keyed" in getattr(cipher, "capabilities", ()) and hasattr(cipher, "key_context"):
        return cipher.key_context(key)
    return _GenericContext(cipher, key)


#: ``(row header, header length, body offset, decrypt(nonce, body, aad), aad prefix)``
RowOpener = tuple[bytes, int, int, Callable[[bytes, bytes, bytes], bytes], bytes]


def row_opener(ctx: Any, key_id: bytes, aad_prefix: bytes) -> RowOpener | None:
    """What opening one of this key's rows needs, fixed per key, when the cipher can split.

    A sealed row is ``ROW_MAGIC | key_id | cipher output``; with a context that
    offers ``split_decrypt`` the cipher output is ``prefix | nonce | body``, so
    the whole row header (both magics, the key generation, the layout version)
    is one constant compared with one slice, and the row opens with one call.
    """
    split = getattr(ctx, "split_decrypt", None)
    if split is None:
        return None
    prefix, nonce_size, decrypt = split()
    header = layout.ROW_MAGIC + key_id + bytes(prefix)
    return header, len(header), len(header) + int(nonce_size), decrypt, aad_prefix


def unwrap_record(cipher: Any, master: MasterKey, stream: str, value: bytes) -> tuple[bytes, bytes]:
    """``(key_id, key)`` from ``stream``'s wrapped-key record, or a failure naming the stream.

    The master key was already proven by the check record, so a record that
    does not open is damaged or belongs to another stream; the cipher's bare
    "authentication failed" would not say which of the keys it was.
    """
    what = f"the wrapped data key of stream {stream!r} (keys keyspace, entry {layout.dek_key(stream)!r})"
    fix = (
        "the record is damaged or was copied from another stream's entry; restore the data directory "
        "from a backup taken with this master key (the stream's rows cannot be read without it)"
    )
    try:
        key_id, wrapped = layout.decode_dek_record(value)
    except ValueError:
        raise LoomError(
            ErrorCode.CIPHER_DECRYPT_FAILED, f"{what} has an unknown layout: {fix}", details={"stream": stream}
        ) from None
    try:
        key: bytes = cipher.unwrap_key(master.reveal(), wrapped, layout.dek_aad(stream, key_id))
    except LoomError as exc:
        if exc.code is not ErrorCode.CIPHER_DECRYPT_FAILED:
            raise
        raise LoomError(
            ErrorCode.CIPHER_DECRYPT_FAILED,
            f"{what} does not open under the master key although the master key is right: {fix}",
            details={"stream": stream, "key_id": key_id.hex()},
        ) from None
    return key_id, key


class DataKey:
    """One stream's unwrapped DEK and its generation id; prints no key bytes."""

    __slots__ = ("_key", "aad_prefix", "ctx", "key_id", "opener", "stream")

    def __init__(self, stream: str, key_id: bytes, key: bytes, cipher: Any) -> None:
        self.stream = stream
        self.key_id = key_id
        self._key = key
        self.aad_prefix = layout.row_aad_prefix(stream, key_id)
        self.ctx = key_context(cipher, key)
        self.opener = row_opener(self.ctx, key_id, self.aad_prefix)

    def reveal(self) -> bytes:
        return self._key

    def __repr__(self) -> str:
        return f"DataKey(stream={self.stream!r}, key_id={self.key_id.hex()}, key=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("DataKey cannot be pickled")


class KeyRing:
    """Wrapped DEKs in ``keys``, unwrapped on demand and cached in memory.

    Build it with :func:`loom_core.crypto.masterguard.open_keyring`, which
    first proves the master key is the one the data was written with.
    """

    def __init__(self, storage: Any, cipher: Any, master: MasterKey) -> None:
        self._storage = storage
        self.cipher = cipher
        self._master = master
        self.fingerprint = master.fingerprint(cipher)
        self._cache: dict[str, DataKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyRing(cipher={self.cipher.name!r}, fingerprint={self.fingerprint!r})"

    # -- the storage it lives in ------------------------------------------------
    @property
    def storage(self) -> Any:
        storage = self._storage
        if storage is None:
            raise LoomError(
                ErrorCode.INTERNAL_ERROR,
                "the encryption key ring is not bound to a storage; call codec.bind(storage) "
                "with the memory engine's storage before writing",
            )
        return storage

    def bind(self, storage: Any) -> None:
        """Use ``storage`` (the engine's open storage) from now on."""
        self._storage = storage

    def unbind(self) -> None:
        """Forget the storage (it is about to be closed); cached keys stay usable."""
        self._storage = None

    def preload(self) -> int:
        """Unwrap every stream's key into the cache (reads work while unbound)."""
        count = 0
        for key, value in list(self.storage.iterate(layout.KEYS, prefix=layout.DEK_PREFIX)):
            stream = layout.stream_of_dek_key(key)
            data_key = self._unwrap(stream, value)
            with self._lock:
                self._cache[stream] = data_key
            count += 1
        return count

    # -- reading and creating ------------------------------------------------
    def cached(self, stream: str) -> DataKey | None:
        """The stream's key if already in memory (no storage access)."""
        return self._cache.get(stream)

    def cache_lookup(self) -> Callable[[str], DataKey | None]:
        """:meth:`cached` as the cache's own ``get`` (one C call on the row hot path).

        The cache dict is only ever mutated in place, so the bound ``get`` stays valid.
        """
        return self._cache.get

    def current(self, stream: str) -> DataKey | None:
        """The stream's live DEK, or ``None`` if it has none (yet, or any more)."""
        cached = self._cache.get(stream)
        if cached is not None:
            return cached
        if self._storage is None:  # unbound: the preloaded cache is complete
            return None
        value = self.storage.get(layout.KEYS, layout.dek_key(stream))
        if value is None:
            return None
        key = self._unwrap(stream, value)
        with self._lock:
            return self._cache.setdefault(stream, key)

    def for_write(self, stream: str) -> DataKey:
        """The stream's DEK, generated and durably stored on first use."""
        found = self.current(stream)
        if found is not None:
            return found
        with self._lock:
            cached = self._cache.get(stream)
            if cached is not None:
                return cached
            value = self.storage.get(layout.KEYS, layout.dek_key(stream))
            if value is not None:
                key = self._unwrap(stream, value)
            else:
                key = DataKey(stream, os.urandom(layout.KEY_ID_SIZE), self.cipher.generate_key(), self.cipher)
                wrapped = self.cipher.wrap_key(
                    self._master.reveal(), key.reveal(), layout.dek_aad(stream, key.key_id)
                )
                batch = WriteBatch()
                batch.put(layout.KEYS, layout.dek_key(stream), layout.encode_dek_record(key.key_id, wrapped))
                # durable before any row sealed with it can reach the disk
                self.storage.write(batch, durable=True)
                log.info("generated a data key for stream %r (generation %s)", stream, key.key_id.hex())
            self._cache[stream] = key
            return key

    def for_read(self, stream: str, key_id: bytes) -> DataKey:
        """The DEK generation ``key_id`` of ``stream``; ``ENCRYPTION_KEY_DESTROYED`` if gone."""
        key = self.current(stream)
        if key is not None and key.key_id == key_id:
            return key
        destroyed = self._storage is not None and (
            self.storage.get(layout.KEYS, layout.DESTROYED_PREFIX + key_id) is not None
        )
        if not destroyed:
            raise LoomError(
                ErrorCode.CIPHER_DECRYPT_FAILED,
                f"a row of stream {stream!r} was sealed with a data key this stream does not have; "
                "it was copied from another stream or the data directory is damaged",
                details={"stream": stream},
            )
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_DESTROYED,
            f"the data key (generation {key_id.hex()}) of stream {stream!r} was destroyed "
            "when the stream was deleted; this row can no longer be decrypted",
            details={"stream": stream, "key_id": key_id.hex()},
        )

    def _unwrap(self, stream: str, value: bytes) -> DataKey:
        return DataKey(stream, *unwrap_record(self.cipher, self._master, stream, value), self.cipher)

    def streams(self) -> Iterator[str]:
        """Every stream that has a live DEK."""
        for key, _ in self.storage.iterate(layout.KEYS, prefix=layout.DEK_PREFIX):
            yield layout.stream_of_dek_key(key)

    # -- crypto-shredding ----------------------------------------------------
    def destroy(self, streams: Sequence[str]) -> list[str]:
        """Destroy the DEKs of ``streams`` so none of their rows can be decrypted again.

        Deletes the wrapped keys (and any rotation copies) in one batch, then
        flushes and compacts the ``keys`` keyspace once, so no live file under
        the data directory, WAL included, still holds them (a sweep emptying
        thousands of streams pays one flush, not thousands). Returns the
        streams that had a key.
        """
        with self._lock:
            batch = WriteBatch()
            destroyed: list[str] = []
            for stream in dict.fromkeys(streams):
                self._cache.pop(stream, None)
                live = self.storage.get(layout.KEYS, layout.dek_key(stream))
                staged = self.storage.get(layout.KEYS, layout.dek_key(stream, staged=True))
                if live is None and staged is None:
                    continue
                for value in (live, staged):
                    if value is not None:
                        key_id, _ = layout.decode_dek_record(value)
                        batch.put(layout.KEYS, layout.DESTROYED_PREFIX + key_id, b"")
                batch.delete(layout.KEYS, layout.dek_key(stream))
                batch.delete(layout.KEYS, layout.dek_key(stream, staged=True))
                destroyed.append(stream)
            if not destroyed:
                return []
            self.storage.write(batch, durable=True)
            self.storage.flush()
            self.storage.compact(layout.KEYS)
            for stream in destroyed:
                log.info("destroyed the data key of stream %r (crypto-shredded)", stream)
            return destroyed

    def finish_shredding(self) -> bool:
        """Flush and compact ``keys`` again when any key was ever destroyed.

        :meth:`destroy` deletes durably, then flushes and compacts; a crash
        between the two leaves the wrapped key in a table file, where only a
        compaction removes it. At start-up there is no telling whether that
        happened, so every open of a store that destroyed a key compacts the
        keyspace (a handful of small records: milliseconds). Returns whether it ran.
        """
        with self._lock:
            if next(iter(self.storage.iterate(layout.KEYS, prefix=layout.DESTROYED_PREFIX)), None) is None:
                return False
            self.storage.flush()
            self.storage.compact(layout.KEYS)
            return True

    def forget_cache(self) -> None:
        with self._lock:
            self._cache.clear()
