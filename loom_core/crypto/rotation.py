"""Master-key rotation: re-wrap every data key, never re-encrypt rows.

Crash safety comes from staging. Re-wrapped keys are first written beside the
live ones (``next:<stream>`` in ``keys``) under a rotation record in
``meta``; one atomic batch then swaps them in, replaces the master-key check
record and removes the rotation record. Before that batch every key opens
with the old master key, after it every key opens with the new one. Running
the rotation again resumes where it stopped (staged keys that already open
under the new key are kept). The same batch records that ``keys`` must be
compacted (the old wrappings are still in table files); the next open or the
next run finishes a compaction the process did not get to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loom_core.contracts.storage import WriteBatch
from loom_core.crypto import layout
from loom_core.crypto.keyring import unwrap_record
from loom_core.crypto.masterguard import (
    canary_opens,
    finish_keys_compaction,
    master_record,
    open_keyring,
    read_record,
)
from loom_core.crypto.masterkey import MasterKey
from loom_core.errors import ErrorCode, LoomError

log = logging.getLogger("loom.crypto")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RotationResult:
    old_fingerprint: str
    new_fingerprint: str
    rewrapped: int  # keys re-wrapped in this run
    reused: int  # keys staged by an earlier, interrupted run
    already_done: bool = False


def rotate(
    storage: Any,
    cipher: Any,
    old: MasterKey,
    new: MasterKey,
    *,
    progress: Progress | None = None,
    batch_size: int = 256,
) -> RotationResult:
    """Re-wrap every data key from ``old`` to ``new``; resumable and idempotent."""
    old_fp, new_fp = old.fingerprint(cipher), new.fingerprint(cipher)
    if old_fp == new_fp:
        raise LoomError(ErrorCode.USAGE_ERROR, "the new master key is the same as the current one")
    record = read_record(storage, layout.MASTER_RECORD)
    pending = read_record(storage, layout.ROTATION_RECORD)
    if record is not None and record.get("fingerprint") == new_fp and pending is None:
        if canary_opens(cipher, new, record):
            finish_keys_compaction(storage)  # a run stopped between its swap and its compaction
            return RotationResult(old_fp, new_fp, 0, 0, already_done=True)
    open_keyring(storage, cipher, old)  # proves ``old`` is the key the data uses
    if pending is not None and pending.get("to") != new_fp:
        _drop_staged(storage)  # an abandoned rotation to some other key
        pending = None
    if pending is None:
        pending = {
            "version": 1,
            "from": old_fp,
            "to": new_fp,
            "canary": master_record(cipher, new)["canary"],
            "started_at": time.time(),
        }
        batch = WriteBatch()
        batch.put(layout.META, layout.ROTATION_RECORD, layout.dump_json(pending))
        storage.write(batch, durable=True)
    entries = list(storage.iterate(layout.KEYS, prefix=layout.DEK_PREFIX))
    total, rewrapped, reused = len(entries), 0, 0
    batch = WriteBatch()
    for done, (key, value) in enumerate(entries, start=1):
        stream = layout.stream_of_dek_key(key)
        key_id, dek = unwrap_record(cipher, old, stream, value)
        staged = storage.get(layout.KEYS, layout.dek_key(stream, staged=True))
        if staged is not None and _opens(cipher, new, stream, key_id, staged):
            reused += 1
        else:
            aad = layout.dek_aad(stream, key_id)
            rewrapped_value = layout.encode_dek_record(key_id, cipher.wrap_key(new.reveal(), dek, aad))
            batch.put(layout.KEYS, layout.dek_key(stream, staged=True), rewrapped_value)
            rewrapped += 1
        if len(batch) >= batch_size:
            storage.write(batch, durable=True)
            batch = WriteBatch()
        if progress is not None:
            if len(batch):
                storage.write(batch, durable=True)
                batch = WriteBatch()
            progress(done, total)
    if len(batch):
        storage.write(batch, durable=True)
    _flip(storage, cipher, new)
    log.info("rotated the master key from %s to %s (%d data keys)", old_fp, new_fp, total)
    return RotationResult(old_fp, new_fp, rewrapped, reused)


def finish_with_new_key(
    storage: Any, cipher: Any, new: MasterKey, pending: dict[str, Any], *, commit: bool = True
) -> bool:
    """Finish an interrupted rotation using only the new key, if every key was staged.

    With ``commit=False`` only say whether it could be finished (nothing is written).
    """
    if not canary_opens(cipher, new, pending):
        return False
    for key, value in storage.iterate(layout.KEYS, prefix=layout.DEK_PREFIX):
        stream = layout.stream_of_dek_key(key)
        key_id, _ = layout.decode_dek_record(value)
        staged = storage.get(layout.KEYS, layout.dek_key(stream, staged=True))
        if staged is None or not _opens(cipher, new, stream, key_id, staged):
            return False
    if commit:
        _flip(storage, cipher, new)
    return True


def _opens(cipher: Any, new: MasterKey, stream: str, key_id: bytes, staged: bytes) -> bool:
    try:
        staged_id, wrapped = layout.decode_dek_record(staged)
        if staged_id != key_id:
            return False
        cipher.unwrap_key(new.reveal(), wrapped, layout.dek_aad(stream, key_id))
        return True
    except (LoomError, ValueError):
        return False


def _flip(storage: Any, cipher: Any, new: MasterKey) -> None:
    """One atomic batch: staged keys become live, the check record names ``new``, and a
    pending ``keys`` compaction is recorded, so a crash before it is finished at the next open."""
    batch = WriteBatch()
    for key, value in list(storage.iterate(layout.KEYS, prefix=layout.STAGED_PREFIX)):
        stream = layout.stream_of_dek_key(key)
        live = storage.get(layout.KEYS, layout.dek_key(stream))
        if live is not None and layout.decode_dek_record(live)[0] == layout.decode_dek_record(value)[0]:
            batch.put(layout.KEYS, layout.dek_key(stream), value)
        batch.delete(layout.KEYS, key)
    batch.put(layout.META, layout.MASTER_RECORD, layout.dump_json(master_record(cipher, new)))
    batch.delete(layout.META, layout.ROTATION_RECORD)
    batch.put(layout.META, layout.KEYS_COMPACTION_RECORD, layout.dump_json({"reason": "rotation"}))
    storage.write(batch, durable=True)
    # drop the copies wrapped under the old key from live files
    finish_keys_compaction(storage)


def _drop_staged(storage: Any) -> None:
    batch = WriteBatch()
    for key, _ in list(storage.iterate(layout.KEYS, prefix=layout.STAGED_PREFIX)):
        batch.delete(layout.KEYS, key)
    batch.delete(layout.META, layout.ROTATION_RECORD)
    storage.write(batch, durable=True)
