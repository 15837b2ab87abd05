"""Entry point module: registers the ``rocksdb`` storage backend."""

from __future__ import annotations

from typing import Any

from loom_core.contracts import BackendContext
from loom_core.hookspecs import hookimpl
from loom_storage_rocksdb.storage import CAPABILITIES, RocksStorage


def create(ctx: BackendContext) -> RocksStorage:
    """Open (creating if needed) the RocksDB directory ``ctx.data_dir``."""
    return RocksStorage.open(ctx)


@hookimpl
def loom_register_backends(registry: Any) -> None:
    registry.add_storage(
        "rocksdb",
        create,
        capabilities=CAPABILITIES,
        description="RocksDB (rocksdict): column families, atomic batches, checkpoints",
    )
