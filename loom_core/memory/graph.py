"""Entities and relations of a stream's graph, sealed through the RowCodec.

Keys hold ids only (``ent:{id}``, ``rel:{id}``, and stream membership rows
``sent:{stream}\\0{id}`` / ``srel:{stream}\\0{id}``); names, aliases, types
and relation data live in the sealed body. Lookup by name therefore opens
the stream's entities and compares (no name-derived key that could leak a
name or allow guessing it from the files).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from ulid import ULID

from loom_core.contracts.storage import WriteBatch
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory import rows
from loom_core.memory.models import Entity, Relation
from loom_core.memory.rowcodec import RowCodec


def _now() -> int:
    return time.time_ns() // 1_000_000


def _invalid(field: str, why: str) -> LoomError:
    return LoomError(ErrorCode.VALIDATION_FAILED, f"{field}: {why}", details={"field": field})


def _text(field: str, value: object) -> str:
    if (problem := rows.text_problem(value, rows.MAX_NAME)) is not None:
        raise _invalid(field, problem)
    assert isinstance(value, str)
    return value.strip()


def _metadata(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("metadata", "must be an object")
    if (problem := rows.metadata_problem(value)) is not None:
        raise _invalid("metadata", problem)
    return value


def _fold(value: str) -> str:
    """Name matching ignores case, repeated spaces and Unicode representation: NFKC makes a
    decomposed "Zoë" (e + combining diaeresis) and full-width letters equal to their usual forms."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


class GraphStore:
    """Reads and writes graph rows; the engine holds the lock."""

    def __init__(self, storage: Any, codec: RowCodec) -> None:
        self.storage = storage
        self.codec = codec

    # -- rows -------------------------------------------------------------------
    def _put(self, batch: WriteBatch, key: bytes, stream: str, header: dict[str, Any], body: dict[str, Any]) -> None:
        sealed = self.codec.seal(stream, key, rows.encode_json(body))
        batch.put("graph", key, rows.graph_envelope({"stream": stream, **header}, sealed))

    def _read(self, key: bytes) -> tuple[dict[str, Any], dict[str, Any]] | None:
        raw = self.storage.get("graph", key)
        if raw is None:
            return None
        header, sealed = rows.split_graph_envelope(raw)
        what = f"graph record {key.decode(errors='replace')!r}"
        body = rows.open_body(self.codec, header["stream"], key, sealed, what)
        return header, body

    def _members(self, kind: str, stream: str) -> list[str]:
        prefix = rows.stream_member_prefix(kind, stream)
        return [key[len(prefix) :].decode() for key, _ in self.storage.iterate("graph", prefix=prefix)]

    # -- entities -----------------------------------------------------------------
    def add_entity(
        self, stream: str, *, type: str, name: str, aliases: Sequence[str], metadata: dict[str, Any]
    ) -> Entity:
        kind = _text("type", type)
        clean_name = _text("name", name)
        if isinstance(aliases, str):
            raise _invalid("aliases", "must be a list of strings")
        clean_aliases = [_text(f"aliases[{i}]", a) for i, a in enumerate(aliases)]
        metadata = _metadata(metadata)
        entity_id = str(ULID())
        now = _now()
        batch = WriteBatch()
        body = {"type": kind, "name": clean_name, "aliases": clean_aliases, "metadata": metadata}
        self._put(batch, rows.entity_key(entity_id), stream, {"created_at": now, "updated_at": now}, body)
        batch.put("graph", rows.stream_entity_key(stream, entity_id), b"")
        self.storage.write(batch, durable=True)
        return self._entity(entity_id, {"stream": stream, "created_at": now, "updated_at": now}, body)

    def put_entity(self, entity: Entity, batch: WriteBatch) -> None:
        """Write an entity as given (import keeps ids and timestamps)."""
        body = {"type": entity.type, "name": entity.name, "aliases": entity.aliases, "metadata": entity.metadata}
        header = {"created_at": entity.created_at, "updated_at": entity.updated_at}
        self._put(batch, rows.entity_key(entity.id), entity.stream, header, body)
        batch.put("graph", rows.stream_entity_key(entity.stream, entity.id), b"")

    @staticmethod
    def _entity(entity_id: str, header: dict[str, Any], body: dict[str, Any]) -> Entity:
        return Entity(
            id=entity_id,
            stream=header["stream"],
            type=body["type"],
            name=body["name"],
            aliases=list(body.get("aliases") or []),
            metadata=dict(body.get("metadata") or {}),
            created_at=header["created_at"],
            updated_at=header["updated_at"],
        )

    def get_entity(self, entity_id: str) -> Entity:
        found = self._read(rows.entity_key(entity_id)) if isinstance(entity_id, str) else None
        if found is None:
            raise LoomError(ErrorCode.NOT_FOUND, f"entity {entity_id!r} does not exist", details={"id": entity_id})
        return self._entity(entity_id, *found)

    def exists(self, key: bytes) -> bool:
        return self.storage.get("graph", key) is not None

    def list_entities(self, stream: str, *, type: str | None, name: str | None) -> list[Entity]:
        wanted = None if name is None else _fold(name)
        out: list[Entity] = []
        for entity_id in self._members("sent", stream):
            found = self._read(rows.entity_key(entity_id))
            if found is None:
                continue
            entity = self._entity(entity_id, *found)
            if type is not None and entity.type != type:
                continue
            if wanted is not None and wanted not in {_fold(n) for n in [entity.name, *entity.aliases]}:
                continue
            out.append(entity)
        return out

    def delete_entity(self, entity_id: str) -> str:
        """Delete the entity and its relations; the stream it belonged to."""
        entity = self.get_entity(entity_id)
        batch = WriteBatch()
        batch.delete("graph", rows.entity_key(entity_id))
        batch.delete("graph", rows.stream_entity_key(entity.stream, entity_id))
        for relation in self.list_relations(entity.stream, entity=entity_id, predicate=None, at=None):
            batch.delete("graph", rows.relation_key(relation.id))
            batch.delete("graph", rows.stream_relation_key(entity.stream, relation.id))
        self.storage.write(batch, durable=True)
        return entity.stream

    # -- relations ---------------------------------------------------------------
    def add_relation(
        self,
        stream: str,
        *,
        subject: str,
        predicate: str,
        object: str,
        valid_from: int | None,
        valid_to: int | None,
        source_chunks: list[str],
        metadata: dict[str, Any],
    ) -> Relation:
        pred = _text("predicate", predicate)
        # Stored as looked up (stripped): the cascade on entity delete and the `entity` filter
        # match ids exactly, so a padded id would outlive its entity.
        subject, object = _text("subject", subject), _text("object", object)
        for field, entity_id in (("subject", subject), ("object", object)):
            entity = self.get_entity(entity_id)
            if entity.stream != stream:
                raise _invalid(field, f"entity {entity_id!r} belongs to stream {entity.stream!r}, not {stream!r}")
        for field, value in (("valid_from", valid_from), ("valid_to", valid_to)):
            if value is not None and (problem := rows.time_problem(value)) is not None:
                raise _invalid(field, problem)
        if valid_from is not None and valid_to is not None and valid_to <= valid_from:
            raise _invalid("valid_to", "must be later than valid_from")
        metadata = _metadata(metadata)
        relation = Relation(
            id=str(ULID()),
            stream=stream,
            subject=subject,
            predicate=pred,
            object=object,
            valid_from=valid_from,
            valid_to=valid_to,
            source_chunks=source_chunks,
            metadata=metadata,
            created_at=_now(),
        )
        batch = WriteBatch()
        self.put_relation(relation, batch)
        self.storage.write(batch, durable=True)
        return relation

    def put_relation(self, relation: Relation, batch: WriteBatch) -> None:
        body = {
            "subject": relation.subject,
            "predicate": relation.predicate,
            "object": relation.object,
            "valid_from": relation.valid_from,
            "valid_to": relation.valid_to,
            "source_chunks": relation.source_chunks,
            "metadata": relation.metadata,
        }
        self._put(batch, rows.relation_key(relation.id), relation.stream, {"created_at": relation.created_at}, body)
        batch.put("graph", rows.stream_relation_key(relation.stream, relation.id), b"")

    def get_relation(self, relation_id: str) -> Relation:
        found = self._read(rows.relation_key(relation_id)) if isinstance(relation_id, str) else None
        if found is None:
            raise LoomError(
                ErrorCode.NOT_FOUND, f"relation {relation_id!r} does not exist", details={"id": relation_id}
            )
        header, body = found
        return Relation(
            id=relation_id,
            stream=header["stream"],
            subject=body["subject"],
            predicate=body["predicate"],
            object=body["object"],
            valid_from=body.get("valid_from"),
            valid_to=body.get("valid_to"),
            source_chunks=list(body.get("source_chunks") or []),
            metadata=dict(body.get("metadata") or {}),
            created_at=header["created_at"],
        )

    def list_relations(
        self, stream: str, *, entity: str | None, predicate: str | None, at: int | None
    ) -> list[Relation]:
        out: list[Relation] = []
        for relation_id in self._members("srel", stream):
            try:
                relation = self.get_relation(relation_id)
            except LoomError as exc:
                if exc.code is ErrorCode.NOT_FOUND:
                    continue
                raise
            if entity is not None and entity not in (relation.subject, relation.object):
                continue
            if predicate is not None and relation.predicate != predicate:
                continue
            if at is not None and not (
                (relation.valid_from is None or relation.valid_from <= at)
                and (relation.valid_to is None or at < relation.valid_to)
            ):
                continue
            out.append(relation)
        return out

    def delete_relation(self, relation_id: str) -> None:
        relation = self.get_relation(relation_id)
        batch = WriteBatch()
        batch.delete("graph", rows.relation_key(relation_id))
        batch.delete("graph", rows.stream_relation_key(relation.stream, relation_id))
        self.storage.write(batch, durable=True)

    def unreadable(self, among: Iterable[bytes] | None = None) -> list[bytes]:
        """Keys of entity and relation rows that exist but cannot be opened (damaged, tampered, key
        destroyed): every such row, or those of ``among`` (keys an earlier call reported). Raw
        bytes: a damaged key may not be UTF-8, and a decoded copy would name no row."""
        if among is None:
            keys = [key for prefix in (b"ent:", b"rel:") for key, _ in self.storage.iterate("graph", prefix=prefix)]
        else:
            keys = list(among)
        bad: list[bytes] = []
        for key in keys:
            try:
                self._read(key)
            except (LoomError, ValueError, KeyError):
                bad.append(key)
        return bad

    # -- streams -----------------------------------------------------------------
    def entity_counts(self) -> dict[str, int]:
        """Entities per stream, for every stream whose graph holds one."""
        counts: dict[str, int] = {}
        for key, _ in self.storage.iterate("graph", prefix=b"sent:"):
            stream = rows.stream_of_member_key("sent", key)
            counts[stream] = counts.get(stream, 0) + 1
        return counts

    def has_stream(self, stream: str) -> bool:
        return bool(self._members("sent", stream) or self._members("srel", stream))

    def delete_stream_ops(self, stream: str, batch: WriteBatch) -> None:
        """Add the deletes of every graph row of ``stream`` to ``batch``."""
        for entity_id in self._members("sent", stream):
            batch.delete("graph", rows.entity_key(entity_id))
            batch.delete("graph", rows.stream_entity_key(stream, entity_id))
        for relation_id in self._members("srel", stream):
            batch.delete("graph", rows.relation_key(relation_id))
            batch.delete("graph", rows.stream_relation_key(stream, relation_id))

    def delete_stream(self, stream: str) -> None:
        batch = WriteBatch()
        self.delete_stream_ops(stream, batch)
        if len(batch):
            self.storage.write(batch, durable=True)
