"""Export and import one stream as JSON Lines, so memory can move between
data directories and backends.

Line 1 is a header ``{"record": "header", "format": "loomem-stream", "version": 1,
"stream", "embedder", "dimension", "exported_at"}``; then one ``chunk`` line per
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
from loom_core.memory.import_checks import check_chunks, check_graph
from loom_core.memory.models import Entity, Relation
from loom_core.memory.rows import Routing, check_stream

if TYPE_CHECKING:
    from loom_core.memory.engine import MemoryEngine

FORMAT = "loomem-stream"
VERSION = 1
BATCH = 1000


def _embedder(engine: MemoryEngine) -> str:
    return str(engine.config.llm.backend) + ":" + str(getattr(engine.llm, "name", ""))


def export_stream(engine: MemoryEngine, stream: str, fp: IO[str], *, embeddings: bool) -> dict[str, int]:
    """Write ``stream`` to ``fp``; counts per record type. NOT_FOUND for an empty stream."""
    from loom_core.memory.engine import now_ms

    check_stream(stream)
    moment = now_ms()  # expired chunks waiting for the sweeper are gone for every reader: not exported
    records = [r for r in engine._routing_of_stream(stream) if not r.expired(moment)]
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
    fp.write(json.dumps(header) + "\n")
    for record in records:
        chunk = engine._chunk(record)
        line: dict[str, Any] = {"record": "chunk", **chunk.to_dict()}
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
    """Read an export into ``stream`` (default: the exported name)."""
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
    reuse_vectors = header.get("embedder") == _embedder(engine) and header.get("dimension") == engine.dim
    chunks: list[dict[str, Any]] = []
    entities: list[Entity] = []
    relations: list[Relation] = []
    try:
        for number, line in lines:
            kind = line.pop("record")
            if kind == "chunk":
                chunks.append(line)
            elif kind == "entity":
                entities.append(Entity(**{**line, "stream": target}))
            elif kind == "relation":
                relations.append(Relation(**{**line, "stream": target}))
            else:
                raise LoomError(ErrorCode.VALIDATION_FAILED, f"import line {number}: unknown record type {kind!r}")
    except TypeError as exc:
        raise LoomError(ErrorCode.VALIDATION_FAILED, f"import record has wrong fields: {exc}") from None
    for record_id in [c.get("id") for c in chunks] + [e.id for e in entities] + [r.id for r in relations]:
        if not isinstance(record_id, str) or not is_id(record_id):
            raise LoomError(ErrorCode.VALIDATION_FAILED, f"import record id {record_id!r} is not a ULID")
    for c in chunks:
        for field in ("supersedes", "superseded_by"):
            if c.get(field) is not None and not is_id(str(c[field])):
                raise LoomError(ErrorCode.VALIDATION_FAILED, f"chunk {c['id']}: {field} is not a ULID")
        missing = [f for f in ("content", "level", "created_at", "updated_at") if f not in c]
        if missing or not isinstance(c.get("content"), str):
            raise LoomError(ErrorCode.VALIDATION_FAILED, f"chunk {c['id']}: missing or bad field(s) {missing}")
    check_chunks(chunks, engine.dim, reuse_vectors)
    check_graph(entities, relations)
    clashes = [c["id"] for c in chunks if c.get("id") in engine._routing]
    clashes += [e.id for e in entities if engine._graph.exists(rows.entity_key(e.id))]
    clashes += [r.id for r in relations if engine._graph.exists(rows.relation_key(r.id))]
    if clashes:
        raise LoomError(
            ErrorCode.CONFLICT,
            f"{len(clashes)} record(s) of the import already exist (first: {clashes[0]!r}); "
            "import into an empty data directory or delete the stream first",
        )
    for start in range(0, len(chunks), BATCH):
        part = chunks[start : start + BATCH]
        records = [
            Routing(
                id=c["id"],
                stream=target,
                level=int(c["level"]),
                created_at=int(c["created_at"]),
                updated_at=int(c["updated_at"]),
                supersedes=c.get("supersedes"),
                superseded_by=c.get("superseded_by"),
                expires_at=c.get("expires_at"),
            )
            for c in part
        ]
        bodies = [{"content": c["content"], "metadata": c.get("metadata") or {}} for c in part]
        if reuse_vectors and all("embedding_b64" in c for c in part):
            vectors = np.stack([np.frombuffer(base64.b64decode(c["embedding_b64"]), dtype="<f4") for c in part]).astype(
                np.float32
            )
        else:
            vectors = np.asarray(engine.llm.embed([b["content"] for b in bodies]), dtype=np.float32)
        engine._write_new(target, records, bodies, vectors, 0, link_old=False)
        for c in part:
            if c.get("access_count"):
                engine._access[c["id"]] = (int(c["access_count"]), int(c.get("last_accessed_at") or 0))
                engine._access_dirty.add(c["id"])
    batch = WriteBatch()
    for entity in entities:
        engine._graph.put_entity(entity, batch)
    for relation in relations:
        engine._graph.put_relation(relation, batch)
    if len(batch):
        engine.storage.write(batch, durable=True)
    engine._flush_access()
    return {"chunks": len(chunks), "entities": len(entities), "relations": len(relations)}
