"""Entity graph: entities with names and aliases, relations with validity and provenance."""

from __future__ import annotations

import pytest
from ulid import ULID

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput


def test_entities_round_trip_and_match_names_and_aliases(engine: MemoryEngine) -> None:
    """An entity reads back whole; lookup by name or alias ignores case and spacing."""
    ada = engine.add_entity(
        "s", type="person", name="Ada Lovelace", aliases=["Countess  of Lovelace"], metadata={"born": 1815}
    )
    engine.add_entity("s", type="machine", name="Analytical Engine")
    engine.add_entity("other", type="person", name="Ada Lovelace")
    got = engine.get_entity(ada.id)
    assert (got.name, got.aliases, got.type, got.metadata, got.stream) == (
        "Ada Lovelace",
        ["Countess  of Lovelace"],
        "person",
        {"born": 1815},
        "s",
    )
    assert [e.id for e in engine.list_entities("s", name="ada lovelace")] == [ada.id]
    assert [e.id for e in engine.list_entities("s", name="countess of LOVELACE")] == [ada.id]
    assert [e.name for e in engine.list_entities("s", type="machine")] == ["Analytical Engine"]
    assert len(engine.list_entities("s")) == 2


def test_relations_validity_provenance_and_filters(engine: MemoryEngine) -> None:
    """Relations keep validity times and source chunks; filters by entity, predicate and instant."""
    chunk = engine.add_chunk("s", ChunkInput("Ada worked with Babbage"))
    ada = engine.add_entity("s", type="person", name="Ada")
    charles = engine.add_entity("s", type="person", name="Charles Babbage")
    engine_ = engine.add_entity("s", type="machine", name="Engine")
    worked = engine.add_relation(
        "s",
        subject=ada.id,
        predicate="worked_with",
        object=charles.id,
        valid_from=1000,
        valid_to=2000,
        source_chunks=[chunk.id],
    )
    designed = engine.add_relation("s", subject=charles.id, predicate="designed", object=engine_.id)
    assert engine.get_relation(worked.id) == worked
    assert worked.source_chunks == [chunk.id]
    assert {r.id for r in engine.list_relations("s", entity=charles.id)} == {worked.id, designed.id}
    assert [r.id for r in engine.list_relations("s", predicate="designed")] == [designed.id]
    assert {r.id for r in engine.list_relations("s", at=1500)} == {worked.id, designed.id}
    assert [r.id for r in engine.list_relations("s", at=2000)] == [designed.id]


def test_deleting_an_entity_removes_its_relations(engine: MemoryEngine) -> None:
    """No relation is left pointing at a deleted entity."""
    a = engine.add_entity("s", type="t", name="A")
    b = engine.add_entity("s", type="t", name="B")
    rel = engine.add_relation("s", subject=a.id, predicate="p", object=b.id)
    engine.delete_entity(a.id)
    assert engine.list_relations("s") == []
    with pytest.raises(LoomError) as err:
        engine.get_relation(rel.id)
    assert err.value.code is ErrorCode.NOT_FOUND
    assert [e.id for e in engine.list_entities("s")] == [b.id]


def test_graph_input_errors(engine: MemoryEngine) -> None:
    """Unknown entities or chunks are NOT_FOUND; empty names, reversed validity and
    cross-stream links are VALIDATION_FAILED."""
    a = engine.add_entity("s", type="t", name="A")
    elsewhere = engine.add_entity("x", type="t", name="X")
    missing = str(ULID())
    cases = [
        (lambda: engine.add_entity("s", type="t", name=" "), ErrorCode.VALIDATION_FAILED),
        (lambda: engine.add_entity("s", type="", name="A"), ErrorCode.VALIDATION_FAILED),
        (lambda: engine.add_relation("s", subject=a.id, predicate="p", object=missing), ErrorCode.NOT_FOUND),
        (
            lambda: engine.add_relation("s", subject=a.id, predicate="p", object=elsewhere.id),
            ErrorCode.VALIDATION_FAILED,
        ),
        (
            lambda: engine.add_relation("s", subject=a.id, predicate="p", object=a.id, valid_from=5, valid_to=5),
            ErrorCode.VALIDATION_FAILED,
        ),
        (
            lambda: engine.add_relation("s", subject=a.id, predicate="p", object=a.id, source_chunks=[missing]),
            ErrorCode.NOT_FOUND,
        ),
        (lambda: engine.get_entity(missing), ErrorCode.NOT_FOUND),
        (lambda: engine.delete_relation(missing), ErrorCode.NOT_FOUND),
    ]
    for call, code in cases:
        with pytest.raises(LoomError) as err:
            call()
        assert err.value.code is code


def test_graph_keys_hold_no_names(engine: MemoryEngine) -> None:
    """Keys of the graph keyspace carry ids and stream names only, never entity names or aliases."""
    a = engine.add_entity("s", type="person", name="Zanzibar Quokka", aliases=["Quokkaman"])
    engine.add_relation("s", subject=a.id, predicate="likes_marmalade", object=a.id)
    keys = b"".join(key for key, _ in engine.storage.iterate("graph"))
    for marker in (b"Zanzibar", b"Quokka", b"marmalade"):
        assert (marker in keys) is False


def test_graph_values_that_could_not_be_read_back_are_refused(engine: MemoryEngine) -> None:
    """NaN or infinity in metadata, a lone surrogate in a name or in metadata, and a validity time
    beyond the year 9999 were stored and then made every listing of the stream fail; each is
    VALIDATION_FAILED now, naming the field, and nothing is stored."""
    a = engine.add_entity("g", type="t", name="A")
    cases = [
        (lambda: engine.add_entity("g", type="t", name="B", metadata={"x": float("nan")}), "metadata"),
        (lambda: engine.add_entity("g", type="t", name="B", metadata={"x": float("-inf")}), "metadata"),
        (lambda: engine.add_entity("g", type="t", name="B", metadata={"x": "\ud800"}), "metadata"),
        (lambda: engine.add_entity("g", type="t", name="B\udfff"), "name"),
        (lambda: engine.add_entity("g", type="t", name="B", aliases=["\ud800"]), "aliases[0]"),
        (lambda: engine.add_relation("g", subject=a.id, predicate="p", object=a.id, valid_to=2**63), "valid_to"),
        (
            lambda: engine.add_relation("g", subject=a.id, predicate="p", object=a.id, metadata={"w": float("inf")}),
            "metadata",
        ),
    ]
    for call, field in cases:
        with pytest.raises(LoomError) as err:
            call()
        assert err.value.code is ErrorCode.VALIDATION_FAILED and err.value.details == {"field": field}
    assert [e.name for e in engine.list_entities("g")] == ["A"]
    assert engine.list_relations("g") == []


def test_relation_ids_with_surrounding_spaces_are_stored_as_looked_up(engine: MemoryEngine) -> None:
    """`" <id>"` was accepted (looked up stripped) but stored padded, so the `entity` filter missed
    the relation and deleting the entity left it behind, pointing at nothing."""
    a = engine.add_entity("g", type="t", name="A")
    b = engine.add_entity("g", type="t", name="B")
    relation = engine.add_relation("g", subject=f" {a.id}", predicate="knows", object=f"{b.id}\t")
    assert (relation.subject, relation.object) == (a.id, b.id)
    assert [r.id for r in engine.list_relations("g", entity=a.id)] == [relation.id]
    engine.delete_entity(a.id)
    assert engine.list_relations("g") == []


def test_name_lookup_ignores_unicode_representation(engine: MemoryEngine) -> None:
    """A name stored composed (NFC) is found from its decomposed form (what macOS file names and
    some keyboards produce) and from full-width letters, as from other case and spacing."""
    zoe = engine.add_entity("u", type="person", name="Zoë Müller")
    full_width_zoe = "\uff3a\uff2f\uff25"  # Z, O, E in full-width forms
    for query in ("Zoe\u0308 Mu\u0308ller", full_width_zoe + "\u0308  MÜLLER", "zoë müller"):
        assert [e.id for e in engine.list_entities("u", name=query)] == [zoe.id], query
