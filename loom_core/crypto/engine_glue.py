"""What encryption needs from a running memory engine: its storage, codec, lock, rows.

Kept in one place so the router, the CLI and the benchmark agree, and so a
change of the engine's internals touches one module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
from contextlib import AbstractContextManager
from typing import Any

from loom_core.crypto.backfill import SealedFamily
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.rows import Routing

log = logging.getLogger("loom.crypto")
_HEADER_LEN = struct.Struct(">I")  # graph envelope: length of the plaintext header


def _first_attr(obj: Any, *names: str) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def engine_storage(engine: Any) -> Any:
    storage = _first_attr(engine, "storage", "_storage")
    if storage is None:
        raise LoomError(ErrorCode.INTERNAL_ERROR, "the memory engine exposes no storage")
    return storage


def engine_codec(engine: Any) -> Any:
    return _first_attr(engine, "codec", "_codec")


def engine_lock(engine: Any) -> AbstractContextManager[Any]:
    """The engine's write lock, so backfill batches do not race writers."""
    lock = _first_attr(engine, "write_lock", "_write_lock", "lock", "_lock")
    return lock if lock is not None else contextlib.nullcontext()


def sealed_families(engine: Any) -> list[SealedFamily]:
    """The keyspaces whose rows go through the codec, with how to find each row's stream.

    Follows the row format of :mod:`loom_core.memory.rows`: chunk content rows
    (``chunks``, stream from the plaintext ``routing`` record) and entity /
    relation rows (``graph`` ``ent:`` / ``rel:``, a plaintext header naming the
    stream followed by the sealed body).
    """
    provider = _first_attr(engine, "sealed_families")
    if provider is not None:
        return list(provider() if callable(provider) else provider)
    storage = engine_storage(engine)

    def chunk_stream(key: bytes, value: bytes) -> str | None:
        chunk_id = key.rsplit(b":", 1)[-1]
        routing = storage.get("routing", chunk_id)
        if routing is None:
            return None  # an orphan row: leave it to the consistency check
        return Routing.from_bytes(routing).stream  # lenient: rows older versions wrote with a raw "\n"

    def graph_stream(key: bytes, value: bytes) -> str | None:
        size = _HEADER_LEN.unpack_from(value)[0]
        stream = json.loads(value[4 : 4 + size]).get("stream")
        return None if stream is None else str(stream)

    def graph_body(value: bytes) -> int:
        return 4 + int(_HEADER_LEN.unpack_from(value)[0])

    return [
        SealedFamily("chunks", chunk_stream, b"chunk:"),
        SealedFamily("graph", graph_stream, b"ent:", graph_body),
        SealedFamily("graph", graph_stream, b"rel:", graph_body),
    ]


def open_engine(config: Any, host: Any, data_dir: Any, environ: Any = None) -> Any:
    """Open the memory engine on ``data_dir`` with the row codec the configuration asks for.

    Checks the master key against the data directory first (refusing start-up
    with an ``ENCRYPTION_*`` code), then opens the engine with the codec and
    binds the codec to the engine's storage. Work a crash cut short is
    finished here: key shredding, and the final compaction of a backfill.
    """
    from pathlib import Path

    from loom_core.crypto import build_row_codec
    from loom_core.memory.engine import MemoryEngine

    env = environ if environ is not None else host.environ
    codec = build_row_codec(config, host, Path(data_dir), env)
    engine = MemoryEngine.open(config, host, Path(data_dir), codec=codec, environ=env)
    try:
        codec.bind(engine_storage(engine))
        shred_orphan_keys(engine)
        finish_backfill_compaction(engine)
    except BaseException:
        engine.close()
        raise
    return engine


def shred_orphan_keys(engine: Any) -> list[str]:
    """Destroy the data keys of streams that no longer hold any row.

    A stream's key is destroyed right after the stream's rows are deleted; a
    crash between the two would leave the key behind. This finishes the job
    at start-up. It only runs when the engine can say which streams are empty
    (``empty_streams``, the rule the engine shreds by), so it never guesses.
    """
    codec = engine_codec(engine)
    keyring = getattr(codec, "keyring", None)
    empty_streams = getattr(engine, "empty_streams", None)
    if keyring is None or not callable(empty_streams):
        return []
    keyring.finish_shredding()  # a crash inside an earlier destroy() may have left a key in a file
    orphans: list[str] = keyring.destroy(empty_streams(keyring.streams()))
    for stream in orphans:
        log.warning("destroyed the data key of deleted stream %r left by an interrupted deletion", stream)
    return orphans


def finish_backfill_compaction(engine: Any) -> bool:
    """Compact the content keyspaces if a backfill was stopped in its final compaction.

    Until then the plaintext versions the backfill replaced are still in table
    files, and the backfill reports ``compacting``, not ``done``.
    """
    from loom_core.crypto import backfill

    storage = engine_storage(engine)
    if backfill.status(storage).get("state") != backfill.COMPACTING:
        return False
    log.info("finishing the compaction of an interrupted encrypt-at-rest backfill")
    return backfill.finish_compaction(storage, sealed_families(engine))
