"""The published OpenAPI document against the server's real answers.

Generated clients and fuzzers trust ``/openapi.json``: every answer here is checked against the
operation it belongs to (its status must be declared, its body must validate against the declared
schema, ``$ref``s resolved against the document's components), every operation is reached with a
success, every declared error status is produced, and request bodies the schema allows or forbids
are the ones the server takes or refuses.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from loom_core.config import LoomConfig
from loom_core.memory.rows import STREAM_NAME
from loom_core.server.app import create_app
from loom_core.server.schemas import ID_PATTERN, STREAM_PATTERN, WHITESPACE_CLASS, parse_time

TOKEN = "openapi-" + "5e" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY_LIMIT = 65536
#: Operations that need an LLM backend that can chat; reached in the consolidation test.
CHAT_ONLY = {("POST", "/v1/streams/{stream}/consolidate"), ("POST", "/v1/admin/dream")}
ULID_NOBODY_HAS = "01JD6A8Z0Q3V4W5X6Y7Z8A9B0C"


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``document``."""
    return Draft202012Validator({**schema, "components": document["components"]})


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


@dataclass
class Checked:
    """A client whose every answer must be declared by the operation it reached, in shape."""

    client: TestClient
    document: dict[str, Any]
    #: (method, path template, status) of every answer checked
    seen: set[tuple[str, str, int]] = field(default_factory=set)

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for template, operations in self.document["paths"].items():
            if _template_regex(template).match(path) and method.lower() in operations:
                return template, operations[method.lower()]
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        response = self.client.request(method, url, headers=headers, **kwargs)
        path = httpx.URL(url).raw_path.decode().split("?")[0]
        template, operation = self.operation(method, path)
        status = response.status_code
        declared = operation["responses"]
        assert str(status) in declared, f"{method} {template} answered {status}, declared {sorted(declared)}"
        schema = declared[str(status)]["content"]["application/json"]["schema"]
        typed = schema.get("items", schema)  # an object answer is a component; a list, of components
        assert "$ref" in typed, f"{method} {template} {status} publishes no shape: {schema}"
        errors = sorted(validator(self.document, schema).iter_errors(response.json()), key=str)
        assert not errors, f"{method} {template} {status}: {[e.message for e in errors]}\n{response.text[:800]}"
        self.seen.add((method, template, status))
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def _app(tmp_path: Path, config: LoomConfig | None = None, environ: dict[str, str] | None = None) -> FastAPI:
    cfg = config if config is not None else LoomConfig.model_validate({"server": {"max_body_bytes": BODY_LIMIT}})
    return create_app(cfg, data_dir=tmp_path / "data", environ={"LOOMEM_AUTH_TOKEN": TOKEN, **(environ or {})})


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Checked]:
    """The server with the built-in hash embedder (no chat), behind a key."""
    with TestClient(_app(tmp_path), base_url="http://localhost") as client:
        document = client.get("/openapi.json", headers=AUTH).json()
        yield Checked(client, document)


def test_every_operation_answers_in_its_published_shape(api: Checked) -> None:
    """Each operation's success answer validates against its declared schema (the admin,
    encryption and consolidation answers were untyped dicts)."""
    stream = "shape-1"
    first = api.post(f"/v1/streams/{stream}/chunks", json={"content": "Alice lives in Berlin",
                                                            "expires_at": "2999-01-01T00:00:00Z"}).json()
    second = api.post(f"/v1/streams/{stream}/chunks", json={"content": "Alice moved to Lyon",
                                                             "supersedes": first["id"], "metadata": {"a": [1]}}).json()
    batch = api.post(f"/v1/streams/{stream}/chunks/batch", json={"chunks": [{"content": "one"}, {"content": "two"}]})
    assert batch.status_code == 201
    for chunk in (first, second, *batch.json()):
        assert re.search(ID_PATTERN, chunk["id"]), chunk["id"]  # ids match what the document says
    api.get(f"/v1/chunks/{first['id']}")
    api.get(f"/v1/chunks/{second['id']}/history")
    api.get("/v1/streams")
    page = api.get(f"/v1/streams/{stream}/chunks", params={"limit": 2}).json()
    api.get(f"/v1/streams/{stream}/chunks", params={"cursor": page["next_cursor"], "level": 0})
    for mode in ("hybrid", "bm25", "vector"):
        api.post("/v1/search", json={"query": "alice", "stream": stream, "mode": mode, "since": 0,
                                     "until": "9999-12-31T23:59:59Z", "levels": [0]})
    alice = api.post(f"/v1/streams/{stream}/entities", json={"type": "person", "name": "Alice", "aliases": ["Al"]})
    acme = api.post(f"/v1/streams/{stream}/entities", json={"type": "org", "name": "Acme"}).json()
    relation = api.post(f"/v1/streams/{stream}/relations", json={
        "subject": alice.json()["id"], "predicate": "works_at", "object": acme["id"],
        "valid_from": "2020-01-01", "source_chunks": [first["id"]]}).json()
    assert re.search(ID_PATTERN, acme["id"]) and re.search(ID_PATTERN, relation["id"])
    api.get(f"/v1/streams/{stream}/entities", params={"name": "al"})
    api.get(f"/v1/entities/{acme['id']}")
    api.get(f"/v1/streams/{stream}/relations", params={"at": "2021-06-01T00:00:00Z"})
    api.get(f"/v1/relations/{relation['id']}")
    api.delete(f"/v1/relations/{relation['id']}")
    api.delete(f"/v1/entities/{acme['id']}")
    api.delete(f"/v1/chunks/{batch.json()[0]['id']}")
    api.get("/v1/admin/consistency")
    api.post("/v1/admin/rebuild-index")
    api.post("/v1/admin/backups", json={})
    api.get("/v1/admin/backfill/encrypt-at-rest/status")
    api.get("/v1/encryption/status")
    api.get(f"/v1/streams/{stream}/consolidation")
    api.get("/v1/llm/usage")
    api.delete(f"/v1/streams/{stream}")
    api.client.get("/health")
    reached = {(method, path) for method, path, status in api.seen if status < 300}
    missing = operations(api.document) - reached - CHAT_ONLY - {("GET", "/health"), ("HEAD", "/health"),
                                                                ("POST", "/v1/admin/backfill/encrypt-at-rest")}
    assert not missing, f"operations never answered with success: {sorted(missing)}"


def test_health_and_a_running_backfill_answer_in_their_published_shape(tmp_path: Path) -> None:
    """The backfill needs a master key; /health is open. Both validate against the document."""
    import base64
    import os

    key = base64.b64encode(os.urandom(32)).decode()
    with TestClient(_app(tmp_path, environ={"LOOMEM_AT_REST_MASTER_KEY": key}), base_url="http://localhost") as client:
        api = Checked(client, client.get("/openapi.json", headers=AUTH).json())
        api.post("/v1/streams/s/chunks", json={"content": "sealed"})
        started = api.post("/v1/admin/backfill/encrypt-at-rest")
        assert started.status_code == 202 and isinstance(started.json()["started"], bool)
        client.app.state.encryption_backfill.join(30)  # type: ignore[attr-defined]
        assert api.get("/v1/admin/backfill/encrypt-at-rest/status").json()["state"] == "done"
        status = api.get("/v1/encryption/status").json()
        assert status["enabled"] is True and status["backfill"]["state"] == "done"
        health = client.get("/health")
        schema = api.document["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        validator(api.document, schema).validate(health.json())


def test_path_parameters_carry_the_patterns_the_server_applies(api: Checked) -> None:
    """``{stream}`` has the engine's stream-name pattern and length, record ids the ULID pattern."""
    found: dict[str, set[str]] = {}
    for operations_ in api.document["paths"].values():
        for operation in operations_.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    schema = parameter["schema"]
                    found.setdefault(parameter["name"], set()).add(schema.get("pattern", ""))
                    if parameter["name"] == "stream":
                        assert (schema["minLength"], schema["maxLength"]) == (1, 128)
    assert found == {"stream": {STREAM_PATTERN}, "chunk_id": {ID_PATTERN}, "entity_id": {ID_PATTERN},
                     "relation_id": {ID_PATTERN}}


@pytest.mark.parametrize("name", ["a", "A" * 128, "A" * 129, "agent-1.x:y@z_w", "-lead", ".x", "a b", "x\n",
                                  "notes\n\n", "é", "", "x/y", "0" * 64])
def test_the_stream_pattern_agrees_with_the_engine(name: str) -> None:
    """Checked as jsonschema checks it (Python ``re.search``): ``$`` there matched before a final
    newline, a name the engine refuses."""
    assert bool(re.search(STREAM_PATTERN, name)) is bool(STREAM_NAME.match(name))


def test_the_not_blank_pattern_is_python_s_whitespace() -> None:
    """What the schema calls blank is what ``str.strip`` removes, character by character."""
    pattern = re.compile(f"[{WHITESPACE_CLASS}]")
    for code in range(0x110000):
        char = chr(code)
        assert bool(pattern.fullmatch(char)) is char.isspace(), hex(code)


@pytest.mark.parametrize(
    ("path", "body", "accepted"),
    [
        ("/v1/streams/s/chunks", {"content": "x", "expires_at": "2999-01-01T00:00:00Z"}, True),
        ("/v1/streams/s/chunks", {"content": "x", "expires_at": "2999-01-01T00:00:00.5+02:00"}, True),
        ("/v1/streams/s/chunks", {"content": "x", "expires_at": "32472144000000"}, True),
        ("/v1/streams/s/chunks", {"content": "x", "expires_at": "soon"}, False),
        ("/v1/streams/s/chunks", {"content": "x", "expires_at": "1960-01-01T00:00:00Z"}, False),
        ("/v1/streams/s/chunks", {"content": "x", "expires_at": 10**15}, False),
        ("/v1/streams/s/chunks", {"content": "   "}, False),
        ("/v1/streams/s/chunks", {"content": "\x1c\u3000"}, False),
        ("/v1/streams/s/chunks", {"content": "\ufeff"}, True),
        ("/v1/streams/s/chunks", {"content": ""}, False),
        ("/v1/streams/s/chunks", {"content": "x", "supersedes": ""}, False),
        ("/v1/streams/s/entities", {"type": " ", "name": "n"}, False),
        ("/v1/streams/s/entities", {"type": "t", "name": "n", "aliases": ["\t"]}, False),
        ("/v1/search", {"query": "x", "stream": "x\n"}, False),
        ("/v1/search", {"query": "x", "streams": ["ok", "-bad"]}, False),
        ("/v1/search", {"query": "x", "stream": "s" * 129}, False),
        ("/v1/search", {"query": "x", "streams": ["s" * 128]}, True),
        ("/v1/search", {"query": "x", "since": "2026-01-31T12:00:00"}, True),
        ("/v1/search", {"query": "\n"}, False),
    ],
)
def test_the_schema_allows_what_the_server_takes_and_nothing_it_refuses(
    api: Checked, path: str, body: dict[str, Any], accepted: bool
) -> None:
    """The request-body schema's verdict is the server's: ISO times were outside the schema (it
    said integer), blank text and bad stream names inside it."""
    response = api.post(path, json=body)
    assert (response.status_code < 300) is accepted, response.text
    _template, operation = api.operation("POST", path)
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert validator(api.document, schema).is_valid(body) is accepted


def test_every_iso_time_the_schema_describes_is_read(api: Checked) -> None:
    """A client writing times the way the pattern says is never refused for the format."""
    schema = api.document["components"]["schemas"]["SearchIn"]["properties"]["since"]
    check = validator(api.document, schema)
    for text in ("1970-01-01", "2026-01-31T12", "2026-01-31T12:30", "2026-01-31 12:30:15,5", "9999-12-31T23:59:59Z",
                 "2026-01-31T12:00:00-0530", "2026-01-31T12:00:00.123456+14:00"):
        assert check.is_valid(text), text
        assert parse_time(text) >= 0, text


def _status_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"]["code"])


def test_each_declared_error_status_occurs_in_the_published_error_shape(api: Checked) -> None:
    """Every error status some operation declares is produced on one that declares it, with a body
    that validates (the checked client asserts both)."""
    chunk = api.post("/v1/streams/errs/chunks", json={"content": "x"}).json()
    api.post("/v1/streams/errs/chunks", json={"content": "y", "supersedes": chunk["id"]})
    assert _status_code(api.post("/v1/search", content=gzip.compress(b'{"query": "x"}'),
                                 headers={"Content-Type": "application/json"})) == (400, "USAGE_ERROR")
    assert _status_code(api.get("/v1/streams", headers={"Authorization": "Bearer wrong"})) == (401, "AUTH_INVALID")
    assert _status_code(api.get(f"/v1/chunks/{ULID_NOBODY_HAS}")) == (404, "NOT_FOUND")
    assert _status_code(api.post("/v1/streams/errs/chunks", json={"content": "z", "supersedes": chunk["id"]})) \
        == (409, "CONFLICT")
    assert _status_code(api.post("/v1/streams/errs/consolidate")) == (409, "LLM_CAPABILITY_MISSING")
    assert _status_code(api.post("/v1/admin/dream")) == (409, "LLM_CAPABILITY_MISSING")
    assert _status_code(api.post("/v1/admin/backfill/encrypt-at-rest")) == (409, "ENCRYPTION_KEY_MISSING")
    big = {"chunks": [{"content": "x" * 1000} for _ in range(BODY_LIMIT // 1000 + 1)]}
    assert _status_code(api.post("/v1/streams/errs/chunks/batch", json=big)) == (413, "PAYLOAD_TOO_LARGE")
    assert _status_code(api.get("/v1/streams/bad%20name!/chunks")) == (422, "VALIDATION_FAILED")
    assert _status_code(api.get(f"/v1/chunks/{'x' * 129}")) == (422, "VALIDATION_FAILED")
    assert _status_code(api.get("/v1/streams", headers={"X-Padding": "p" * 17_000})) == (431, "HEADERS_TOO_LARGE")
    engine, api.client.app.state.engine = api.client.app.state.engine, None  # type: ignore[attr-defined]
    try:  # as while the server starts or stops
        assert _status_code(api.get("/v1/streams")) == (503, "STORAGE_CLOSED")
    finally:
        api.client.app.state.engine = engine  # type: ignore[attr-defined]
    declared = {int(status) for _, operations_ in api.document["paths"].items() for op in operations_.values()
                for status in op["responses"] if int(status) >= 400}
    produced = {status for _, _, status in api.seen if status >= 400}
    assert declared - produced == {502}, "502 is produced in the consolidation test (it needs a chat backend)"


def test_methods_a_path_does_not_list_are_405_naming_those_it_does(api: Checked) -> None:
    """A 405 is not an operation's answer: it is what a method the document does not list gets,
    with ``Allow`` naming exactly the methods the document lists for that path."""
    error = api.document["components"]["schemas"]["ErrorOut"]
    for template, operations_ in api.document["paths"].items():
        path = (template.replace("{stream}", "s").replace("{chunk_id}", ULID_NOBODY_HAS)
                .replace("{entity_id}", ULID_NOBODY_HAS).replace("{relation_id}", ULID_NOBODY_HAS))
        listed = {method.upper() for method in operations_}
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - listed:
            response = api.client.request(method, path, headers=AUTH)
            assert response.status_code == 405, (method, template, response.status_code)
            assert set(response.headers["Allow"].split(", ")) == listed, (method, template)
            validator(api.document, error).validate(response.json())
            assert response.json()["error"]["code"] == "USAGE_ERROR"


def test_the_document_is_valid_json_schema_throughout(api: Checked) -> None:
    """Every schema in it compiles (a pattern Python cannot read would make every check pass)."""
    for name, schema in api.document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        for key, value in json.loads(json.dumps(schema)).get("properties", {}).items():
            if "pattern" in value:
                assert re.compile(value["pattern"]), (name, key)


def test_consolidation_answers_in_its_published_shape(tmp_path: Path) -> None:
    """With a chat backend (the OpenAI stand-in): consolidate, the dream pass, the status and the
    usage validate against the document, and a reply outside the contract is the declared 502."""
    standin = pytest.importorskip("loom_llm_openai.standin", reason="needs the llm_openai plugin installed")
    key = "sk-test-openapi-0123456789"
    with standin.OpenAIStandIn(api_key=key) as openai:
        config = LoomConfig.model_validate({"llm": {"backend": "openai", "base_url": openai.base_url,
                                                    "embedding_dimension": 64}})
        app = _app(tmp_path, config, environ={"OPENAI_API_KEY": key})
        with TestClient(app, base_url="http://localhost") as client:
            api = Checked(client, client.get("/openapi.json", headers=AUTH).json())
            api.post("/v1/streams/eve/chunks", json={"content": "Eve prefers tea to coffee."})
            openai.replies.append(json.dumps({"memories": [{"content": "Eve prefers tea.", "sources": ["S1"],
                                                            "replaces": None}], "entities": [], "relations": []}))
            report = api.post("/v1/streams/eve/consolidate").json()
            assert report["raw_chunks"] == 1 and len(report["memories"]) == 1
            assert api.get("/v1/streams/eve/consolidation").json()["through"] == report["through"]
            api.post("/v1/streams/eve/chunks", json={"content": "Eve moved to Oslo."})
            openai.replies.append("not the consolidation contract")
            bad = api.post("/v1/streams/eve/consolidate")
            assert _status_code(bad) == (502, "LLM_BAD_RESPONSE")
            openai.replies.append("still not the contract")
            dream = api.post("/v1/admin/dream").json()
            assert dream["failures"] == [{"stream": "eve", "code": "LLM_BAD_RESPONSE"}]
            usage = api.get("/v1/llm/usage").json()
            assert usage["chat"] is True and usage["gate"]["calls"] >= 2
    assert {(m, p) for m, p, status in api.seen if status < 300} >= CHAT_ONLY
