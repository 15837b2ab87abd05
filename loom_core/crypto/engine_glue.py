"""What encryption needs from a running memory engine: its storage, codec, lock, rows.

Kept in one place so the router, the CLI and the benchmark agree, and so a
change of the engine's internals touches one module.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

from loom_core.crypto.backfill import SealedFamily
from loom_core.errors import ErrorCode, LoomError


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
    """The keyspaces whose rows go through the codec, with how to find each row's stream."""
    provider = _first_attr(engine, "sealed_families")
    if provider is None:
        raise LoomError(
            ErrorCode.INTERNAL_ERROR, "the memory engine does not list the rows it seals (sealed_families)"
        )
    return [
        f if isinstance(f, SealedFamily) else SealedFamily(*f)
        for f in (provider() if callable(provider) else provider)
    ]


def open_engine(config: Any, host: Any, data_dir: Any, environ: Any = None) -> Any:
    """Open the memory engine on ``data_dir`` with the row codec the configuration asks for.

    Checks the master key against the data directory first (refusing start-up
    with an ``ENCRYPTION_*`` code), then opens the engine with the codec and
    binds the codec to the engine's storage.
    """
    from pathlib import Path

    from loom_core.crypto import build_row_codec
    from loom_core.memory.engine import MemoryEngine

    env = environ if environ is not None else host.environ
    codec = build_row_codec(config, host, Path(data_dir), env)
    engine = MemoryEngine.open(config, host, Path(data_dir), codec=codec, environ=env)
    try:
        codec.bind(engine_storage(engine))
    except BaseException:
        engine.close()
        raise
    return engine
