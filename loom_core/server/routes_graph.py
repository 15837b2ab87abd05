"""Entity-graph routes: entities and relations of a stream, read and deleted by id.

Entities and relations are written through the API for now; automatic
extraction from chunks comes with the LLM features. Deletes are audit events.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from loom_core.server.auth import audited, require_auth
from loom_core.server.deps import EngineDep, EntityIdPath, RelationIdPath, StreamPath, time_param
from loom_core.server.schemas import (
    BODY_ERRORS,
    COMMON_ERRORS,
    ISO_TIME_PATTERN,
    MILLIS_PATTERN,
    Deleted,
    EntityIn,
    EntityList,
    EntityOut,
    RelationIn,
    RelationList,
    RelationOut,
    error_responses,
    to_millis,
)

router = APIRouter(prefix="/v1", tags=["graph"], dependencies=[Depends(require_auth)],
                   responses=COMMON_ERRORS)

#: Reading or deleting one record by id: an id over 128 characters (422), no such record (404).
BY_ID_ERRORS = error_responses(404, 422)
#: A listing: a bad stream name, filter or time (422); an empty or unknown stream lists nothing.
LIST_ERRORS = error_responses(422)
Filter = Annotated[str | None, Query(min_length=1, max_length=1000)]


@router.post("/streams/{stream}/entities", status_code=201, response_model=EntityOut, responses=BODY_ERRORS,
             summary="Create an entity (type, name, aliases)")
def add_entity(stream: StreamPath, body: EntityIn, engine: EngineDep) -> JSONResponse:
    entity = engine.add_entity(stream, type=body.type, name=body.name, aliases=body.aliases,
                               metadata=body.metadata)
    return JSONResponse(entity.to_dict(), status_code=201)


@router.get("/streams/{stream}/entities", response_model=EntityList, responses=LIST_ERRORS,
            summary="Entities of a stream; `name` matches names and aliases case-insensitively")
def list_entities(stream: StreamPath, engine: EngineDep, type: Filter = None, name: Filter = None) -> JSONResponse:
    entities = engine.list_entities(stream, type=type, name=name)
    return JSONResponse({"entities": [e.to_dict() for e in entities]})


@router.get("/entities/{entity_id}", response_model=EntityOut, responses=BY_ID_ERRORS, summary="Read an entity")
def get_entity(entity_id: EntityIdPath, engine: EngineDep) -> JSONResponse:
    return JSONResponse(engine.get_entity(entity_id).to_dict())


@router.delete("/entities/{entity_id}", response_model=Deleted, responses=BY_ID_ERRORS,
               summary="Delete an entity and every relation that mentions it")
def delete_entity(entity_id: EntityIdPath, request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "entity.delete", entity_id):
        engine.delete_entity(entity_id)
    return JSONResponse({"deleted": entity_id, "count": 1})


@router.post("/streams/{stream}/relations", status_code=201, response_model=RelationOut,
             responses={**BODY_ERRORS, **error_responses(
                 404, said={404: "`subject`, `object` or a `source_chunks` id names no record of the stream "
                                 "(NOT_FOUND)"})},
             summary="Relate two entities of the stream (subject, predicate, object)")
def add_relation(stream: StreamPath, body: RelationIn, engine: EngineDep) -> JSONResponse:
    relation = engine.add_relation(
        stream,
        subject=body.subject,
        predicate=body.predicate,
        object=body.object,
        valid_from=to_millis(body.valid_from),
        valid_to=to_millis(body.valid_to),
        source_chunks=body.source_chunks,
        metadata=body.metadata,
    )
    return JSONResponse(relation.to_dict(), status_code=201)


@router.get("/streams/{stream}/relations", response_model=RelationList, responses=LIST_ERRORS,
            summary="Relations of a stream; filter by entity (either end), predicate, or validity instant")
def list_relations(
    stream: StreamPath,
    engine: EngineDep,
    entity: Filter = None,
    predicate: Filter = None,
    at: Annotated[str | None, Query(description="ms since the epoch or ISO-8601 (UTC when no zone is given)",
                                    json_schema_extra={"anyOf": [{"type": "string", "pattern": ISO_TIME_PATTERN},
                                                                 {"type": "string", "pattern": MILLIS_PATTERN},
                                                                 {"type": "string", "maxLength": 0}]})] = None,
) -> JSONResponse:
    relations = engine.list_relations(stream, entity=entity, predicate=predicate, at=time_param(at, "at"))
    return JSONResponse({"relations": [r.to_dict() for r in relations]})


@router.get("/relations/{relation_id}", response_model=RelationOut, responses=BY_ID_ERRORS, summary="Read a relation")
def get_relation(relation_id: RelationIdPath, engine: EngineDep) -> JSONResponse:
    return JSONResponse(engine.get_relation(relation_id).to_dict())


@router.delete("/relations/{relation_id}", response_model=Deleted, responses=BY_ID_ERRORS, summary="Delete a relation")
def delete_relation(relation_id: RelationIdPath, request: Request, engine: EngineDep) -> JSONResponse:
    with audited(request, "relation.delete", relation_id):
        engine.delete_relation(relation_id)
    return JSONResponse({"deleted": relation_id, "count": 1})
