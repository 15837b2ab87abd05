"""Export and import one stream as JSON Lines, so memory can move between
data directories and backends.

Line 1 is a header ``{"record": "header", "format": "loomem-stream", "version": 1,
"stream", "embedder", "dimension", "exported_at"}`` (plus ``consolidated_through``, the
stream's consolidation mark, when it has one); then one ``chunk`` line per
chunk (every version of every chain, oldest id first, with routing fields,
content, metadata, access statistics and, optionally, ``embedding_b64``: the
float32 little-endian vector in base64), one ``entity`` line per entity and
one ``relation`` line per relation. Import keeps ids, timestamps and chains;
stored vectors are reused only when the header's embedder and dimension match
the importing engine's, otherwise the content is embedded again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from loom_core.contracts.storage import WriteBatch
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory import rows
from loom_core.memory.ids import is_id
from loom_core.memory.import_checks import (
    ImportedChunk,
    Numbered,
    check_records,
    read_chunk,
    read_entity,
    read_relation,
)
from loom_core.memory.models import Entity, Relation
from loom_core.memory.rows import check_stream

if TYPE_CHECKING:
    from loom_core.memory.engine import MemoryEngine

FORMAT = "loomem-stream"
VERSION = 1
BATCH = 1000


def _embedder(engine: MemoryEngine) -> str:
    return engine.embedder


def _past(engine: MemoryEngine, link: str | None, left_out: set[str], field: str) -> str | None:
    """The first chunk along ``field`` from ``link`` that is not left out (None at the chain's end)."""
    while link is not None and link in left_out:
        link = getattr(engine._routing[link], field)
    return link


def export_stream(engine: MemoryEngine, stream: str, fp: IO[str], *, embeddings: bool) -> dict[str, int]:
    """Write ``stream`` to ``fp``; counts per record type. NOT_FOUND for an empty stream."""
    from loom_core.memory.engine import now_ms

    check_stream(stream)
    moment = now_ms()  # expired chunks waiting for the sweeper are gone for every reader: not exported
    every = engine._routing_of_stream(stream)
    left_out = {r.id for r in every if r.expired(moment)}
    records = [r for r in every if r.id not in left_out]
    entities = engine._graph.list_entities(stream, type=None, name=None)
    relations = engine._graph.list_relations(stream, entity=None, predicate=None, at=None)
    if not records and not entities and not relations:
        raise LoomError(ErrorCode.NOT_FOUND, f"stream {stream!r} holds no chunks or entities")
    header = {
        "record": "header",
        "format": FORMAT,
        "version": VERSION,
        "stream": stream,
        "embedder": _embedder(engine),
        "dimension": engine.dim,
        "exported_at": now_ms(),
    }
    mark = engine.consolidation_mark(stream)
    if mark is not None:  # without it, the importing side would consolidate every raw chunk again
        header["consolidated_through"] = mark
    fp.write(json.dumps(header) + "\n")
    for record in records:
        chunk = engine._chunk(record)
        line: dict[str, Any] = {"record": "chunk", **chunk.to_dict()}
        if left_out:
            # the chain as the sweeper will leave it: links past the left-out versions, so that
            # the file holds whole chains (import refuses a link to a chunk it does not hold)
            line["supersedes"] = _past(engine, record.supersedes, left_out, "supersedes")
            line["superseded_by"] = _past(engine, record.superseded_by, left_out, "superseded_by")
        if embeddings:
            raw = engine.storage.get("embeddings", rows.id_key(record.id))
            if raw is not None:
                line["embedding_b64"] = base64.b64encode(raw).decode()
        fp.write(json.dumps(line, ensure_ascii=False) + "\n")
    for entity in entities:
        fp.write(json.dumps({"record": "entity", **entity.to_dict()}, ensure_ascii=False) + "\n")
    for relation in relations:
        fp.write(json.dumps({"record": "relation", **relation.to_dict()}, ensure_ascii=False) + "\n")
    return {"chunks": len(records), "entities": len(entities), "relations": len(relations)}


def _lines(fp: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in enumerate(fp, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoomError(ErrorCode.VALIDATION_FAILED, f"import line {number} is not JSON: {exc.msg}") from None
        if not isinstance(value, dict) or "record" not in value:
            raise LoomError(ErrorCode.VALIDATION_FAILED, f"import line {number} has no record type")
        yield number, value


def import_stream(engine: MemoryEngine, fp: IO[str], *, stream: str | None) -> dict[str, int]:
    """Read an export into ``stream`` (default: the exported name).

    All or nothing: every line is read and checked (:mod:`loom_core.memory.import_checks`)
    before the first write, so a bad record is ``VALIDATION_FAILED`` naming its line and
    a record that exists already is ``CONFLICT``, and either way nothing is written.
    """
    lines = _lines(fp)
    first = next(lines, None)
    if first is None or first[1].get("record") != "header" or first[1].get("format") != FORMAT:
        raise LoomError(
            ErrorCode.VALIDATION_FAILED, f"not a Loomem stream export: the first line must be a {FORMAT} header"
        )
    header = first[1]
    if header.get("version") != VERSION:
        raise LoomError(ErrorCode.VALIDATION_FAILED, f"export format version {header.get('version')!r} is unknown")
    target = check_stream(stream or str(header.get("stream")))
    mark = header.get("consolidated_through")
    if mark is not None and not (isinstance(mark, str) and is_id(mark)):
        raise LoomError(ErrorCode.VALIDATION_FAILED, "import line 1: consolidated_through must be a chunk id",
                        details={"field": "consolidated_through", "line": 1})
    fresh_stream = not engine._routing_of_stream(target) and engine.consolidation_mark(target) is None
    reuse_vectors = header.get("embedder") == _embedder(engine) and header.get("dimension") == engine.dim
    chunks: list[ImportedChunk] = []
    entities: list[Numbered[Entity]] = []
    relations: list[Numbered[Relation]] = []
    for number, value in lines:
        kind = value.pop("record")
        if kind == "chunk":
            chunks.append(read_chunk(number, value, stream=target, dim=engine.dim, reuse_vectors=reuse_vectors))
        elif kind == "entity":
            entities.append(read_entity(number, value, stream=target))
        elif kind == "relation":
            relations.append(read_relation(number, value, stream=target))
        else:
            raise LoomError(ErrorCode.VALIDATION_FAILED, f"import line {number}: unknown record type {kind!r}")
    check_records(chunks, entities, relations)
    for r in relations:
        for i, chunk_id in enumerate(r.record.source_chunks):
            held = engine._routing.get(chunk_id)
            if held is not None and held.stream != target:
                raise LoomError(
                    ErrorCode.VALIDATION_FAILED,
                    f"import line {r.line} (relation {r.record.id}): source_chunks[{i}] names a chunk of "
                    f"stream {held.stream!r}, not {target!r}: provenance stays inside the stream",
                    details={"field": f"source_chunks[{i}]", "line": r.line},
                )
    clashes = [(c.line, "chunk", c.routing.id) for c in chunks if c.routing.id in engine._routing]
    clashes += [(e.line, "entity", e.record.id) for e in entities if engine._graph.exists(rows.entity_key(e.record.id))]
    clashes += [
        (r.line, "relation", r.record.id) for r in relations if engine._graph.exists(rows.relation_key(r.record.id))
    ]
    if clashes:
        line, kind, record_id = min(clashes)
        raise LoomError(
            ErrorCode.CONFLICT,
            f"{len(clashes)} record(s) of the import already exist (first: line {line}, {kind} {record_id}); "
            "import into an empty data directory or delete the stream first",
            details={"id": record_id, "line": line},
        )
    for start in range(0, len(chunks), BATCH):
        part = chunks[start : start + BATCH]
        bodies = [{"content": c.content, "metadata": c.metadata} for c in part]
        stored = [c.vector for c in part]
        if all(v is not None for v in stored):
            vectors = np.stack([np.frombuffer(v or b"", dtype="<f4") for v in stored]).astype(np.float32)
        else:
            vectors = np.asarray(engine.llm.embed([c.content for c in part]), dtype=np.float32)
        engine._write_new(target, [c.routing for c in part], bodies, vectors, 0, link_old=False)
        for c in part:
            if c.access_count:
                engine._access[c.routing.id] = (c.access_count, c.last_accessed_at or 0)
                engine._access_dirty.add(c.routing.id)
    batch = WriteBatch()
    for e in entities:
        engine._graph.put_entity(e.record, batch)
    for r in relations:
        engine._graph.put_relation(r.record, batch)
    if len(batch):
        engine.storage.write(batch, durable=True)
    if mark is not None and fresh_stream:
        # a stream that held raw chunks of its own keeps its mark: theirs must still be consolidated
        engine.set_consolidation_mark(target, mark)
    engine._flush_access()
    return {"chunks": len(chunks), "entities": len(entities), "relations": len(relations)}
