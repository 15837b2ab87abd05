"""Hybrid search: modes, exact filters, per-signal scores, recency and decay."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory import overlap
from loom_core.memory.engine import MemoryEngine, now_ms
from loom_core.memory.models import ChunkInput, SearchRequest
from loom_core.memory.scoring import DAY_MS, recency, rrf


@pytest.fixture
def corpus(engine: MemoryEngine) -> dict[str, str]:
    made = {
        "tea": engine.add_chunk("kitchen", ChunkInput("green tea is brewed at eighty degrees")),
        "coffee": engine.add_chunk("kitchen", ChunkInput("espresso coffee needs finely ground beans")),
        "tea_l1": engine.add_chunk("kitchen", ChunkInput("summary: tea and coffee preferences", level=1)),
        "garden": engine.add_chunk("garden", ChunkInput("tomatoes need sun and water")),
        "garden_tea": engine.add_chunk("garden", ChunkInput("chamomile tea grows in the garden")),
    }
    return {name: chunk.id for name, chunk in made.items()}


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_each_mode_finds_the_matching_chunk_first(engine: MemoryEngine, corpus: dict[str, str], mode: str) -> None:
    """Every mode ranks the chunk that shares the query's words first and
    reports the signals that mode uses."""
    results = engine.search(SearchRequest("espresso coffee beans", stream="kitchen", mode=mode))  # type: ignore[arg-type]
    assert results[0].chunk.id == corpus["coffee"]
    top = results[0].scores
    assert (top.bm25 is not None) == (mode in ("hybrid", "bm25"))
    assert (top.vector is not None) == (mode in ("hybrid", "vector"))
    assert 0 < top.recency <= 1 and top.fused == results[0].score
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_words_in_scripts_without_spaces_and_long_words_are_found(engine: MemoryEngine, mode: str) -> None:
    """A Chinese, Japanese or Korean sentence was one term, so no word inside it could be found
    in any mode; a 21-letter Russian word (42 bytes) and a 40-letter identifier were dropped
    from the index, and a Hindi word was cut at its virama (its tail matched alone). Fixed."""
    made = {
        "tokyo": engine.add_chunk("w", ChunkInput("我住在東京已经三年了")),
        "seoul": engine.add_chunk("w", ChunkInput("저는 서울에서 일합니다")),
        "sights": engine.add_chunk("w", ChunkInput("мы видели достопримечательности города")),
        "hindi": engine.add_chunk("w", ChunkInput("सबको नमस्ते कहो")),
        "ident": engine.add_chunk("w", ChunkInput("the build id is " + "k" * 40)),
        "other": engine.add_chunk("w", ChunkInput("nothing relevant in this one")),
    }
    cases = [("東京", "tokyo"), ("서울", "seoul"), ("достопримечательности", "sights"), ("k" * 40, "ident")]
    for query, expected in cases:
        results = engine.search(SearchRequest(query, stream="w", mode=mode))  # type: ignore[arg-type]
        assert results and results[0].chunk.id == made[expected].id, (query, mode)
    if mode == "bm25":  # the index keeps a Hindi word whole: the part after its virama is no word
        assert engine.search(SearchRequest("ते", stream="w", mode="bm25")) == []


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_filters_are_exact(engine: MemoryEngine, corpus: dict[str, str], mode: str) -> None:
    """Stream, streams, levels and time filters never let an excluded chunk through."""

    def ids(**kw: object) -> set[str]:
        return {r.chunk.id for r in engine.search(SearchRequest("tea", mode=mode, k=50, **kw))}  # type: ignore[arg-type]

    assert ids(stream="garden") == {corpus["garden_tea"]}
    assert ids(streams=["garden", "kitchen"]) == {corpus["tea"], corpus["tea_l1"], corpus["garden_tea"]}
    assert ids(stream="kitchen", levels=[1]) == {corpus["tea_l1"]}
    assert ids(stream="kitchen", levels=[0]) == {corpus["tea"]}
    created = engine.get_chunk(corpus["garden_tea"]).created_at
    assert ids(since=created + 1) == set()
    assert ids(until=created) == {corpus["tea"], corpus["tea_l1"]}
    assert ids(stream="nobody") == set()


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_superseded_chunks_only_when_asked(engine: MemoryEngine, mode: str) -> None:
    """The old version of an update is hidden unless include_superseded is set."""
    old = engine.add_chunk("s", ChunkInput("the meeting is on monday"))
    new = engine.add_chunk("s", ChunkInput("the meeting is on tuesday", supersedes=old.id))
    plain = {r.chunk.id for r in engine.search(SearchRequest("meeting", stream="s", mode=mode))}  # type: ignore[arg-type]
    both = {
        r.chunk.id
        for r in engine.search(SearchRequest("meeting", stream="s", mode=mode, include_superseded=True))  # type: ignore[arg-type]
    }
    assert plain == {new.id} and both == {old.id, new.id}


def test_hybrid_search_is_the_same_with_and_without_a_helper_thread(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``search.helper_threads`` only changes where the index half runs: results, order and every
    BM25 and vector score are identical with 0 and 1 helpers, and an index failure still surfaces
    with its code. (The size from which a helper is used is lowered so a small corpus takes that path.)"""
    monkeypatch.setattr(overlap, "MIN_ROWS", 1)
    words = "tea coffee garden meeting budget travel invoice river mountain".split()
    items = [ChunkInput(" ".join(words[(i * j) % len(words)] for j in range(1, 6)) + f" note{i}") for i in range(300)]
    inline = open_engine(tmp_path / "inline", helper_threads=0)
    helped = open_engine(tmp_path / "helped", helper_threads=1)
    for eng in (inline, helped):
        eng.add_chunks("s", items)

    def view(eng: MemoryEngine, query: str) -> list[tuple[str, float | None, float | None]]:
        hits = eng.search(SearchRequest(query, stream="s", k=20, mode="hybrid"))
        return [(r.chunk.content, r.scores.bm25, r.scores.vector) for r in hits]

    for query in ("tea garden", "budget meeting travel", "note17", "river"):
        # the fused score also holds recency, which moves with the clock between the two calls
        assert view(helped, query) == view(inline, query)
        assert view(helped, query)
    assert helped._overlap._pool is not None, "the helper thread was never used"
    assert inline._overlap._pool is None
    helped.index.close()
    with pytest.raises(LoomError) as err:
        helped.search(SearchRequest("tea", stream="s", mode="hybrid"))
    assert err.value.code is ErrorCode.INDEX_CLOSED


def test_bad_requests_are_validation_failures(engine: MemoryEngine) -> None:
    """Empty query, bad mode, k out of range, bad stream name, until <= since are refused."""
    for request in (
        SearchRequest(""),
        SearchRequest("x", mode="fuzzy"),  # type: ignore[arg-type]
        SearchRequest("x", k=0),
        SearchRequest("x", stream="bad name"),
        SearchRequest("x", since=10, until=10),
        SearchRequest("x", levels=[-1]),
        SearchRequest("x", levels=["a"]),  # type: ignore[list-item]
        SearchRequest("x", since="yesterday"),  # type: ignore[arg-type]
    ):
        with pytest.raises(LoomError) as err:
            engine.search(request)
        assert err.value.code is ErrorCode.VALIDATION_FAILED


def test_rrf_and_recency_formulas() -> None:
    """RRF is normalised to 1 for an item first in every list; recency halves per half-life."""
    fused = rrf([["a", "b"], ["a", "c"]], 60)
    assert fused["a"] == pytest.approx(1.0)
    assert fused["b"] == fused["c"] < fused["a"]
    assert recency(0, 0, 30) == 1.0
    assert recency(0, 30 * DAY_MS, 30) == pytest.approx(0.5)
    assert recency(0, 60 * DAY_MS, 30) == pytest.approx(0.25)


def _import_with_ages(engine: MemoryEngine, texts_and_ages: list[tuple[str, str, int]]) -> None:
    """Write chunks with given ages (days) through the import path, which keeps timestamps."""
    now = now_ms()
    lines = [
        {"record": "header", "format": "loomem-stream", "version": 1, "stream": "d", "embedder": "x", "dimension": 0}
    ]
    for chunk_id, text, age in texts_and_ages:
        stamp = now - age * DAY_MS
        lines.append(
            {
                "record": "chunk",
                "id": chunk_id,
                "stream": "d",
                "level": 0,
                "content": text,
                "metadata": {},
                "created_at": stamp,
                "updated_at": stamp,
                "supersedes": None,
                "superseded_by": None,
                "expires_at": None,
            }
        )
    engine.import_stream(io.StringIO("\n".join(json.dumps(x) for x in lines)))


def test_decay_ranks_stale_unused_chunks_lower(open_engine: Callable[..., MemoryEngine]) -> None:
    """Two equally relevant chunks: the one untouched for a year scores lower;
    using it (reading it) refreshes it."""
    engine = open_engine(recency_weight=0.5, decay_half_life_days=30.0)
    stale, fresh = "01J00000000000000000000001", "01J00000000000000000000002"
    _import_with_ages(engine, [(stale, "otter habitat notes", 365), (fresh, "otter habitat notes", 1)])
    results = engine.search(SearchRequest("otter habitat", stream="d", mode="bm25"))
    by_id = {r.chunk.id: r for r in results}
    assert by_id[stale].scores.recency < 0.01 < 0.9 < by_id[fresh].scores.recency
    assert results[0].chunk.id == fresh
    engine.get_chunk(stale)  # an access refreshes it
    again = {r.chunk.id: r for r in engine.search(SearchRequest("otter habitat", stream="d", mode="bm25"))}
    assert again[stale].scores.recency > 0.99


def test_expired_chunks_do_not_crowd_a_live_match_out_of_bm25(
    engine: MemoryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More expired chunks than a search's candidate pool outrank the one live match in BM25; before
    any sweep removes them, bm25 search still returns the live chunk (and only it). (Hybrid mode would
    find it through the exact vector half anyway, so it cannot show this.)"""
    import loom_core.memory.engine as engine_module

    start = now_ms()
    engine.add_chunks("s", [ChunkInput("walrus walrus walrus", expires_at=start + 60_000) for _ in range(120)])
    live = engine.add_chunk("s", ChunkInput("one walrus among many other plain words in a longer note"))
    monkeypatch.setattr(engine_module, "now_ms", lambda: start + 120_000)  # all 120 have expired
    found = engine.search(SearchRequest("walrus", mode="bm25", k=5))
    assert [r.chunk.id for r in found] == [live.id]


def test_expired_chunks_are_never_returned(engine: MemoryEngine) -> None:
    """A chunk past expires_at disappears from get, list and search at once, before any sweep."""
    import time

    soon = engine.add_chunk("s", ChunkInput("ephemeral lemur", expires_at=now_ms() + 1000))
    keep = engine.add_chunk("s", ChunkInput("durable lemur"))
    time.sleep(1.05)
    with pytest.raises(LoomError) as err:
        engine.get_chunk(soon.id)
    assert err.value.code is ErrorCode.NOT_FOUND
    assert [c.id for c in engine.list_chunks("s").items] == [keep.id]
    for mode in ("hybrid", "bm25", "vector"):
        assert [r.chunk.id for r in engine.search(SearchRequest("lemur", mode=mode))] == [keep.id]  # type: ignore[arg-type]
