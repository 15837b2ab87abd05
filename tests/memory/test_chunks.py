"""Chunks: ids, history through supersede chains, listing, deletion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ulid import ULID

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest


def test_add_and_get_round_trip_with_sortable_ids(engine: MemoryEngine) -> None:
    """Chunks come back with content, metadata, level and timestamps; ids are
    ULIDs sorted in creation order."""
    first = engine.add_chunks("s1", [ChunkInput("one", metadata={"k": [1, 2]}), ChunkInput("two", level=1)])
    later = engine.add_chunk("s1", ChunkInput("three"))
    ids = [c.id for c in first] + [later.id]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(str(ULID.from_str(i)) == i for i in ids)
    got = engine.get_chunk(first[0].id)
    assert (got.content, got.metadata, got.level, got.stream) == ("one", {"k": [1, 2]}, 0, "s1")
    assert engine.get_chunk(first[1].id).level == 1
    assert got.created_at == got.updated_at > 0
    assert got.access_count == 1 and got.last_accessed_at is not None


def test_supersede_keeps_history_readable(engine: MemoryEngine) -> None:
    """Updating creates a new chunk; the old id still reads and both show the whole chain."""
    v1 = engine.add_chunk("s", ChunkInput("I live in Paris"))
    v2 = engine.add_chunk("s", ChunkInput("I live in Berlin", supersedes=v1.id))
    v3 = engine.add_chunk("s", ChunkInput("I live in Rome", supersedes=v2.id))
    old = engine.get_chunk(v1.id)
    assert old.content == "I live in Paris" and old.superseded_by == v2.id
    for member in (v1, v2, v3):
        assert [c.id for c in engine.history(member.id)] == [v1.id, v2.id, v3.id]
    assert engine.get_chunk(v3.id).supersedes == v2.id


def test_superseding_twice_is_a_conflict(engine: MemoryEngine) -> None:
    """Only the newest version of a chain can be superseded, also within one batch."""
    v1 = engine.add_chunk("s", ChunkInput("a"))
    engine.add_chunk("s", ChunkInput("b", supersedes=v1.id))
    with pytest.raises(LoomError) as err:
        engine.add_chunk("s", ChunkInput("c", supersedes=v1.id))
    assert err.value.code is ErrorCode.CONFLICT
    w1 = engine.add_chunk("s", ChunkInput("x"))
    with pytest.raises(LoomError) as err:
        engine.add_chunks("s", [ChunkInput("y", supersedes=w1.id), ChunkInput("z", supersedes=w1.id)])
    assert err.value.code is ErrorCode.CONFLICT
    assert engine.get_chunk(w1.id).superseded_by is None, "a refused batch must write nothing"


@pytest.mark.parametrize(
    ("stream", "item", "field"),
    [
        ("bad stream", ChunkInput("x"), "stream"),
        ("s", ChunkInput("   "), "chunks[0].content"),
        ("s", ChunkInput("x", level=-1), "chunks[0].level"),
        ("s", ChunkInput("x", level=99), "chunks[0].level"),
        ("s", ChunkInput("x", expires_at=1), "chunks[0].expires_at"),
        ("s", ChunkInput("x", metadata={"f": object()}), "chunks[0].metadata"),
    ],
)
def test_invalid_input_names_the_field(engine: MemoryEngine, stream: str, item: ChunkInput, field: str) -> None:
    """Bad input is VALIDATION_FAILED naming the field, and nothing is written."""
    with pytest.raises(LoomError) as err:
        engine.add_chunks(stream, [item])
    assert err.value.code is ErrorCode.VALIDATION_FAILED
    assert err.value.details["field"] == field
    # one chunk (POST .../chunks) has no ``chunks`` list: the field is named alone
    with pytest.raises(LoomError) as single:
        engine.add_chunk(stream, item)
    assert single.value.details["field"] == field.removeprefix("chunks[0].")
    if field != "stream":
        assert single.value.message.startswith(field.removeprefix("chunks[0].") + ":")
    assert engine.list_streams() == []


def test_unknown_ids_are_not_found(engine: MemoryEngine) -> None:
    """Reading, deleting or superseding an unknown id is NOT_FOUND."""
    missing = str(ULID())
    for call in (
        lambda: engine.get_chunk(missing),
        lambda: engine.history(missing),
        lambda: engine.delete_chunk(missing),
        lambda: engine.add_chunk("s", ChunkInput("x", supersedes=missing)),
        lambda: engine.delete_stream("never-written"),
    ):
        with pytest.raises(LoomError) as err:
            call()
        assert err.value.code is ErrorCode.NOT_FOUND


def test_superseding_across_streams_is_refused(engine: MemoryEngine) -> None:
    """A chain lives in one stream."""
    other = engine.add_chunk("a", ChunkInput("x"))
    with pytest.raises(LoomError) as err:
        engine.add_chunk("b", ChunkInput("y", supersedes=other.id))
    assert err.value.code is ErrorCode.VALIDATION_FAILED


def test_list_chunks_pages_and_filters_by_level(engine: MemoryEngine) -> None:
    """Pages follow id order without gaps or repeats; the level filter is exact."""
    made = engine.add_chunks("s", [ChunkInput(f"c{i}", level=i % 2) for i in range(7)])
    engine.add_chunk("other", ChunkInput("elsewhere"))
    seen: list[str] = []
    cursor = None
    while True:
        page = engine.list_chunks("s", cursor=cursor, limit=3)
        seen += [c.id for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [c.id for c in made]
    level1 = engine.list_chunks("s", level=1, limit=50).items
    assert [c.id for c in level1] == [c.id for c in made if c.level == 1]
    assert engine.list_chunks("nothing-here").items == []


def test_list_streams_counts(engine: MemoryEngine) -> None:
    """Streams report chunk counts, current (not superseded) counts and levels."""
    a = engine.add_chunk("alpha", ChunkInput("x"))
    engine.add_chunk("alpha", ChunkInput("y", supersedes=a.id, level=1))
    engine.add_chunk("beta", ChunkInput("z"))
    info = {s.name: s for s in engine.list_streams()}
    assert set(info) == {"alpha", "beta"}
    assert (info["alpha"].chunk_count, info["alpha"].current_count, info["alpha"].levels) == (2, 1, {0: 1, 1: 1})


def test_a_stream_holding_only_entities_is_listed(engine: MemoryEngine) -> None:
    """list_streams left out streams that hold only entities, so a client walking every stream (to
    export or delete a user's data) never found their graph."""
    engine.add_chunk("notes", ChunkInput("x"))
    engine.add_entity("notes", type="person", name="Ann")
    zoe = engine.add_entity("people", type="person", name="Zoe")
    engine.add_entity("people", type="place", name="Berlin")
    info = {s.name: s.to_dict() for s in engine.list_streams()}
    assert list(info) == ["notes", "people"]
    assert (info["notes"]["chunk_count"], info["notes"]["entity_count"]) == (1, 1)
    assert info["people"] == {"name": "people", "chunk_count": 0, "current_count": 0, "levels": {},
                              "last_write_at": None, "entity_count": 2}
    engine.delete_stream("people")
    assert [s.name for s in engine.list_streams()] == ["notes"]
    assert zoe.stream == "people"


def test_delete_chunk_relinks_the_chain_and_leaves_every_layer(engine: MemoryEngine) -> None:
    """Deleting the middle of a chain joins its neighbours; deleting the newest
    makes the previous version current (searchable) again; storage, index and
    vectors all forget the chunk."""
    v1 = engine.add_chunk("s", ChunkInput("zebra stripes one"))
    v2 = engine.add_chunk("s", ChunkInput("zebra stripes two", supersedes=v1.id))
    v3 = engine.add_chunk("s", ChunkInput("zebra stripes three", supersedes=v2.id))
    engine.delete_chunk(v2.id)
    assert [c.id for c in engine.history(v1.id)] == [v1.id, v3.id]
    engine.delete_chunk(v3.id)
    assert engine.get_chunk(v1.id).superseded_by is None
    for mode in ("bm25", "vector"):
        hits = engine.search(SearchRequest("zebra stripes", stream="s", mode=mode))
        assert [r.chunk.id for r in hits] == [v1.id]
    report = engine.check_consistency()
    assert report["storage"] == report["index"] == report["vectors"] == report["content_rows"] == 1
    assert report["pending_intents"] == 0


def test_delete_stream_removes_storage_index_and_vectors(engine: MemoryEngine) -> None:
    """A deleted stream leaves no rows, documents, vectors or graph entries; others are untouched."""
    engine.add_chunks("doomed", [ChunkInput(f"walrus {i}") for i in range(5)])
    keep = engine.add_chunk("kept", ChunkInput("walrus kept"))
    engine.add_entity("doomed", type="animal", name="Wally")
    assert engine.delete_stream("doomed") == 5
    report = engine.check_consistency()
    assert report["storage"] == report["index"] == report["vectors"] == 1
    assert list(engine.storage.iterate("graph")) == []
    assert [s.name for s in engine.list_streams()] == ["kept"]
    hits = engine.search(SearchRequest("walrus"))
    assert [r.chunk.id for r in hits] == [keep.id]


def test_data_survives_reopen(open_engine: Callable[..., MemoryEngine]) -> None:
    """Chunks, chains and search work again after closing and reopening."""
    opener = open_engine
    first = opener()
    a = first.add_chunk("s", ChunkInput("persistent narwhal"))
    b = first.add_chunk("s", ChunkInput("persistent narwhal again", supersedes=a.id))
    first.close()
    second = opener()
    assert second.get_chunk(a.id).superseded_by == b.id
    hits = second.search(SearchRequest("narwhal", stream="s", include_superseded=True))
    assert {r.chunk.id for r in hits} == {a.id, b.id}
    assert second.check_consistency()["missing_in_index"] == []


def test_access_statistics_count_reads_and_search_hits_and_survive_a_reopen(
    open_engine: Callable[..., MemoryEngine]
) -> None:
    """Each read and each search that returns a chunk counts one access (the decay signal); the counts
    and the last access time are written back, so a reopened engine continues from them."""
    engine = open_engine()
    hit = engine.add_chunk("s", ChunkInput("the quokka counted its visitors"))
    other = engine.add_chunk("s", ChunkInput("nothing in common here at all"))
    engine.get_chunk(hit.id)
    found = engine.search(SearchRequest("quokka", stream="s", mode="bm25"))
    assert [r.chunk.id for r in found] == [hit.id]
    third = engine.get_chunk(hit.id)
    assert third.access_count == 3 and third.last_accessed_at is not None
    assert third.last_accessed_at >= hit.created_at
    engine.close()
    reopened = open_engine()
    again = reopened.get_chunk(hit.id)
    assert again.access_count == 4 and again.last_accessed_at is not None
    assert again.last_accessed_at >= third.last_accessed_at
    assert reopened.get_chunk(other.id).access_count == 1  # only its own read


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("item", "field", "reason"),
    [
        (ChunkInput("x", expires_at=2**63), "expires_at", "year 9999"),
        (ChunkInput("x", expires_at=10**20), "expires_at", "year 9999"),
        (ChunkInput("x", metadata={"score": float("inf")}), "metadata", "NaN or infinity"),
        (ChunkInput("x", metadata={"score": float("nan")}), "metadata", "NaN or infinity"),
        (ChunkInput("x", metadata={"k": "\ud800"}), "metadata", "lone surrogate"),
        (ChunkInput("x", metadata=_nested(600)), "metadata", "deeper than 32"),
    ],
    ids=["expiry-2^63", "expiry-1e20", "inf", "nan", "surrogate", "deep"],
)
def test_values_that_could_not_be_read_back_are_refused_before_anything_is_written(
    engine: MemoryEngine, item: ChunkInput, field: str, reason: str
) -> None:
    """An expiry beyond int64 used to be written and then break every later open of the data
    directory; NaN, infinity and very deep metadata were written and then failed every read.
    Each is VALIDATION_FAILED now, and the stream stays empty."""
    with pytest.raises(LoomError) as info:
        engine.add_chunk("s", item)
    assert info.value.code == ErrorCode.VALIDATION_FAILED
    assert info.value.details == {"field": field} and reason in info.value.message
    assert engine.list_chunks("s").items == []
    assert engine.add_chunk("s", ChunkInput("fine", metadata=_nested(32))).metadata == _nested(32)


def test_a_stored_expiry_beyond_int64_no_longer_stops_the_engine_opening(
    open_engine: Callable[..., MemoryEngine],
) -> None:
    """Rows written before expiries were bounded may hold one beyond int64: the engine opens
    and serves them as never expiring instead of failing with OverflowError at start-up."""
    from loom_core.contracts.storage import WriteBatch
    from loom_core.memory import rows

    engine = open_engine()
    chunk = engine.add_chunk("s", ChunkInput("kept for ever", expires_at=rows.MAX_TIME_MS))
    raw = engine.storage.get("routing", rows.id_key(chunk.id))
    assert raw is not None
    routing = rows.Routing.from_bytes(raw)
    routing.expires_at = 2**64
    batch = WriteBatch()
    batch.put("routing", rows.id_key(chunk.id), rows.encode_json(rows.asdict_routing(routing)))
    engine.storage.write(batch, durable=True)
    engine.close()
    reopened = open_engine()
    assert reopened.get_chunk(chunk.id).content == "kept for ever"
    hits = reopened.search(SearchRequest(query="kept for ever", streams=["s"], mode="vector"))
    assert [h.chunk.id for h in hits] == [chunk.id]


def test_a_cursor_that_is_not_a_chunk_id_is_refused(engine: MemoryEngine) -> None:
    """A tampered or mistyped cursor was answered with an arbitrary, often empty, page, which a
    client reads as "no more chunks"; it is VALIDATION_FAILED naming the field now."""
    made = engine.add_chunks("s", [ChunkInput(f"chunk {i}") for i in range(3)])
    with pytest.raises(LoomError) as err:
        engine.list_chunks("s", cursor="zzzz")
    assert err.value.code is ErrorCode.VALIDATION_FAILED and err.value.details == {"field": "cursor"}
    assert [c.id for c in engine.list_chunks("s", cursor=made[0].id).items] == [made[1].id, made[2].id]
    # ULIDs are case-insensitive: a lower-cased cursor gave an empty page ("no more chunks")
    assert [c.id for c in engine.list_chunks("s", cursor=made[0].id.lower()).items] == [made[1].id, made[2].id]


def test_a_long_unknown_id_is_not_echoed_whole(engine: MemoryEngine) -> None:
    """A 100,000-character "supersedes" came back in full in the 404 body."""
    with pytest.raises(LoomError) as err:
        engine.add_chunk("s", ChunkInput("x", supersedes="A" * 100_000))
    assert err.value.code is ErrorCode.NOT_FOUND and len(err.value.message) < 200


def test_a_routing_row_written_with_a_raw_newline_still_loads(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """Earlier versions accepted the stream name "x\\n" and stored it unescaped; a strict JSON reader
    then refused every start of that data directory. Such rows load (and the name is refused now)."""
    from loom_core.memory import rows

    engine = open_engine(tmp_path / "d")
    chunk = engine.add_chunk("x", ChunkInput("written by an older version"))
    raw = engine.storage.get("routing", rows.id_key(chunk.id))
    engine.storage.put("routing", rows.id_key(chunk.id), raw.replace(b'"stream":"x"', b'"stream":"x\n"'))
    engine.close()
    reopened = open_engine(tmp_path / "d")
    assert reopened.get_chunk(chunk.id).stream == "x\n"
    with pytest.raises(LoomError) as info:
        reopened.add_chunk("x\n", ChunkInput("refused"))
    assert info.value.code is ErrorCode.VALIDATION_FAILED


def test_listing_after_writes_extends_the_cached_order(engine: MemoryEngine) -> None:
    """The sorted-id cache is extended by new (later) ids instead of being rebuilt; a listing taken
    after writes still shows every chunk, in id order."""
    first = engine.add_chunks("s", [ChunkInput(f"a{i}") for i in range(5)])
    assert [c.id for c in engine.list_chunks("s", limit=100).items] == sorted(c.id for c in first)
    more = [*engine.add_chunks("s", [ChunkInput(f"b{i}") for i in range(3)]), engine.add_chunk("s", ChunkInput("c"))]
    listed = [c.id for c in engine.list_chunks("s", limit=100).items]
    assert listed == sorted(c.id for c in first + more)


def test_a_new_data_directory_is_private(open_engine: Callable[..., MemoryEngine], tmp_path: Path) -> None:
    """Memories are personal data: a data directory the engine creates is 0700, whatever the umask
    (an existing one keeps the mode its owner chose)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        open_engine(tmp_path / "fresh")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
