"""Checks on every record of a stream export before any of it is written.

An import writes in batches; a bad record found half-way used to leave the
batches before it behind (and a retry then clashed with them). Everything a
write could refuse, or that could not be read back, is checked up front, so a
refused import writes nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory import rows
from loom_core.memory.models import Entity, Relation


def _bad(record: str, field: str, why: str) -> LoomError:
    return LoomError(ErrorCode.VALIDATION_FAILED, f"import {record}: {field} {why}", details={"field": field})


def _time(record: str, field: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if (problem := rows.time_problem(value)) is not None:
        raise _bad(record, field, problem)


def _text(record: str, field: str, value: Any, max_chars: int | None = None) -> None:
    if (problem := rows.text_problem(value, max_chars)) is not None:
        raise _bad(record, field, problem)


def _metadata(record: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _bad(record, "metadata", "must be an object")
    if (problem := rows.metadata_problem(value)) is not None:
        raise _bad(record, "metadata", problem)


def check_chunks(chunks: Sequence[Mapping[str, Any]], dim: int, reuse_vectors: bool) -> None:
    """Fields, ranges, chains (links stay inside the import) and stored vectors."""
    ids = {c["id"] for c in chunks}
    for c in chunks:
        record = f"chunk {c['id']}"
        _text(record, "content", c.get("content"))
        if (problem := rows.level_problem(c.get("level"))) is not None:
            raise _bad(record, "level", problem)
        for field in ("created_at", "updated_at"):
            _time(record, field, c.get(field))
        _time(record, "expires_at", c.get("expires_at"), optional=True)
        for field in ("access_count", "last_accessed_at"):
            value = c.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise _bad(record, field, "must be a non-negative integer")
        _metadata(record, c.get("metadata"))
        for field in ("supersedes", "superseded_by"):
            link = c.get(field)
            if link is not None and link not in ids:
                raise _bad(record, field, f"names {link!r}, which is not in the import")
        if reuse_vectors and "embedding_b64" in c:
            try:
                raw = base64.b64decode(str(c["embedding_b64"]), validate=True)
            except (binascii.Error, ValueError):
                raise _bad(record, "embedding_b64", "is not base64") from None
            if len(raw) != 4 * dim:
                raise _bad(record, "embedding_b64", f"holds {len(raw)} bytes, not {dim} float32 values")


def check_graph(entities: Iterable[Entity], relations: Iterable[Relation]) -> None:
    """Entity and relation fields; relation ends must be entities of the import."""
    entity_ids: set[str] = set()
    for entity in entities:
        record = f"entity {entity.id}"
        # held to the same length as add_entity holds them
        _text(record, "type", entity.type, rows.MAX_NAME)
        _text(record, "name", entity.name, rows.MAX_NAME)
        if not isinstance(entity.aliases, list):
            raise _bad(record, "aliases", "must be a list of strings")
        for i, alias in enumerate(entity.aliases):
            _text(record, f"aliases[{i}]", alias, rows.MAX_NAME)
        _metadata(record, entity.metadata)
        _time(record, "created_at", entity.created_at)
        _time(record, "updated_at", entity.updated_at)
        entity_ids.add(entity.id)
    for relation in relations:
        record = f"relation {relation.id}"
        _text(record, "predicate", relation.predicate, rows.MAX_NAME)
        for field in ("subject", "object"):
            if getattr(relation, field) not in entity_ids:
                raise _bad(record, field, "names an entity that is not in the import")
        _time(record, "valid_from", relation.valid_from, optional=True)
        _time(record, "valid_to", relation.valid_to, optional=True)
        _time(record, "created_at", relation.created_at)
        if not isinstance(relation.source_chunks, list):
            raise _bad(record, "source_chunks", "must be a list of chunk ids")
        _metadata(record, relation.metadata)
