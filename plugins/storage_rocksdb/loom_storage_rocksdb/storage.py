"""The ``rocksdb`` storage backend: one column family per keyspace.

Keys and values are raw bytes (``Options(raw_mode=True)``), so RocksDB's
bytewise comparator gives the unsigned lexicographic order the contract asks
for. Every rocksdict failure is translated into a coded :class:`LoomError`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

from rocksdict import (
    BottommostLevelCompaction,
    Cache,
    Checkpoint,
    CompactOptions,
    DbClosedError,
    Rdict,
    ReadOptions,
    WriteOptions,
)
from rocksdict import WriteBatch as RawBatch

from loom_core.contracts import BackendContext
from loom_core.contracts.storage import WriteBatch
from loom_core.errors import ErrorCode, LoomError
from loom_storage_rocksdb.options import Tuning

CAPABILITIES = frozenset({"checkpoint", "compact", "durable", "multiprocess_lock"})

_LOCK_MARKERS = ("While lock file", "lock hold by current process", "LOCK: No locks available")


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (``None``: unbounded)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _check_bytes(what: str, value: object) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"storage {what} must be bytes, not {type(value).__name__}")


class _Cursor:
    """One live RocksDB iterator over ``lower <= key < upper``.

    Bounds are enforced here as well as through ``ReadOptions`` because
    RocksDB applies ``iterate_lower_bound`` only to some positioning calls.
    :meth:`release` drops the iterator so ``close`` can free the lock.
    """

    __slots__ = ("__weakref__", "_it", "_lower", "_opts", "_reverse", "_upper")

    def __init__(self, family: Rdict, lower: bytes, upper: bytes | None, reverse: bool) -> None:
        self._opts = ReadOptions()
        if upper is not None:
            self._opts.set_iterate_upper_bound(upper)
        self._lower = lower
        self._upper = upper
        self._reverse = reverse
        self._it: Any = family.iter(self._opts)
        if reverse:
            self._it.seek_to_last()
        else:
            self._it.seek(lower)

    def next_item(self) -> tuple[bytes, bytes] | None:
        it = self._it
        if it is None or not it.valid():
            return None
        key: bytes = it.key()
        if self._reverse:
            if key < self._lower:
                return None
        elif self._upper is not None and key >= self._upper:
            return None
        item = (key, it.value())
        if self._reverse:
            it.prev()
        else:
            it.next()
        return item

    def release(self) -> None:
        self._it = None


class RocksStorage:
    """A RocksDB database whose column families are the keyspaces given at open."""

    capabilities: frozenset[str] = CAPABILITIES

    def __init__(self, path: Path, db: Rdict, families: Mapping[str, Rdict], handles: Mapping[str, Any]):
        self._path = path
        self._db: Rdict | None = db
        self._families: dict[str, Rdict] = dict(families)
        self._handles: dict[str, Any] = dict(handles)
        self._names = tuple(families)
        self._cursors: weakref.WeakSet[_Cursor] = weakref.WeakSet()
        self._close_lock = threading.Lock()
        self._sync = WriteOptions()
        self._sync.sync = True

    # -- opening ------------------------------------------------------------
    @classmethod
    def open(cls, ctx: BackendContext) -> RocksStorage:
        """Open ``ctx.data_dir`` with one column family per ``ctx.keyspaces`` (created if missing)."""
        if ctx.data_dir is None:
            raise LoomError(ErrorCode.CONFIG_INVALID, "the rocksdb storage backend needs a data directory")
        names = tuple(ctx.keyspaces)
        for name in names:
            if not isinstance(name, str) or not name:
                raise LoomError(ErrorCode.CONFIG_INVALID, f"keyspace name {name!r} must be a non-empty string")
        if len(set(names)) != len(names):
            raise LoomError(ErrorCode.CONFIG_INVALID, f"keyspaces {names!r} contain duplicates")
        tuning = Tuning.parse(ctx.options)
        path = Path(ctx.data_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoomError(
                ErrorCode.STORAGE_IO, f"cannot create storage directory {path}: {exc.strerror or exc}"
            ) from None
        cache = Cache(tuning.block_cache_size)
        db_opts = tuning.db_options(cache)
        try:
            existing = Rdict.list_cf(str(path), db_opts) if (path / "CURRENT").exists() else []
            wanted = dict.fromkeys([*existing, *names])
            wanted.pop("default", None)
            families = {name: tuning.family_options(cache) for name in wanted}
            db = Rdict(str(path), db_opts, column_families=families)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            _raise_open_error(path, exc)
        try:
            fams = {name: db.get_column_family(name) for name in names}
            handles = {name: db.get_column_family_handle(name) for name in names}
        except Exception as exc:
            db.close()
            raise LoomError(ErrorCode.STORAGE_IO, f"cannot open keyspaces in {path}: {exc}") from None
        return cls(path, db, fams, handles)

    # -- helpers --------------------------------------------------------------
    def _family(self, keyspace: str) -> Rdict:
        family = self._families.get(keyspace)
        if family is None:
            self._missing(keyspace)
        return family

    def _missing(self, keyspace: str) -> NoReturn:
        if self._db is None:
            raise LoomError(ErrorCode.STORAGE_CLOSED, f"storage {self._path} is closed")
        raise LoomError(
            ErrorCode.STORAGE_UNKNOWN_KEYSPACE,
            f"keyspace {keyspace!r} was not opened in {self._path}; opened: {', '.join(self._names)}",
        )

    def _fail(self, operation: str, exc: Exception) -> NoReturn:
        if self._db is None or isinstance(exc, DbClosedError):
            raise LoomError(ErrorCode.STORAGE_CLOSED, f"storage {self._path} is closed") from None
        raise LoomError(ErrorCode.STORAGE_IO, f"{operation} failed in {self._path}: {exc}") from None

    def _live_db(self) -> Rdict:
        db = self._db
        if db is None:
            raise LoomError(ErrorCode.STORAGE_CLOSED, f"storage {self._path} is closed")
        return db

    # -- the contract -----------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._path

    def keyspaces(self) -> Sequence[str]:
        self._live_db()
        return self._names

    def get(self, keyspace: str, key: bytes) -> bytes | None:
        family = self._family(keyspace)
        _check_bytes("key", key)
        try:
            value: bytes | None = family.get(key)
        except Exception as exc:
            self._fail("get", exc)
        return value

    def put(self, keyspace: str, key: bytes, value: bytes) -> None:
        family = self._family(keyspace)
        _check_bytes("key", key)
        _check_bytes("value", value)
        try:
            family.put(key, value)
        except Exception as exc:
            self._fail("put", exc)

    def delete(self, keyspace: str, key: bytes) -> None:
        family = self._family(keyspace)
        _check_bytes("key", key)
        try:
            family.delete(key)
        except Exception as exc:
            self._fail("delete", exc)

    def write(self, batch: WriteBatch, *, durable: bool = False) -> None:
        db = self._live_db()
        raw = RawBatch(raw_mode=True)
        handles, put, delete = self._handles, raw.put, raw.delete
        for op in batch.ops:  # validate everything first: a bad op must apply nothing
            key, value = op.key, op.value
            handle = handles.get(op.keyspace)
            if handle is None:
                self._missing(op.keyspace)
            if type(key) is not bytes:  # exact-type test first: this loop runs per row on ingest
                _check_bytes("key", key)
            if value is None:
                delete(key, handle)
            else:
                if type(value) is not bytes:
                    _check_bytes("value", value)
                put(key, value, handle)
        try:
            if len(raw):
                db.write(raw, self._sync if durable else None)
            elif durable:
                db.flush_wal(True)
        except Exception as exc:
            self._fail("write", exc)

    def iterate(
        self,
        keyspace: str,
        *,
        prefix: bytes = b"",
        start: bytes | None = None,
        end: bytes | None = None,
        order: Literal["asc", "desc"] = "asc",
    ) -> Iterator[tuple[bytes, bytes]]:
        family = self._family(keyspace)
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
        _check_bytes("prefix", prefix)
        lower = prefix if start is None or start < prefix else start
        upper = prefix_upper_bound(prefix)
        if end is not None and (upper is None or end < upper):
            upper = end
        if upper is not None and upper <= lower:
            return iter(())
        try:
            cursor = _Cursor(family, lower, upper, order == "desc")
        except Exception as exc:
            self._fail("iterate", exc)
        self._cursors.add(cursor)
        return self._walk(cursor)

    def _walk(self, cursor: _Cursor) -> Iterator[tuple[bytes, bytes]]:
        try:
            while True:
                if self._db is None:
                    raise LoomError(ErrorCode.STORAGE_CLOSED, f"storage {self._path} is closed")
                try:
                    item = cursor.next_item()
                except Exception as exc:
                    self._fail("iterate", exc)
                if item is None:
                    return
                yield item
        finally:
            cursor.release()

    def flush(self) -> None:
        db = self._live_db()
        try:
            for family in self._families.values():
                family.flush(True)
            db.flush(True)
            db.flush_wal(True)
        except Exception as exc:
            self._fail("flush", exc)

    def compact(self, keyspace: str | None = None) -> None:
        self._live_db()
        families = self._families.values() if keyspace is None else [self._family(keyspace)]
        opts = CompactOptions()
        opts.set_bottommost_level_compaction(BottommostLevelCompaction.force())
        try:
            for family in families:
                family.flush(True)
                family.compact_range(None, None, opts)
        except Exception as exc:
            self._fail("compact", exc)

    def checkpoint(self, dest: Path) -> None:
        db = self._live_db()
        dest = Path(dest)
        if dest.exists():
            if not dest.is_dir() or any(dest.iterdir()):
                raise LoomError(
                    ErrorCode.STORAGE_IO, f"checkpoint destination {dest} exists and is not an empty directory"
                )
            dest.rmdir()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            checkpoint = Checkpoint(db)
            try:
                checkpoint.create_checkpoint(str(dest))
            finally:
                del checkpoint
        except Exception as exc:
            self._fail(f"checkpoint to {dest}", exc)

    def close(self) -> None:
        with self._close_lock:
            db = self._db
            if db is None:
                return
            try:
                for family in self._families.values():
                    family.flush(True)
                db.flush_wal(True)
            except Exception:  # noqa: S110 - the WAL still holds the data; closing must go on
                pass
            for cursor in list(self._cursors):
                cursor.release()
            self._families.clear()
            self._handles.clear()
            self._db = None
            try:
                db.close()
            except DbClosedError:
                pass
            except Exception as exc:
                raise LoomError(ErrorCode.STORAGE_IO, f"closing {self._path} failed: {exc}") from None

    def __repr__(self) -> str:
        state = "closed" if self._db is None else "open"
        return f"RocksStorage({str(self._path)!r}, {state}, keyspaces={list(self._names)!r})"


def _raise_open_error(path: Path, exc: Exception) -> NoReturn:
    text = str(exc)
    if any(marker in text for marker in _LOCK_MARKERS):
        raise LoomError(
            ErrorCode.STORAGE_LOCKED,
            f"storage directory {path} is already open in another process (or elsewhere in this one); "
            "stop the other server or use another data directory",
            details={"directory": str(path)},
        ) from None
    raise LoomError(ErrorCode.STORAGE_IO, f"cannot open storage directory {path}: {text}") from None
