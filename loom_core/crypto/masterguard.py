"""Start-up checks that tie a data directory to one master key.

The first encrypted start writes a check record into ``meta``: the master
key's fingerprint and a canary sealed under it. Every later start compares
against it, so a wrong key refuses start-up with ``ENCRYPTION_KEY_MISMATCH``
(naming the expected fingerprint) instead of serving errors or garbage, and a
start without any key refuses with ``ENCRYPTION_KEY_MISSING`` once data was
written encrypted: silently running in plaintext mode over encrypted data
would write new memories unencrypted and fail every read of the old ones.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from loom_core.contracts.storage import WriteBatch
from loom_core.crypto import layout
from loom_core.crypto.keyring import KeyRing
from loom_core.crypto.masterkey import MasterKey
from loom_core.errors import ErrorCode, LoomError

log = logging.getLogger("loom.crypto")


def read_record(storage: Any, key: bytes) -> dict[str, Any] | None:
    value = storage.get(layout.META, key)
    if value is None:
        return None
    try:
        return layout.load_json(value)
    except ValueError:
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISMATCH,
            f"the encryption record {key.decode()!r} in the meta keyspace is corrupt; "
            "restore the data directory from a backup",
        ) from None


def keys_compaction_pending(storage: Any) -> bool:
    return storage.get(layout.META, layout.KEYS_COMPACTION_RECORD) is not None


def finish_keys_compaction(storage: Any) -> bool:
    """Compact ``keys`` if a rotation swapped keys and was stopped before compacting; whether it ran.

    The swap writes the pending record in the same atomic batch, so until this
    has run a table file may still hold data keys wrapped under the retired
    master key, which would still decrypt everything.
    """
    if not keys_compaction_pending(storage):
        return False
    storage.flush()
    storage.compact(layout.KEYS)
    batch = WriteBatch()
    batch.delete(layout.META, layout.KEYS_COMPACTION_RECORD)
    storage.write(batch, durable=True)
    return True


def has_wrapped_keys(storage: Any) -> bool:
    return any(True for _ in storage.iterate(layout.KEYS, prefix=layout.DEK_PREFIX))


def master_record(cipher: Any, master: MasterKey) -> dict[str, Any]:
    """The check record for ``master``: fingerprint plus a sealed canary."""
    canary = cipher.encrypt(master.reveal(), layout.CANARY_PLAINTEXT, layout.CANARY_AAD)
    return {
        "version": 1,
        "cipher": cipher.name,
        "fingerprint": master.fingerprint(cipher),
        "canary": layout.b64(canary),
        "created_at": time.time(),
    }


def canary_opens(cipher: Any, master: MasterKey, record: dict[str, Any]) -> bool:
    try:
        sealed = layout.unb64(str(record.get("canary", "")))
        return bool(cipher.decrypt(master.reveal(), sealed, layout.CANARY_AAD) == layout.CANARY_PLAINTEXT)
    except (LoomError, ValueError):
        return False


def expected_fingerprint(storage: Any) -> str | None:
    record = read_record(storage, layout.MASTER_RECORD)
    return None if record is None else str(record.get("fingerprint", "unknown"))


def refuse_plaintext_start(storage: Any, env_name: str) -> None:
    """Without a master key: refuse if anything was ever written encrypted."""
    expected = expected_fingerprint(storage)
    if expected is not None or has_wrapped_keys(storage):
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISSING,
            "this data directory was written with encryption at rest "
            f"(master key fingerprint {expected or 'unknown'}) but no master key is set; "
            f"set {env_name} to that key",
            details={"expected_fingerprint": expected},
        )


def open_keyring(storage: Any, cipher: Any, master: MasterKey, *, read_only: bool = False) -> KeyRing:
    """Verify ``master`` against the data directory, then return its key ring.

    First encrypted start: writes the check record. A pending rotation to
    ``master`` whose data keys are all re-wrapped is finished here, and so is
    the ``keys`` compaction of a rotation stopped right after its swap; any
    other mismatch raises ``ENCRYPTION_KEY_MISMATCH`` naming the expected
    fingerprint. ``read_only`` (``loom encryption status``) checks the same
    and writes nothing: no check record, no finished rotation or compaction.
    """
    ring = _verified_keyring(storage, cipher, master, read_only)
    if not read_only and finish_keys_compaction(storage):
        log.warning("compacted the data keys a master-key rotation left wrapped under the old key")
    return ring


def _verified_keyring(storage: Any, cipher: Any, master: MasterKey, read_only: bool) -> KeyRing:
    from loom_core.crypto import rotation  # late: rotation imports this module

    fingerprint = master.fingerprint(cipher)
    record = read_record(storage, layout.MASTER_RECORD)
    pending = read_record(storage, layout.ROTATION_RECORD)
    if record is None:
        if has_wrapped_keys(storage):
            raise LoomError(
                ErrorCode.ENCRYPTION_KEY_MISMATCH,
                "data keys exist but the master-key check record is missing; the data directory is "
                "incomplete, restore it from a backup",
            )
        if read_only:
            return KeyRing(storage, cipher, master)
        batch = WriteBatch()
        batch.put(layout.META, layout.MASTER_RECORD, layout.dump_json(master_record(cipher, master)))
        storage.write(batch, durable=True)
        log.info("encryption at rest enabled for this data directory (master key %s)", fingerprint)
        return KeyRing(storage, cipher, master)
    expected = str(record.get("fingerprint", ""))
    if record.get("cipher") not in (None, cipher.name):
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISMATCH,
            f"the data was encrypted with cipher {record.get('cipher')!r} but {cipher.name!r} is "
            "configured; set encryption.cipher back",
            details={"expected_cipher": record.get("cipher")},
        )
    if expected == fingerprint and canary_opens(cipher, master, record):
        if pending is not None:
            log.warning(
                "a master-key rotation to %s was interrupted; the data is readable with the current "
                "key, run `loom encryption rotate` again to finish it",
                pending.get("to"),
            )
        return KeyRing(storage, cipher, master)
    if pending is not None and pending.get("to") == fingerprint:
        if rotation.finish_with_new_key(storage, cipher, master, pending, commit=not read_only):
            if not read_only:
                log.warning("finished an interrupted master-key rotation to %s", fingerprint)
            return KeyRing(storage, cipher, master)
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISMATCH,
            f"a master-key rotation from {expected} to {fingerprint} was interrupted before every "
            f"data key was re-wrapped; start with the old key (fingerprint {expected}) or run "
            "`loom encryption rotate` again with the old key set to finish the rotation",
            details={"expected_fingerprint": expected, "given_fingerprint": fingerprint},
        )
    raise LoomError(
        ErrorCode.ENCRYPTION_KEY_MISMATCH,
        f"the master key (fingerprint {fingerprint}) is not the key this data was written with; "
        f"expected fingerprint {expected}",
        details={"expected_fingerprint": expected, "given_fingerprint": fingerprint},
    )
