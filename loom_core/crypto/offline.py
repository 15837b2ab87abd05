"""Encryption maintenance on a data directory while no server holds it open.

``loom encryption status|rotate`` work here: they open only the ``keys`` and
``meta`` keyspaces of the storage under ``<data_dir>/storage`` (a running
server holds the directory's lock, so they get ``STORAGE_LOCKED`` instead of
racing it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loom_core.crypto import layout
from loom_core.crypto.masterguard import keys_compaction_pending, read_record


def storage_dir(data_dir: Path) -> Path:
    """Where the memory engine keeps its storage backend's files."""
    from loom_core.memory.backends_record import STORAGE_DIR

    return Path(data_dir) / STORAGE_DIR


def open_key_storage(config: Any, host: Any, data_dir: Path) -> Any:
    """The configured storage backend on ``data_dir``, with ``keys`` and ``meta`` open.

    Refuses a data directory another storage backend wrote (``CONFIG_INVALID``).
    """
    from loom_core.contracts import BackendContext
    from loom_core.memory.backends_record import check_storage

    check_storage(Path(data_dir), config.storage.backend)

    ctx = BackendContext(
        options=dict(config.storage.options),
        environ=dict(host.environ),
        data_dir=storage_dir(data_dir),
        keyspaces=(layout.KEYS, layout.META),
    )
    return host.create("storage", config.storage.backend, ctx)


def describe(storage: Any, codec: Any | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``status`` shows: mode, fingerprints, key count, rotation and backfill state."""
    from loom_core.crypto import backfill

    record = read_record(storage, layout.MASTER_RECORD)
    pending = read_record(storage, layout.ROTATION_RECORD)
    streams = sum(1 for _ in storage.iterate(layout.KEYS, prefix=layout.DEK_PREFIX))
    destroyed = sum(1 for _ in storage.iterate(layout.KEYS, prefix=layout.DESTROYED_PREFIX))
    active = bool(codec is not None and getattr(codec, "encrypting", False))
    return {
        "enabled": active,
        "cipher": getattr(getattr(codec, "cipher", None), "name", None) if active else None,
        "fingerprint": getattr(codec, "fingerprint", None) if active else None,
        "data_written_encrypted": record is not None,
        "expected_fingerprint": None if record is None else record.get("fingerprint"),
        "streams_with_keys": streams,
        "destroyed_keys": destroyed,
        "rotation_pending": None if pending is None else {"from": pending.get("from"), "to": pending.get("to")},
        # keys wrapped under a retired master key may still be in table files until the next open compacts them
        "keys_compaction_pending": keys_compaction_pending(storage),
        "backfill": backfill.status(storage),
    }
