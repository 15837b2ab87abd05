"""Fixtures: a memory engine over real RocksDB and Tantivy directories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loom_core.config import LoomConfig
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.rowcodec import RowCodec
from loom_core.plugins.host import PluginHost

Opener = Callable[..., MemoryEngine]


@pytest.fixture
def open_engine(tmp_path: Path) -> Iterator[Opener]:
    """Open engines on ``tmp_path/data`` (or another directory); all are closed at the end."""
    opened: list[MemoryEngine] = []

    def opener(
        data_dir: Path | None = None,
        *,
        codec: RowCodec | None = None,
        config: LoomConfig | None = None,
        **search: Any,
    ) -> MemoryEngine:
        cfg = config or LoomConfig()
        if search:
            cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update=search)})
        engine = MemoryEngine.open(cfg, PluginHost(environ={}), data_dir or tmp_path / "data", codec=codec)
        opened.append(engine)
        return engine

    yield opener
    for engine in opened:
        engine.close()


@pytest.fixture
def engine(open_engine: Opener) -> MemoryEngine:
    return open_engine()
