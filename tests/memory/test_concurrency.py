"""Concurrent writers and searchers (searches run outside the engine lock)."""

from __future__ import annotations

import threading

from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest


def test_parallel_writes_deletes_and_searches_stay_consistent(engine: MemoryEngine) -> None:
    """Threads adding, deleting and searching at once raise nothing, and storage,
    index and vectors agree afterwards; searches never return a deleted chunk's
    stale row (every result reads back whole)."""
    errors: list[BaseException] = []
    deleted: list[str] = []

    def writer(n: int) -> None:
        try:
            for batch in range(6):
                made = engine.add_chunks(f"w{n}", [ChunkInput(f"parallel ibis {n} {batch} {i}") for i in range(40)])
                engine.delete_chunk(made[0].id)
                deleted.append(made[0].id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def searcher() -> None:
        try:
            for _ in range(40):
                for mode in ("hybrid", "bm25", "vector"):
                    for result in engine.search(SearchRequest("parallel ibis", k=20, mode=mode)):  # type: ignore[arg-type]
                        assert result.chunk.content.startswith("parallel ibis")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=searcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    report = engine.check_consistency()
    assert report["storage"] == report["index"] == report["vectors"] == 3 * 6 * 39
    assert report["missing_in_index"] == report["extra_in_index"] == []
    assert not set(deleted) & set(engine.index.ids())
