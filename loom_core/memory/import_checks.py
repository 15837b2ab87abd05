"""Checks on every record of a stream export before any of it is written.

An import writes in batches; a bad record found half-way used to leave the
batches before it behind (and a retry then clashed with them). Everything a
write could refuse, or that could not be read back, is checked up front, so a
refused import writes nothing.

A field the REST API also takes (a chunk's content, level, metadata, supersedes
and expires_at; every field of an entity or relation it creates) goes through
the API's own request model (:mod:`loom_core.server.schemas`) and then through
the same checks the engine applies behind it, so import refuses exactly what
the API refuses and the two cannot drift apart. The fields only an import
carries (ids, creation times, chain links, access statistics, vectors) are
checked against the row format. Whole-file rules follow in
:func:`check_records`: ids are unique, supersede chains are complete, mirrored,
unbranched and acyclic, and relation ends are entities of the file.

Every refusal is ``VALIDATION_FAILED`` naming the line, the record, the field
and the rule, with ``details = {"field": ..., "line": ...}``; values are never
quoted (they may be private).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory import rows
from loom_core.memory.ids import is_id
from loom_core.memory.models import Chunk, Entity, Relation
from loom_core.memory.rows import Routing
from loom_core.server.schemas import ChunkIn, EntityIn, RelationIn

#: access statistics are stored as two uint64 values
_MAX_COUNT = 2**64 - 1
_CHUNK_FIELDS = frozenset(f.name for f in dataclasses.fields(Chunk)) | {"embedding_b64"}
_CHUNK_REQUIRED = ("id", "content", "level", "created_at", "updated_at")
_ENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(Entity))
_RELATION_FIELDS = tuple(f.name for f in dataclasses.fields(Relation))

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ImportedChunk:
    """One checked chunk line, ready to write."""

    line: int
    routing: Routing
    content: str
    metadata: dict[str, Any]
    vector: bytes | None  # the exported float32 vector, when it is reused
    access_count: int
    last_accessed_at: int | None


@dataclass(frozen=True, slots=True)
class Numbered(Generic[T]):
    """A checked entity or relation and the line it came from."""

    line: int
    record: T


def _bad(line: int, record: str, field: str, why: str) -> LoomError:
    return LoomError(
        ErrorCode.VALIDATION_FAILED,
        f"import line {line} ({record}): {field} {why}",
        details={"field": field, "line": line},
    )


def _name(kind: str, value: Mapping[str, Any]) -> str:
    """How messages name a record: its kind and id (an id that is not a ULID is not quoted)."""
    record_id = value.get("id")
    return f"{kind} {record_id}" if isinstance(record_id, str) and is_id(record_id) else kind


def _fields(line: int, record: str, value: Mapping[str, Any], allowed: frozenset[str], required: Sequence[str]) -> None:
    for field in value:
        if field not in allowed:
            raise _bad(line, record, str(field), "is not a field of this record type")
    for field in required:
        if field not in value:
            raise _bad(line, record, field, "is missing")


def _id(line: int, record: str, field: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not is_id(value):
        raise _bad(line, record, field, "must be a record id (a ULID)")


def _time(line: int, record: str, field: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if (problem := rows.time_problem(value)) is not None:
        raise _bad(line, record, field, problem)


def _text(line: int, record: str, field: str, value: Any, max_chars: int | None = None) -> str:
    """The text as the engine stores it (stripped), after the engine's own check."""
    if (problem := rows.text_problem(value, max_chars)) is not None:
        raise _bad(line, record, field, problem)
    assert isinstance(value, str)
    return value


def _metadata(line: int, record: str, value: dict[str, Any]) -> dict[str, Any]:
    if (problem := rows.metadata_problem(value)) is not None:
        raise _bad(line, record, "metadata", problem)
    return value


def _as_api(line: int, record: str, model: type[M], value: Mapping[str, Any]) -> M:
    """The fields the API also takes, validated by the API's request model."""
    try:
        return model.model_validate({k: value[k] for k in model.model_fields if k in value})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
        why = str(first["msg"]).removeprefix("Value error, ")
        raise _bad(line, record, field or "record", f"is refused as the API refuses it: {why}") from None


def read_chunk(line: int, value: Mapping[str, Any], *, stream: str, dim: int, reuse_vectors: bool) -> ImportedChunk:
    """A chunk line: the API's checks on what the API takes, the row format's on the rest."""
    record = _name("chunk", value)
    _fields(line, record, value, _CHUNK_FIELDS, _CHUNK_REQUIRED)
    _id(line, record, "id", value["id"])
    api = _as_api(line, record, ChunkIn, value)
    content = _text(line, record, "content", api.content)
    if (problem := rows.level_problem(api.level)) is not None:
        raise _bad(line, record, "level", problem)
    metadata = _metadata(line, record, api.metadata)
    for field in ("supersedes", "superseded_by"):
        _id(line, record, field, value.get(field), optional=True)
    for field in ("created_at", "updated_at"):
        _time(line, record, field, value[field])
    _time(line, record, "expires_at", api.expires_at, optional=True)
    count = value.get("access_count") or 0
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT:
        raise _bad(line, record, "access_count", f"must be an integer from 0 to {_MAX_COUNT}")
    _time(line, record, "last_accessed_at", value.get("last_accessed_at"), optional=True)
    vector: bytes | None = None
    if reuse_vectors and "embedding_b64" in value:
        try:
            vector = base64.b64decode(str(value["embedding_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(line, record, "embedding_b64", "is not base64") from None
        if len(vector) != 4 * dim:
            raise _bad(line, record, "embedding_b64", f"holds {len(vector)} bytes, not {dim} float32 values")
        if not np.isfinite(np.frombuffer(vector, dtype="<f4")).all():
            raise _bad(line, record, "embedding_b64", "holds NaN or infinity, which no embedder produces")
    return ImportedChunk(
        line=line,
        routing=Routing(
            id=value["id"],
            stream=stream,
            level=api.level,
            created_at=value["created_at"],
            updated_at=value["updated_at"],
            supersedes=value.get("supersedes"),
            superseded_by=value.get("superseded_by"),
            expires_at=api.expires_at,
        ),
        content=content,
        metadata=metadata,
        vector=vector,
        access_count=count,
        last_accessed_at=value.get("last_accessed_at"),
    )


def read_entity(line: int, value: Mapping[str, Any], *, stream: str) -> Numbered[Entity]:
    """An entity line: EntityIn, then the graph store's length limit (the API stores through it too)."""
    record = _name("entity", value)
    _fields(line, record, value, frozenset(_ENTITY_FIELDS), [f for f in _ENTITY_FIELDS if f != "stream"])
    _id(line, record, "id", value["id"])
    api = _as_api(line, record, EntityIn, value)
    kind = _text(line, record, "type", api.type, rows.MAX_NAME)
    name = _text(line, record, "name", api.name, rows.MAX_NAME)
    aliases = [_text(line, record, f"aliases[{i}]", a, rows.MAX_NAME) for i, a in enumerate(api.aliases)]
    metadata = _metadata(line, record, api.metadata)
    _time(line, record, "created_at", value["created_at"])
    _time(line, record, "updated_at", value["updated_at"])
    entity = Entity(
        id=value["id"],
        stream=stream,
        type=kind.strip(),
        name=name.strip(),
        aliases=[a.strip() for a in aliases],
        metadata=metadata,
        created_at=value["created_at"],
        updated_at=value["updated_at"],
    )
    return Numbered(line, entity)


def read_relation(line: int, value: Mapping[str, Any], *, stream: str) -> Numbered[Relation]:
    """A relation line: RelationIn, then the checks ``add_relation`` makes behind the API."""
    record = _name("relation", value)
    _fields(line, record, value, frozenset(_RELATION_FIELDS), [f for f in _RELATION_FIELDS if f != "stream"])
    _id(line, record, "id", value["id"])
    api = _as_api(line, record, RelationIn, value)
    predicate = _text(line, record, "predicate", api.predicate, rows.MAX_NAME)
    _id(line, record, "subject", api.subject)
    _id(line, record, "object", api.object)
    for field in ("valid_from", "valid_to"):
        _time(line, record, field, getattr(api, field), optional=True)
    if api.valid_from is not None and api.valid_to is not None and api.valid_to <= api.valid_from:
        raise _bad(line, record, "valid_to", "must be later than valid_from")
    # The API only takes ids of existing chunks; an export may name chunks deleted since
    # (provenance outlives them), so here each must be a chunk id, not one of the file.
    for i, chunk_id in enumerate(api.source_chunks):
        _id(line, record, f"source_chunks[{i}]", chunk_id)
    metadata = _metadata(line, record, api.metadata)
    _time(line, record, "created_at", value["created_at"])
    relation = Relation(
        id=value["id"],
        stream=stream,
        subject=api.subject,
        predicate=predicate.strip(),
        object=api.object,
        valid_from=api.valid_from,
        valid_to=api.valid_to,
        source_chunks=list(api.source_chunks),
        metadata=metadata,
        created_at=value["created_at"],
    )
    return Numbered(line, relation)


def check_records(
    chunks: Sequence[ImportedChunk],
    entities: Sequence[Numbered[Entity]],
    relations: Sequence[Numbered[Relation]],
) -> None:
    """The rules between records: unique ids, well-formed chains, relation ends in the file.

    The engine keeps every supersede chain a simple path inside one stream: each link is
    mirrored (``A.superseded_by == B`` exactly when ``B.supersedes == A``), a chunk has at
    most one successor, and a chain starts at a chunk that supersedes nothing. An export
    holds every chunk of the stream, so a link to a chunk outside the file is refused too:
    the chunk it names would not be updated, and the link would be one-sided.
    """
    where: dict[str, int] = {}
    for line, record_id, kind in (
        *((c.line, c.routing.id, "chunk") for c in chunks),
        *((e.line, e.record.id, "entity") for e in entities),
        *((r.line, r.record.id, "relation") for r in relations),
    ):
        if record_id in where:
            why = f"is already used by line {where[record_id]}: every record needs its own id"
            raise _bad(line, f"{kind} {record_id}", "id", why)
        where[record_id] = line

    by_id = {c.routing.id: c for c in chunks}
    for c in chunks:
        record = f"chunk {c.routing.id}"
        for field in ("supersedes", "superseded_by"):
            link = getattr(c.routing, field)
            if link is None:
                continue
            if link == c.routing.id:
                raise _bad(c.line, record, field, "names the chunk itself: a chunk cannot supersede itself")
            if link not in by_id:
                raise _bad(
                    c.line, record, field,
                    f"names {link}, which is not in the import: an export holds whole chains, and an "
                    "import cannot link to a chunk outside it",
                )
    for field, rule in (
        ("supersedes", "a chunk has at most one successor"),
        ("superseded_by", "a chunk supersedes at most one chunk"),
    ):
        claimed: dict[str, int] = {}
        for c in chunks:
            link = getattr(c.routing, field)
            if link is None:
                continue
            if link in claimed:
                why = f"names {link}, as line {claimed[link]} does: {rule}"
                raise _bad(c.line, f"chunk {c.routing.id}", field, why)
            claimed[link] = c.line
    for c in chunks:
        for field, mirror in (("supersedes", "superseded_by"), ("superseded_by", "supersedes")):
            link = getattr(c.routing, field)
            if link is not None and getattr(by_id[link].routing, mirror) != c.routing.id:
                raise _bad(
                    c.line, f"chunk {c.routing.id}", field,
                    f"names {link} (line {by_id[link].line}), whose {mirror} does not name this chunk: "
                    "each link must be mirrored by the chunk it names",
                )
    # Mirrored links with one successor and one predecessor each form paths and cycles; a walk
    # from every chain start reaches all chunks except those on a cycle.
    reached: set[str] = set()
    for c in chunks:
        if c.routing.supersedes is None:
            current: str | None = c.routing.id
            while current is not None and current not in reached:
                reached.add(current)
                current = by_id[current].routing.superseded_by
    for c in chunks:
        if c.routing.id not in reached:
            raise _bad(
                c.line, f"chunk {c.routing.id}", "supersedes",
                "closes a supersede cycle: a chain must start at a chunk that supersedes nothing",
            )

    entity_ids = {e.record.id for e in entities}
    for r in relations:
        for field in ("subject", "object"):
            if getattr(r.record, field) not in entity_ids:
                raise _bad(r.line, f"relation {r.record.id}", field, "names an entity that is not in the import")
