"""Validate a workflow document against ``workflow.schema.json`` (shipped as package data).

Messages are written here rather than taken from jsonschema because its
default texts quote the offending instance, and an instance in a secrets
block may be a value someone pasted by mistake: nothing from the document
except key names and references is ever echoed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from loom_core.workflow.loader import JsonPath


@dataclass(frozen=True)
class SchemaProblem:
    """One schema violation: where, and what is wrong (no instance values)."""

    path: JsonPath
    message: str


@lru_cache(maxsize=1)
def workflow_schema() -> dict[str, Any]:
    """The JSON Schema, read from the package (also published in the docs)."""
    text = resources.files("loom_core.workflow").joinpath("workflow.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    # The schema itself is checked against its metaschema by the tests, not on every run.
    schema = workflow_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _in_secrets(path: JsonPath) -> bool:
    return len(path) >= 4 and path[0] == "jobs" and path[2] == "secrets"


def _describe(err: ValidationError, scalars: Mapping[JsonPath, str]) -> Iterator[SchemaProblem]:
    path: JsonPath = tuple(err.absolute_path)
    kind = err.validator
    if kind == "additionalProperties" and isinstance(err.instance, Mapping):
        declared = err.schema.get("properties", {}) if isinstance(err.schema, Mapping) else {}
        allowed = sorted(declared)
        extras = [k for k in err.instance if k not in declared]
        for key in extras:
            if _in_secrets((*path, "x")) and len(path) == 4:
                msg = (
                    f"unknown field {key!r} in secret {path[3]!r}: a secret holds only a reference "
                    "(`ref`, optional `file`); values are never accepted in a workflow"
                )
            else:
                msg = f"unknown field {key!r}; allowed here: {', '.join(allowed) or 'nothing'}"
            yield SchemaProblem((*path, str(key)), msg)
        return
    if kind is None or err.schema is False:
        # jsonschema reports a ``false`` subschema at the parent's path.
        if path in (("default",), ("default", "secrets")):
            path = ("default", "secrets")
            yield SchemaProblem(
                path,
                "`default.secrets` is not allowed: secrets are job-scoped so one declaration cannot "
                "fan out to every job; declare them under `jobs.<job>.secrets`",
            )
        else:
            yield SchemaProblem(path, "this field is not allowed here")
        return
    if kind == "type":
        expected = err.validator_value
        if _in_secrets(path) and len(path) == 4:
            yield SchemaProblem(
                path,
                f"secret {path[3]!r} must be a mapping such as {{ref: \"env://NAME\"}}: a secret is a "
                "reference to a provider, never a value",
            )
        else:
            yield SchemaProblem(path, _type_message(path, expected, err.instance, scalars.get(path)))
        return
    if kind == "required":
        present = err.instance if isinstance(err.instance, Mapping) else {}
        for name in err.validator_value if isinstance(err.validator_value, list) else ():
            if name not in present:
                yield SchemaProblem(path, f"missing required field {name!r}")
        return
    if "propertyNames" in err.absolute_schema_path:
        name = str(err.instance)
        if path == ("jobs",):
            what, rule = "job name", "letters, digits, '_', '.', '-', at most 63 characters"
        elif path and path[-1] == "secrets":
            what, rule = "secret name", "upper-case letters, digits and '_', starting with a letter"
        else:
            what, rule = "variable name", "letters, digits and '_', not starting with a digit"
        yield SchemaProblem((*path, name), f"invalid {what} {name!r}: use {rule}")
        return
    if kind == "pattern":
        if path and path[0] == "jobs" and len(path) >= 3 and path[2] == "needs":
            yield SchemaProblem(path, "not a valid job name")
        elif path and path[-1] == "image":
            yield SchemaProblem(path, "image must be a non-empty reference without spaces or a leading '-'")
        else:
            yield SchemaProblem(path, f"must match the pattern {err.validator_value}")
        return
    if kind == "uniqueItems":
        yield SchemaProblem(path, "items must be unique")
        return
    if kind in ("minItems", "minProperties", "minLength"):
        yield SchemaProblem(path, "must not be empty")
        return
    if kind == "exclusiveMinimum":
        yield SchemaProblem(path, f"must be greater than {err.validator_value}")
        return
    yield SchemaProblem(path, f"fails the schema's {kind!r} rule")


#: JSON Schema type names as a workflow author knows them
_WANTED = {
    "array": "a list",
    "object": "a mapping",
    "string": "text",
    "number": "a number",
    "boolean": "true or false",
    "integer": "a whole number",
}


def _found(instance: Any) -> str:
    """What YAML made of a value, in words (never the value itself)."""
    if isinstance(instance, bool):
        return "a boolean"
    if isinstance(instance, int):
        return "an integer"
    if isinstance(instance, float):
        return "a number"
    if instance is None:
        return "null (no value)"
    if isinstance(instance, str):
        return "text"
    if isinstance(instance, list):
        return "a list"
    if isinstance(instance, Mapping):
        return "a mapping"
    return f"a {type(instance).__name__}"


def _type_message(path: JsonPath, expected: Any, instance: Any, source: str | None) -> str:
    """``must be text, not ...``: where text is wanted and YAML read an unquoted scalar as something
    else (``1.10``, ``yes``, ``~``), say what it became and how to quote it. The written text is
    repeated only outside ``secrets``, where a pasted value could stand."""
    kinds = expected if isinstance(expected, list) else [expected]
    wanted = [_WANTED.get(str(k), str(k)) for k in kinds]
    want = wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " or " + wanted[-1]
    found = _found(instance)
    if "string" in kinds and source is not None and not isinstance(instance, list | Mapping):
        if _in_secrets(path):
            return f"must be {want}, but YAML 1.1 reads this unquoted value as {found}; quote it"
        if source == "":
            return f"must be {want}, but nothing is written here (YAML reads it as null)"
        return f"must be {want}, but YAML 1.1 reads the unquoted {source} as {found}; quote it: \"{source}\""
    return f"must be {want}, not {found}"


def _non_string_keys(node: Any, path: JsonPath) -> Iterator[SchemaProblem]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                yield SchemaProblem((*path, str(key)), f"keys must be text; found {_found(key)} key {key!r}")
            yield from _non_string_keys(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _non_string_keys(item, (*path, i))


def _string_keyed(node: Any) -> Any:
    """``node`` with every mapping key as text, so the schema judges the rest of the document too."""
    if isinstance(node, Mapping):
        return {str(key): _string_keyed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_string_keyed(item) for item in node]
    return node


def schema_problems(data: Any, scalars: Mapping[JsonPath, str] | None = None) -> list[SchemaProblem]:
    """Every schema violation in ``data`` (empty when valid), in document order.

    ``scalars``: the written text of values YAML did not read as text (from the loader), so a
    value that must be text can be named as written. Keys that are not text are reported and the
    document is still validated as a whole (with those keys as text), so that nothing waits for a
    second run of ``loom check``. (Documents from :mod:`loader` keep keys as written already.)
    """
    problems = list(_non_string_keys(data, ()))
    if problems:
        data = _string_keyed(data)
    for err in sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        problems.extend(_describe(err, scalars or {}))
    return problems
