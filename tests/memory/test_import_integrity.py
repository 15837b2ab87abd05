"""`loom import` keeps the engine's invariants: supersede chains, unique ids, and every field as the
API would take it. A refused import names the line and the rule and writes nothing."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput
from loom_core.server.schemas import ChunkOut, EntityOut, RelationOut

Opener = Callable[..., MemoryEngine]
HEADER = {"record": "header", "format": "loomem-stream", "version": 1, "stream": "s", "embedder": "x", "dimension": 1}
A, B, C = "01M8741S3VRF0RWZ4N7MKF5DA0", "01M8741S3VRF0RWZ4N7MKF5DA1", "01M8741S3VRF0RWZ4N7MKF5DA2"


def _chunk(chunk_id: str, **fields: Any) -> dict[str, Any]:
    line = {
        "record": "chunk", "id": chunk_id, "stream": "s", "level": 0, "content": f"note {chunk_id}", "metadata": {},
        "created_at": 1000, "updated_at": 1000, "supersedes": None, "superseded_by": None, "expires_at": None,
        "access_count": 0, "last_accessed_at": None,
    }
    return line | fields


def _entity(entity_id: str, **fields: Any) -> dict[str, Any]:
    line = {
        "record": "entity", "id": entity_id, "stream": "s", "type": "animal", "name": f"heron {entity_id}",
        "aliases": [], "metadata": {}, "created_at": 1000, "updated_at": 1000,
    }
    return line | fields


def _relation(relation_id: str, subject: str, object: str, **fields: Any) -> dict[str, Any]:
    line = {
        "record": "relation", "id": relation_id, "stream": "s", "subject": subject, "predicate": "nests_at",
        "object": object, "valid_from": None, "valid_to": None, "source_chunks": [], "metadata": {},
        "created_at": 1000,
    }
    return line | fields


def _file(*records: dict[str, Any], header: dict[str, Any] = HEADER) -> io.StringIO:
    return io.StringIO("".join(json.dumps(r) + "\n" for r in (header, *records)))


def _refused(engine: MemoryEngine, text: io.StringIO, code: ErrorCode = ErrorCode.VALIDATION_FAILED) -> LoomError:
    with pytest.raises(LoomError) as err:
        engine.import_stream(text)
    assert err.value.code is code, err.value
    return err.value


CHAIN_CASES = {
    # name: (records, line named, field named, the rule in the message)
    "two-chunk cycle": (
        [_chunk(A, supersedes=B, superseded_by=B), _chunk(B, supersedes=A, superseded_by=A)],
        2, "supersedes", "supersede cycle",
    ),
    "three-chunk cycle": (
        [_chunk(A, supersedes=C, superseded_by=B), _chunk(B, supersedes=A, superseded_by=C),
         _chunk(C, supersedes=B, superseded_by=A)],
        2, "supersedes", "supersede cycle",
    ),
    "supersedes itself": ([_chunk(A, supersedes=A, superseded_by=A)], 2, "supersedes", "cannot supersede itself"),
    "superseded by itself": ([_chunk(A, superseded_by=A)], 2, "superseded_by", "cannot supersede itself"),
    "branch": (
        [_chunk(A), _chunk(B, supersedes=A), _chunk(C, supersedes=A)],
        4, "supersedes", "at most one successor",
    ),
    "branch with one mirrored link": (
        [_chunk(A, superseded_by=B), _chunk(B, supersedes=A), _chunk(C, supersedes=A)],
        4, "supersedes", "at most one successor",
    ),
    "successor does not name it back": (
        [_chunk(A, superseded_by=B), _chunk(B)], 2, "superseded_by", "must be mirrored",
    ),
    "successor names another predecessor": (
        [_chunk(A, superseded_by=B), _chunk(B, supersedes=C), _chunk(C)],
        2, "superseded_by", "must be mirrored",
    ),
    "two chunks name the same successor": (
        [_chunk(A, superseded_by=B), _chunk(B, supersedes=C), _chunk(C, superseded_by=B)],
        4, "superseded_by", "supersedes at most one chunk",
    ),
    "predecessor does not name it back": (
        [_chunk(A), _chunk(B, supersedes=A)], 3, "supersedes", "must be mirrored",
    ),
    "link to a chunk outside the file": (
        [_chunk(A, superseded_by=B)], 2, "superseded_by", "not in the import",
    ),
    "same chunk id twice": ([_chunk(A), _chunk(A, content="second")], 3, "id", "already used by line 2"),
    "an entity with a chunk's id": ([_chunk(A), _entity(A)], 3, "id", "already used by line 2"),
    "same relation id twice": (
        [_entity(A), _relation(B, A, A), _relation(B, A, A, predicate="likes")], 4, "id", "already used by line 3",
    ),
}


@pytest.mark.parametrize("case", list(CHAIN_CASES))
def test_a_broken_chain_or_a_reused_id_is_refused_and_nothing_is_written(engine: MemoryEngine, case: str) -> None:
    """Import accepted supersede cycles (the stream then had no current version and the chain could
    never be continued: 409), branches, one-sided links, and a second record with an id already used
    (reported as imported while it overwrote the first). Each is now VALIDATION_FAILED naming the
    line, the field and the rule, and nothing is written."""
    records, line, field, rule = CHAIN_CASES[case]
    err = _refused(engine, _file(*records))
    assert err.details == {"field": field, "line": line} and f"import line {line} " in err.message
    assert rule in err.message
    assert engine.list_streams() == [] and engine.list_entities("s") == []


def test_a_chain_may_not_continue_a_chunk_of_the_data_directory(engine: MemoryEngine) -> None:
    """An export holds whole chains, so a link that leaves the file is refused even when the chunk it
    names exists in the target: writing it would give that chunk a successor it does not name."""
    held = engine.add_chunk("s", ChunkInput("the heron nests by the lake"))
    err = _refused(engine, _file(_chunk(A), _chunk(B, supersedes=held.id)))
    assert err.details == {"field": "supersedes", "line": 3} and "not in the import" in err.message
    assert [s.current_count for s in engine.list_streams()] == [1]
    assert engine.get_chunk(held.id).superseded_by is None
    with pytest.raises(LoomError):
        engine.get_chunk(A)


def test_an_id_already_in_the_data_directory_is_a_conflict_naming_its_line(engine: MemoryEngine) -> None:
    """Ids are global: a record that exists already is CONFLICT (as it was), now naming its line, and
    the new records before it in the file are not written either."""
    held = engine.add_chunk("other", ChunkInput("kingfisher dives"))
    err = _refused(engine, _file(_chunk(A), _chunk(B), _chunk(held.id)), ErrorCode.CONFLICT)
    assert err.details == {"id": held.id, "line": 4} and "line 4, chunk" in err.message
    assert [s.name for s in engine.list_streams()] == ["other"]


def test_the_cli_refuses_a_cycle_and_leaves_the_data_directory_empty(open_engine: Opener, tmp_path: Path) -> None:
    """Through the real `loom import`: error[VALIDATION_FAILED] naming the line and the rule on
    stderr, exit 1, and a data directory that holds nothing afterwards."""
    path = tmp_path / "cycle.jsonl"
    path.write_text(_file(_chunk(A, supersedes=B, superseded_by=B), _chunk(B, supersedes=A, superseded_by=A)).read())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOMEM_AT_REST")}
    done = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "import", str(path), "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 1
    assert f"error[VALIDATION_FAILED]: import line 2 (chunk {A}): supersedes closes a supersede cycle" in done.stderr
    assert "imported" not in done.stderr
    assert open_engine(tmp_path / "d").list_streams() == []


@pytest.mark.parametrize(
    ("patch", "field", "rule"),
    [
        ({"access_count": 2**64}, "access_count", "integer from 0 to"),
        ({"access_count": -1}, "access_count", "integer from 0 to"),
        ({"last_accessed_at": 10**16}, "last_accessed_at", "year 9999"),
        ({"superseded": None}, "superseded", "not a field of this record type"),
        ({"created_at": "2020-01-01"}, "created_at", "ms since the Unix epoch"),
    ],
)
def test_chunk_fields_only_an_import_carries_are_checked_before_writing(
    engine: MemoryEngine, patch: dict[str, Any], field: str, rule: str
) -> None:
    """An access count beyond uint64 was found only after the chunks were written (an uncoded error,
    and the engine then failed to close); an unknown field was dropped silently. Both are refused
    up front now, like a bad creation time."""
    err = _refused(engine, _file(_chunk(A), _chunk(B, access_count=3, last_accessed_at=2000) | patch))
    assert err.details == {"field": field, "line": 3} and rule in err.message
    assert engine.list_streams() == []


def test_a_reused_vector_holding_nan_is_refused(open_engine: Opener, tmp_path: Path) -> None:
    """Stored vectors are reused when the embedder matches; one holding NaN (no embedder makes one)
    would poison every vector search of the stream."""
    source = open_engine(tmp_path / "a")
    source.add_chunks("s", [ChunkInput("heron"), ChunkInput("kingfisher")])
    buffer = io.StringIO()
    source.export_stream("s", buffer, embeddings=True)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    lines[2]["embedding_b64"] = base64.b64encode(struct.pack(f"<{source.dim}f", *[float("nan")] * source.dim)).decode()
    target = open_engine(tmp_path / "b")
    err = _refused(target, _file(*lines[1:], header=lines[0]))
    assert err.details == {"field": "embedding_b64", "line": 3} and "NaN" in err.message
    assert target.list_streams() == []


def test_provenance_may_name_a_deleted_chunk_but_not_one_of_another_stream(
    open_engine: Opener, tmp_path: Path
) -> None:
    """Relations keep `source_chunks` after those chunks are deleted, so an export names chunks it does
    not hold and must import. A source chunk that exists in the target under another stream is
    refused, as `add_relation` refuses it."""
    source = open_engine(tmp_path / "a")
    note = source.add_chunk("s", ChunkInput("the heron nests by the river"))
    source.add_chunk("s", ChunkInput("kingfisher dives"))
    heron = source.add_entity("s", type="animal", name="Heron")
    river = source.add_entity("s", type="place", name="River")
    relation = source.add_relation("s", subject=heron.id, predicate="nests_at", object=river.id,
                                   source_chunks=[note.id])
    source.delete_chunk(note.id)
    buffer = io.StringIO()
    source.export_stream("s", buffer)
    target = open_engine(tmp_path / "b")
    assert target.import_stream(io.StringIO(buffer.getvalue())) == {"chunks": 1, "entities": 2, "relations": 1}
    assert target.get_relation(relation.id).source_chunks == [note.id]

    elsewhere = target.add_chunk("other", ChunkInput("a note of another stream"))
    err = _refused(target, _file(_entity(A), _relation(B, A, A, source_chunks=[elsewhere.id])))
    assert err.details == {"field": "source_chunks[0]", "line": 3} and "stream 'other'" in err.message
    with pytest.raises(LoomError):
        target.get_entity(A)


def test_an_expired_version_inside_a_chain_is_spliced_out_of_the_export(
    open_engine: Opener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export leaves out expired chunks that wait for the sweeper, but the versions around one kept
    their links to it, so `loom import` refused the file ("not in the import"). The export now links
    past it, as the sweeper will, and imports with the chain the source shows."""
    from loom_core.memory import engine as engine_module

    source = open_engine(tmp_path / "a")
    now = engine_module.now_ms()
    v0 = source.add_chunk("s", ChunkInput("heron v0"))
    v1 = source.add_chunk("s", ChunkInput("heron v1", supersedes=v0.id, expires_at=now + 60_000))
    v2 = source.add_chunk("s", ChunkInput("heron v2", supersedes=v1.id))
    v3 = source.add_chunk("s", ChunkInput("heron v3", supersedes=v2.id, expires_at=now + 60_000))
    monkeypatch.setattr(engine_module, "now_ms", lambda: now + 120_000)
    buffer = io.StringIO()
    assert source.export_stream("s", buffer)["chunks"] == 2
    target = open_engine(tmp_path / "b")
    assert target.import_stream(io.StringIO(buffer.getvalue()))["chunks"] == 2
    assert [c.id for c in target.history(v2.id)] == [v0.id, v2.id]
    assert target.get_chunk(v2.id).superseded_by is None and [s.current_count for s in target.list_streams()] == [1]
    source.sweep_expired()
    assert [c.id for c in source.history(v0.id)] == [c.id for c in target.history(v0.id)]
    assert v3.id not in buffer.getvalue()


# -- the same field rules as the API -------------------------------------------------------------

KEY = "import-parity-" + "5c" * 16


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, MemoryEngine, dict[str, str]]]:
    """One engine served by the real app (in process) and imported into directly."""
    from fastapi.testclient import TestClient

    from loom_core.config import LoomConfig
    from loom_core.plugins.host import PluginHost
    from loom_core.server.app import create_app

    engine = MemoryEngine.open(LoomConfig(), PluginHost(environ={}), tmp_path_factory.mktemp("parity"))
    app = create_app(LoomConfig(), host=PluginHost(environ={}), engine=engine, environ={"LOOMEM_AUTH_TOKEN": KEY})
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
            chunk = client.post("/v1/streams/api/chunks", json={"content": "the heron nests"}).json()["id"]
            heron = client.post("/v1/streams/api/entities", json={"type": "animal", "name": "Heron"}).json()["id"]
            river = client.post("/v1/streams/api/entities", json={"type": "place", "name": "River"}).json()["id"]
            yield client, engine, {"chunk": chunk, "heron": heron, "river": river}
    finally:
        engine.close()


# (record, patch, refused): each patch is sent to the API and written into an import line
PARITY = [
    ("chunk", {"content": ""}, True),
    ("chunk", {"content": "   "}, True),
    ("chunk", {"content": 5}, True),
    ("chunk", {"content": "x" * 1_000_001}, True),
    ("chunk", {"content": "x" * 1_000_000}, False),
    ("chunk", {"level": 17}, True),
    ("chunk", {"level": -1}, True),
    ("chunk", {"level": "one"}, True),
    ("chunk", {"level": 1.5}, True),
    ("chunk", {"level": None}, True),
    ("chunk", {"level": 16}, False),
    ("chunk", {"level": "3"}, True),
    ("chunk", {"level": True}, True),
    ("chunk", {"level": 2.0}, True),
    ("chunk", {"metadata": "m"}, True),
    ("chunk", {"metadata": [1]}, True),
    ("chunk", {"metadata": None}, True),
    ("chunk", {"metadata": {"a": [1, {"b": None}]}}, False),
    ("chunk", {"expires_at": "soon"}, True),
    ("chunk", {"expires_at": -1}, True),
    ("chunk", {"expires_at": 10**16}, True),
    ("chunk", {"expires_at": "2999-01-01T00:00:00Z"}, False),
    ("chunk", {"supersedes": ""}, True),
    ("entity", {"type": ""}, True),
    ("entity", {"type": 5}, True),
    ("entity", {"type": "t" * 513}, True),
    ("entity", {"type": "t" * 512}, False),
    ("entity", {"name": " "}, True),
    ("entity", {"name": "n" * 513}, True),
    ("entity", {"name": "n" * 512}, False),
    ("entity", {"name": "  Grey Heron ", "type": " bird"}, False),
    ("entity", {"aliases": "abc"}, True),
    ("entity", {"aliases": [""]}, True),
    ("entity", {"aliases": [5]}, True),
    ("entity", {"aliases": ["a" * 513]}, True),
    ("entity", {"aliases": ["Ardea", "a" * 512]}, False),
    ("entity", {"metadata": None}, True),
    ("entity", {"metadata": []}, True),
    ("entity", {"metadata": {"x": float("inf")}}, True),
    ("relation", {"predicate": ""}, True),
    ("relation", {"predicate": "p" * 513}, True),
    ("relation", {"predicate": "p" * 512}, False),
    ("relation", {"predicate": " nests_at  "}, False),
    ("relation", {"valid_from": 5000, "valid_to": 10}, True),
    ("relation", {"valid_from": 10, "valid_to": 10}, True),
    ("relation", {"valid_from": 10, "valid_to": 11}, False),
    ("relation", {"valid_from": -1}, True),
    ("relation", {"valid_from": "x"}, True),
    ("relation", {"valid_from": "2020-01-01T00:00:00Z"}, False),
    ("relation", {"valid_to": 10**16}, True),
    ("relation", {"source_chunks": [1, {"x": 2}]}, True),
    ("relation", {"source_chunks": "abc"}, True),
    ("relation", {"source_chunks": [""]}, True),
    ("relation", {"metadata": []}, True),
]


@pytest.mark.parametrize(("record", "patch", "refused"), PARITY)
def test_import_refuses_exactly_what_the_api_refuses(
    api: tuple[Any, MemoryEngine, dict[str, str]], record: str, patch: dict[str, Any], refused: bool
) -> None:
    """Import took relations the API answers 422 for (valid_to before valid_from, source chunks that
    are not strings, so GET then broke the documented RelationOut); names, types, aliases and
    predicates hold at most 512 characters in both. Each value below gets the same answer from both."""
    client, engine, held = api
    body: dict[str, Any] = {
        "chunk": {"content": "a heron note"},
        "entity": {"type": "animal", "name": "Heron"},
        "relation": {"subject": held["heron"], "predicate": "nests_at", "object": held["river"],
                     "source_chunks": [held["chunk"]]},
    }[record]
    path = {"chunk": "chunks", "entity": "entities", "relation": "relations"}[record]
    # json.dumps, as the import file is written: it spells infinity `Infinity`, which httpx refuses to send
    answer = client.post(f"/v1/streams/api/{path}", content=json.dumps(body | patch),
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == (422 if refused else 201), answer.text

    ids = [str(ULID()) for _ in range(4)]
    chunk, first, second = _chunk(ids[0]), _entity(ids[1]), _entity(ids[2])
    relation = _relation(ids[3], ids[1], ids[2], source_chunks=[ids[0]])
    patched = {"chunk": chunk, "entity": first, "relation": relation}[record]
    patched.update(patch)
    text = _file(chunk, first, second, relation, header=HEADER | {"stream": "imported"})
    if refused:
        err = _refused(engine, text)
        assert err.details["field"].split("[")[0] in patch, err
        with pytest.raises(LoomError):
            engine.get_chunk(ids[0])
    else:
        assert engine.import_stream(text) == {"chunks": 1, "entities": 2, "relations": 1}
        record_id = patched["id"]
        served = client.get(f"/v1/{path}/{record_id}")
        assert served.status_code == 200
        schema = {"chunk": ChunkOut, "entity": EntityOut, "relation": RelationOut}[record]
        stored = schema.model_validate(served.json()).model_dump()  # the documented shape
        assert {k: stored[k] for k in patch} == {k: answer.json()[k] for k in patch}  # stored as the API stores
