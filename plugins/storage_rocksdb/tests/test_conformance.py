"""The rocksdb backend passes the storage conformance suite."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from loom_core.contracts import BackendContext
from loom_core.contracts.storage import Storage
from loom_core.plugins.host import PluginHost
from loom_core.testing.storage import MakeStorage, StorageSuite


class TestRocksDBStorage(StorageSuite):
    capabilities = frozenset({"checkpoint", "compact", "durable", "multiprocess_lock"})
    backend_name = "rocksdb"

    @pytest.fixture
    def make_storage(self) -> MakeStorage:
        host = PluginHost(environ={})

        def make(path: Path, keyspaces: Sequence[str]) -> Storage:
            ctx = BackendContext(data_dir=path, keyspaces=tuple(keyspaces))
            store: Storage = host.create("storage", "rocksdb", ctx)
            return store

        return make
