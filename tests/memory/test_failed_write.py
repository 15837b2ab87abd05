"""A storage write that fails publishes nothing: no index document without its row."""

from __future__ import annotations

from typing import Any

import pytest

from loom_core.contracts.index import IndexQuery
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest


def test_failed_write_withdraws_queued_index_documents(engine: MemoryEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents handed to the index before a failed durable write never reach a later commit."""
    real_write = engine.storage.write
    calls = {"n": 0}

    def fail_once(batch: Any, *, durable: bool = False) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise LoomError(ErrorCode.STORAGE_IO, "disk full (simulated)")
        real_write(batch, durable=durable)

    monkeypatch.setattr(engine.storage, "write", fail_once)
    with pytest.raises(LoomError) as info:
        engine.add_chunks("s", [ChunkInput(content="zebracorn lost write")])
    assert info.value.code is ErrorCode.STORAGE_IO

    engine.add_chunks("s", [ChunkInput(content="ordinary kept write")])  # commits the index again
    report = engine.check_consistency()
    assert report["extra_in_index"] == [] and report["missing_in_index"] == []
    assert report["storage"] == report["index"] == 1
    assert engine.index.search(IndexQuery(text="zebracorn")) == []
    found = engine.search(SearchRequest(query="zebracorn", stream="s", mode="bm25"))
    assert [r.chunk.content for r in found] == []
