"""Backups: a storage checkpoint plus a manifest; the index is rebuilt on restore.

Copying the index directory while a writer holds it could capture a state
that does not match the checkpoint, so a backup holds storage only (the
source of truth: chunks, routing, embeddings, graph, wrapped keys) and the
engine rebuilds the full-text index from it when the restored directory is
first opened (its document count differs from storage).

Layout of a backup directory::

    DEST/manifest.json   {"format": "loomem-backup", "version": 1, "created_at", "chunks",
                          "master_key_fingerprint", ...}
    DEST/storage/        the storage backend's checkpoint
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.backends_record import STORAGE_DIR

if TYPE_CHECKING:
    from loom_core.memory.engine import MemoryEngine

FORMAT = "loomem-backup"
VERSION = 1
MANIFEST = "manifest.json"


def _failed(path: Path, why: str) -> LoomError:
    return LoomError(ErrorCode.BACKUP_FAILED, f"{path}: {why}", details={"path": str(path)})


def write_checkpoint(engine: MemoryEngine, dest: Path) -> dict[str, Any]:
    """Checkpoint ``engine``'s storage into the new directory ``dest``."""
    from loom_core.memory.engine import now_ms

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise _failed(dest, "the backup destination already exists and is not an empty directory")
    if "checkpoint" not in getattr(engine.storage, "capabilities", frozenset()):
        raise _failed(dest, f"storage backend {engine.config.storage.backend!r} cannot take checkpoints")
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        engine.storage.checkpoint(dest / STORAGE_DIR)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": now_ms(),
            "storage_backend": engine.config.storage.backend,
            "chunks": len(engine._routing),
            "streams": len({r.stream for r in engine._routing.values()}),
            # which master key the encrypted rows need (a one-way digest; None: encryption off)
            "master_key_fingerprint": getattr(engine.codec, "fingerprint", None),
            "index": "not included; rebuilt from storage when the restored directory is opened",
        }
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _make_private(dest)
    except (LoomError, OSError) as exc:
        if created:  # no half-written backup left behind to be mistaken for one
            shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _failed(dest, f"cannot write the backup: {exc.strerror or exc}") from exc
        if exc.code is ErrorCode.BACKUP_FAILED:
            raise
        raise _failed(dest, f"checkpoint failed: {exc.message}") from exc
    return manifest


def _make_private(dest: Path) -> None:
    """Only the owner may enter the backup's directories (mode 0700), whatever the umask.

    A backup holds everything the data directory holds, but a default ``<data_dir>-backups``
    sits beside it, outside the protection the data directory's own mode gives. Files keep
    their modes: RocksDB hard-links table files into checkpoints, so changing a file's mode
    would change the live one's too; closed directories are enough.
    """
    for directory in [dest, *(p for p in dest.rglob("*") if p.is_dir() and not p.is_symlink())]:
        directory.chmod(0o700)


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of backup ``src``; BACKUP_FAILED when it is not a backup."""
    path = src / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise _failed(src, f"not a Loomem backup (no {MANIFEST})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise _failed(path, f"unreadable backup manifest ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise _failed(path, "unknown backup format or version")
    if not (src / STORAGE_DIR).is_dir():
        raise _failed(src, "the backup has no storage/ directory")
    return manifest


def restore_files(src: Path, data_dir: Path, storage_backend: str) -> dict[str, Any]:
    """Copy backup ``src`` into ``data_dir`` (which must be absent or empty).

    ``storage_backend`` is the configured one: a checkpoint another backend
    wrote is refused, since opening it would start an empty store beside it.
    A copy that fails part-way is removed again (see :func:`undo_restore`).
    """
    manifest = read_manifest(src)
    taken_with = manifest.get("storage_backend")
    if taken_with is not None and taken_with != storage_backend:
        raise _failed(
            src,
            f"the backup was taken from storage backend {taken_with!r}, but the configuration selects "
            f"{storage_backend!r}: restore it with a configuration selecting {taken_with!r} (--config), then "
            "move the streams with `loom export` / `loom import` if you are changing backends",
        )
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise _failed(data_dir, "refusing to restore over a data directory that is not empty")
    existed = data_dir.exists()
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as a data directory the engine creates
        shutil.copytree(src / STORAGE_DIR, data_dir / STORAGE_DIR)
    except OSError as exc:
        undo_restore(data_dir, existed)
        raise _failed(data_dir, f"cannot copy the backup: {exc.strerror or exc}") from exc
    return manifest


def undo_restore(data_dir: Path, existed: bool) -> None:
    """Remove what a failed restore put into ``data_dir``, which was absent or empty before,
    so that the restore can simply be run again (with the right key, say)."""
    if not existed:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for child in list(data_dir.iterdir()) if data_dir.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
