"""JSON schemas for OpenAI structured outputs, and checking the reply against the caller's schema.

OpenAI's strict mode (``"strict": true``) guarantees the reply fits the schema, but accepts only
schemas whose every object forbids extra keys and requires all its properties. A caller's schema
is adapted: objects that do not say otherwise get ``additionalProperties: false`` (a narrowing,
so every reply still fits the caller's schema). When some object leaves a property optional or
allows extra keys, strict mode cannot express it and the request goes with ``"strict": false``.
Either way the parsed reply is validated against the caller's original schema, and a reply that
does not fit is ``LLM_BAD_RESPONSE``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from loom_core.errors import ErrorCode, LoomError

SCHEMA_NAME = "loom_reply"
_NESTED_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_NESTED_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")


def _adapt(schema: Any) -> bool:
    """Adapt ``schema`` in place for strict mode; False when strict mode cannot express it."""
    if not isinstance(schema, dict):
        return True
    strict = True
    if schema.get("type") == "object" or "properties" in schema:
        schema.setdefault("additionalProperties", False)
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        if schema["additionalProperties"] is not False or any(name not in required for name in properties):
            strict = False
    for key in _NESTED_MAPS:
        nested = schema.get(key)
        if isinstance(nested, dict):
            strict = all([_adapt(sub) for sub in nested.values()]) and strict
    for key in _NESTED_LISTS:
        nested = schema.get(key)
        if isinstance(nested, list):
            strict = all([_adapt(sub) for sub in nested]) and strict
    for key in ("items", "not", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            strict = _adapt(schema[key]) and strict
    return strict


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The ``response_format`` asking for a reply that fits ``schema`` (strict when it can be)."""
    check_schema(schema)
    adapted = copy.deepcopy(dict(schema))
    strict = _adapt(adapted)
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": adapted, "strict": strict}}


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse a schema that is not valid JSON Schema: a bug in the caller, not in the reply."""
    import jsonschema

    problem = ""
    try:
        jsonschema.validators.validator_for(schema).check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        problem = "/".join(map(str, exc.absolute_path)) or "the root"
    if problem:
        raise LoomError(ErrorCode.INTERNAL_ERROR, f"complete() was given an invalid JSON schema (at {problem})")


def validate(data: Any, schema: Mapping[str, Any]) -> None:
    """``LLM_BAD_RESPONSE`` naming the first place ``data`` breaks ``schema`` (never quoting the data)."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.json_path)))
    if errors:
        first = errors[0]
        raise LoomError(
            ErrorCode.LLM_BAD_RESPONSE,
            f"the model's JSON reply does not fit the schema: at {first.json_path} it fails "
            f"'{first.validator}' ({len(errors)} problem{'s' if len(errors) != 1 else ''})",
        )
