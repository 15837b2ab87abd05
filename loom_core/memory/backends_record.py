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


def reset_index_if_changed(data_dir: Path, backend: str) -> bool:
    """Empty ``<data_dir>/index`` when another index backend wrote it; True if it did.

    Call only while holding the storage open (its lock keeps a second process
    from emptying the index of a running server).
    """
    record = _read(data_dir)
    recorded = None if record is None else record.get("index_backend")
    if recorded is None or recorded == backend:
        return False
    shutil.rmtree(data_dir / "index", ignore_errors=True)
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


__all__ = ["RECORD", "check_storage", "record_backends", "reset_index_if_changed"]
