"""The tantivy backend passes the index conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from loom_core.contracts import BackendContext
from loom_core.contracts.index import Index
from loom_core.plugins.host import PluginHost
from loom_core.testing.index import IndexSuite, MakeIndex


class TestTantivyIndex(IndexSuite):
    capabilities = frozenset({"add_new", "multiprocess_lock"})
    backend_name = "tantivy"

    @pytest.fixture
    def make_index(self) -> MakeIndex:
        host = PluginHost(environ={})

        def make(path: Path) -> Index:
            index: Index = host.create("index", "tantivy", BackendContext(data_dir=path))
            return index

        return make
