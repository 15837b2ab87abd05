"""Backfill: encrypt rows written before encryption was turned on.

The walk goes family by family in key order and rewrites each legacy
plaintext row sealed, in batches. Each batch also stores the progress cursor
in ``meta`` (same atomic write), so a crash loses nothing and a rerun resumes
after the last committed key. Rows that are already sealed are skipped, so
running it twice is harmless.

The rewrite leaves the replaced plaintext versions in older table files until
the content keyspaces are compacted, so a pass is ``done`` only once that
compaction ran: the last batch records ``compacting``, and only a finished
compaction records ``done``. A pass killed in between stays ``compacting``;
the next start (:func:`finish_compaction`) or the next run compacts again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from itertools import islice
from typing import Any

from loom_core.contracts.storage import WriteBatch
from loom_core.crypto import layout
from loom_core.crypto.masterguard import read_record
from loom_core.crypto.rowcodec import is_sealed
from loom_core.errors import ErrorCode, LoomError

#: ``stream_of(key, plaintext)``: the stream a row belongs to (None: not a content row, skip it).
StreamOf = Callable[[bytes, bytes], str | None]
Progress = Callable[[dict[str, Any]], None]


#: ``body_offset(value)``: where the sealed part of a value starts (a plaintext header may precede it).
BodyOffset = Callable[[bytes], int]


def _whole(value: bytes) -> int:
    return 0


@dataclass(frozen=True)
class SealedFamily:
    """Rows the engine stores through its codec: a keyspace and key prefix, how to
    find a row's stream, and where in the value the sealed part starts."""

    keyspace: str
    stream_of: StreamOf
    prefix: bytes = b""
    body_offset: BodyOffset = _whole


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


#: a pass walking the rows / whose walk is over but whose final compaction has not finished yet
RUNNING, COMPACTING, DONE = "running", "compacting", "done"


def status(storage: Any) -> dict[str, Any]:
    """The persisted progress: ``state`` is ``never``, ``running``, ``compacting`` or ``done``."""
    record = read_record(storage, layout.BACKFILL_RECORD)
    if record is None:
        return {"state": "never", "scanned": 0, "encrypted": 0, "total": None}
    return status_view(record)


def count_rows(storage: Any, families: Sequence[SealedFamily]) -> int:
    return sum(sum(1 for _ in storage.iterate(f.keyspace, prefix=f.prefix)) for f in families)


YIELD_SECONDS = 0.002  # pause between batches when sharing the engine's lock with writers


def run(
    storage: Any,
    codec: Any,
    families: Sequence[SealedFamily],
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
    lock: ContextManager[Any] | None = None,
    restart: bool = False,
    compact: bool = True,
) -> dict[str, Any]:
    """Encrypt every legacy row of ``families``; resumes a previous run.

    ``lock`` (e.g. the engine's write lock) is held around each batch so a
    concurrent writer cannot change a row between its read and its rewrite.
    ``restart`` starts a new pass from the beginning (also after ``done``).
    ``compact`` (default) flushes and compacts the families at the end, so
    the replaced plaintext versions leave the live files; the pass is
    ``compacting`` until that finished, and a run over a ``compacting`` pass
    only compacts.
    """
    record = begin(storage, codec, restart=restart)
    if record.get("state") == COMPACTING:  # an earlier run was stopped in its final compaction
        if progress is not None:
            progress(status_view(record))
        return _compact(storage, families, record, progress)
    record["total"] = count_rows(storage, families)
    guard: ContextManager[Any] = lock if lock is not None else contextlib.nullcontext()
    while int(record["family"]) < len(families):
        family = families[int(record["family"])]
        after = layout.unb64(record["after"]) if record.get("after") else None
        start = after + b"\x00" if after is not None else None
        with guard:
            rows = _next_rows(storage, family, start, batch_size)
            batch = WriteBatch()
            for key, value in rows:
                record["scanned"] = int(record["scanned"]) + 1
                offset = family.body_offset(value)
                if is_sealed(value[offset:]):
                    continue
                stream = family.stream_of(key, value)
                if stream is None:
                    continue
                batch.put(family.keyspace, key, value[:offset] + codec.seal(stream, key, value[offset:]))
                record["encrypted"] = int(record["encrypted"]) + 1
            if len(rows) < batch_size:
                record["family"] = int(record["family"]) + 1
                record["after"] = None
            else:
                record["after"] = layout.b64(rows[-1][0])
            record["updated_at"] = _now_ms()
            if int(record["family"]) >= len(families):
                # not "done" yet: the plaintext versions are in the files until the compaction ran
                record["state"] = COMPACTING if compact else DONE
                if not compact:
                    record["finished_at"] = record["updated_at"]
            batch.put(layout.META, layout.BACKFILL_RECORD, layout.dump_json(record))
            storage.write(batch, durable=True)
        if lock is not None:
            # Released locks are not handed over: without a pause this loop took the lock back
            # before a waiting writer woke, and writes nearly stalled while a backfill ran.
            time.sleep(YIELD_SECONDS)
        if progress is not None:
            progress(status_view(record))
    if record.get("state") == COMPACTING:
        return _compact(storage, families, record, progress)
    return status_view(record)


def begin(storage: Any, codec: Any, *, restart: bool = False) -> dict[str, Any]:
    """The record of the pass a run continues, persisted before the run starts.

    A new pass (first run, ``restart``, or after ``done``) durably replaces the
    previous pass's record at once, so no reader sees the last pass's ``done``
    while the new one runs.
    """
    if not getattr(codec, "encrypting", False):
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISSING,
            "backfill needs encryption at rest: set LOOMEM_AT_REST_MASTER_KEY (or encryption.master_key_ref)",
        )
    record = read_record(storage, layout.BACKFILL_RECORD)
    if record is not None and not restart and record.get("state") in (RUNNING, COMPACTING):
        return record
    now = _now_ms()
    record = {
        "state": RUNNING,
        "family": 0,
        "after": None,
        "scanned": 0,
        "encrypted": 0,
        "total": None,
        "started_at": now,
        "updated_at": now,
    }
    _save(storage, record)
    return record


def finish_compaction(storage: Any, families: Sequence[SealedFamily]) -> bool:
    """Run the final compaction of a pass that was stopped before it finished; whether it ran.

    Called when the engine opens, like the key ring's ``finish_shredding``: the
    record says ``compacting`` exactly while plaintext versions may remain.
    """
    record = read_record(storage, layout.BACKFILL_RECORD)
    if record is None or record.get("state") != COMPACTING:
        return False
    _compact(storage, families, record, None)
    return True


def _compact(
    storage: Any, families: Sequence[SealedFamily], record: dict[str, Any], progress: Progress | None
) -> dict[str, Any]:
    """Drop the plaintext versions the rewrite left in older files and the WAL, then say ``done``."""
    storage.flush()
    for keyspace in dict.fromkeys(f.keyspace for f in families):
        storage.compact(keyspace)
    record["state"] = DONE
    record["updated_at"] = record["finished_at"] = _now_ms()
    _save(storage, record)
    view = status_view(record)
    if progress is not None:
        progress(view)
    return view


def _save(storage: Any, record: dict[str, Any]) -> None:
    batch = WriteBatch()
    batch.put(layout.META, layout.BACKFILL_RECORD, layout.dump_json(record))
    storage.write(batch, durable=True)


def status_view(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without its internal cursor (a storage key), times in ms since the epoch like
    every time of the API (records written before were float seconds)."""
    view = dict(record)
    view.pop("after", None)
    for key in ("started_at", "updated_at", "finished_at"):
        value = view.get(key)
        if isinstance(value, float):
            view[key] = int(value * 1000)
    return view


def _next_rows(storage: Any, family: SealedFamily, start: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
    # The contract promises an Iterator, nothing more (no close()): the one taken here is
    # dropped, and so released, as soon as the slice is read.
    return list(islice(storage.iterate(family.keyspace, prefix=family.prefix, start=start), limit))
