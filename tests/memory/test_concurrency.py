"""Concurrent writers and searchers (searches run outside the engine lock)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

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


def test_ids_follow_commit_order_so_a_paginator_misses_nothing(
    engine: MemoryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer A starts first but its embedding is slow; writer B commits in between. A's chunk
    must still sort after B's (id and created_at), or a client that read the page ending at B
    would never see A. Ids and times used to be taken before the embedding."""
    real_embed = engine.llm.embed
    a_embedding, b_committed = threading.Event(), threading.Event()

    def embed(texts: list[str]) -> object:
        if texts == ["slow writer A"]:
            a_embedding.set()
            assert b_committed.wait(30)
        return real_embed(texts)

    monkeypatch.setattr(engine.llm, "embed", embed)
    made: dict[str, list[Any]] = {}
    def write_a() -> None:
        made["a"] = engine.add_chunks("s", [ChunkInput("slow writer A")])

    writer_a = threading.Thread(target=write_a)
    writer_a.start()
    assert a_embedding.wait(30)
    made["b"] = engine.add_chunks("s", [ChunkInput("fast writer B")])
    page = engine.list_chunks("s")  # a reader pages now: it has seen B
    b_committed.set()
    writer_a.join(30)
    (a,), (b,) = made["a"], made["b"]
    assert a.id > b.id and a.created_at >= b.created_at
    assert [c.id for c in page.items] == [b.id]
    later = engine.list_chunks("s", cursor=b.id)
    assert [c.id for c in later.items] == [a.id], "the paginator lost A"


def test_ids_ascend_across_batches_in_one_millisecond_and_when_the_clock_steps_back() -> None:
    """Batches minted in the same millisecond, or after the clock went back, continue after the
    previous id instead of starting at a random point that may sort before it."""
    from loom_core.memory.ids import new_ids

    first = new_ids(3, timestamp_ms=1_700_000_000_000)
    same_ms = new_ids(3, timestamp_ms=1_700_000_000_000, after=first[-1])
    stepped_back = new_ids(2, timestamp_ms=1_699_999_999_000, after=same_ms[-1])
    ids = first + same_ms + stepped_back
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
