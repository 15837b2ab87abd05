"""Which backends a data directory was written with, so no other one is opened over it.

A storage backend opened on a directory another backend wrote finds nothing it
recognises and starts an empty store beside the real one: a server started
without its ``--config`` served an empty memory and split new writes across
two stores. ``<data_dir>/loom-data.json`` records the storage and index
backends. A different storage backend is refused (``CONFIG_INVALID``); a
different index backend is allowed, because the index is derived from storage:
its directory is emptied and rebuilt. A directory written before this record
existed is adopted by the first backends that open it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from loom_core.errors import ErrorCode, LoomError

RECORD = "loom-data.json"
FORMAT = "loomem-data"
STORAGE_DIR = "storage"  # <data_dir>/storage: the storage backend's files (also a backup's checkpoint)
INDEX_DIR = "index"  # <data_dir>/index: the index backend's files


def _read(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"{path} is unreadable ({type(exc).__name__}); it records which storage backend wrote this data "
            f'directory: restore it, or write {{"format": "{FORMAT}", "storage_backend": "<name>"}}',
            details={"path": str(path)},
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"{path} is not a Loomem data-directory record (format {FORMAT!r} expected)",
            details={"path": str(path)},
        )
    return record


def check_storage(data_dir: Path, backend: str) -> None:
    """Refuse to open ``data_dir`` with storage ``backend`` if another one wrote it."""
    record = _read(data_dir)
    recorded = None if record is None else record.get("storage_backend")
    if recorded is not None and recorded != backend:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"data directory {data_dir} was written by storage backend {recorded!r}, but the configuration "
            f"selects {backend!r}: set storage.backend = {recorded!r} (is the right --config given?), or move "
            "the streams to a new data directory with `loom export` / `loom import`",
            details={"key": "storage.backend", "recorded": recorded, "path": str(data_dir)},
        )


def reset_index_if_changed(data_dir: Path, backend: str, *, storage_locks: bool) -> bool:
    """Empty ``<data_dir>/index`` when another index backend wrote it; True if it did.

    Call only while holding the storage open: its lock (``storage_locks``, the
    ``multiprocess_lock`` capability) keeps a second process from emptying the
    index of a running server. Without one the reset is refused.
    """
    record = _read(data_dir)
    recorded = None if record is None else record.get("index_backend")
    if recorded is None or recorded == backend:
        return False
    index_dir = data_dir / INDEX_DIR
    if not storage_locks:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"{index_dir} was written by index backend {recorded!r}, not the configured {backend!r}, and the "
            "storage backend cannot lock the directory against a running server: with no server running, "
            f"remove {index_dir} (it is rebuilt from storage) or set index.backend = {recorded!r}",
            details={"key": "index.backend", "recorded": recorded, "path": str(index_dir)},
        )
    try:
        if index_dir.exists():
            shutil.rmtree(index_dir)
    except OSError as exc:
        raise LoomError(
            ErrorCode.INDEX_IO,
            f"{index_dir} holds index backend {recorded!r}'s files and could not be emptied for {backend!r} "
            f"({type(exc).__name__}: {exc.strerror or exc}); remove it by hand (it is rebuilt from storage)",
            details={"path": str(index_dir)},
        ) from None
    return True


def record_backends(data_dir: Path, storage_backend: str, index_backend: str) -> None:
    """Write the record (atomically) unless it already says exactly this."""
    wanted = {"format": FORMAT, "storage_backend": storage_backend, "index_backend": index_backend}
    if _read(data_dir) == wanted:
        return
    path = data_dir / RECORD
    tmp = path.with_name(f".{RECORD}.tmp")
    tmp.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["INDEX_DIR", "RECORD", "STORAGE_DIR", "check_storage", "record_backends", "reset_index_if_changed"]
