"""MCP on /mcp over real HTTP, through the mcp SDK's own streamable-HTTP client, against `loom serve`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tests.server.conftest import ServerProcess

WRONG = "wrong-" + "beef01" * 10
SECRET_TEXT = "the-pin-of-the-vault-is-" + "4815162342"  # content that must never come back in an error


def with_client(base_url: str, headers: Mapping[str, str], scenario: Callable[[Client], Awaitable[Any]]) -> Any:
    """Run ``scenario`` with an SDK client connected to ``base_url``/mcp."""

    async def main() -> Any:
        async with httpx2.AsyncClient(headers=dict(headers), timeout=30) as http, \
                Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client:
            return await scenario(client)

    return anyio.run(main)


def keyed(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(result: CallToolResult) -> dict[str, Any]:
    """The Loom error body a failed tool call carries."""
    assert result.is_error is True
    block = result.content[0]
    assert isinstance(block, TextContent)
    error: dict[str, Any] = json.loads(block.text)["error"]
    return error


def audit_events(server: ServerProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    return [line["fields"] for line in lines if line.get("target") == "audit"]


def test_tools_remember_search_get_history_forget(api_server: ServerProcess, token: str) -> None:
    async def scenario(client: Client) -> dict[str, Any]:
        names = {tool.name for tool in (await client.list_tools()).tools}
        first = await client.call_tool("remember", {"stream": "mcp-a", "content": "Alice lives in Berlin"})
        assert first.is_error is False, first.content
        chunk = first.structured_content
        assert chunk is not None and chunk["stream"] == "mcp-a"
        newer = await client.call_tool("remember", {"stream": "mcp-a", "content": "Alice moved to Lisbon",
                                                    "supersedes": chunk["id"], "level": 1})
        assert newer.structured_content is not None
        found = await client.call_tool("search", {"query": "where does alice live", "stream": "mcp-a", "k": 5,
                                                  "mode": "bm25", "include_superseded": True})
        got = await client.call_tool("get_chunk", {"chunk_id": chunk["id"]})
        history = await client.call_tool("chunk_history", {"chunk_id": newer.structured_content["id"]})
        streams = await client.call_tool("list_streams", {})
        forgotten = await client.call_tool("forget", {"chunk_id": chunk["id"]})
        gone = await client.call_tool("get_chunk", {"chunk_id": chunk["id"]})
        return {"names": names, "chunk": chunk, "newer": newer.structured_content, "found": found,
                "got": got, "history": history, "streams": streams, "forgotten": forgotten, "gone": gone}

    out = with_client(api_server.base_url, keyed(token), scenario)
    assert {"remember", "remember_many", "search", "get_chunk", "chunk_history", "forget", "list_streams",
            "list_chunks", "add_entity", "list_entities", "get_entity", "forget_entity", "add_relation",
            "list_relations", "forget_relation"} <= out["names"]
    hits = out["found"].structured_content["results"]
    assert {hit["chunk"]["id"] for hit in hits} == {out["chunk"]["id"], out["newer"]["id"]}
    assert out["got"].structured_content["superseded_by"] == out["newer"]["id"]
    assert [c["id"] for c in out["history"].structured_content["chunks"]] == [out["chunk"]["id"], out["newer"]["id"]]
    assert "mcp-a" in {s["name"] for s in out["streams"].structured_content["streams"]}
    assert out["forgotten"].structured_content == {"deleted": out["chunk"]["id"], "count": 1}
    assert error_of(out["gone"])["code"] == "NOT_FOUND"
    # the same engine as REST: the chunk the tool wrote reads back over the REST API
    rest = httpx.get(f"{api_server.base_url}/v1/chunks/{out['newer']['id']}", headers=keyed(token))
    assert rest.status_code == 200 and rest.json()["content"] == "Alice moved to Lisbon"
    deletes = [e for e in audit_events(api_server) if e["action"] == "chunk.delete"]
    assert any(e["resource"] == out["chunk"]["id"] and e["outcome"] == "success" and e["actor"] == "api-key"
               for e in deletes)


def test_graph_tools_mirror_the_rest_api(api_server: ServerProcess, token: str) -> None:
    async def scenario(client: Client) -> dict[str, Any]:
        alice = (await client.call_tool("add_entity", {"stream": "mcp-g", "type": "person", "name": "Alice"}))
        berlin = (await client.call_tool("add_entity", {"stream": "mcp-g", "type": "city", "name": "Berlin",
                                                        "aliases": ["BER"]}))
        assert alice.structured_content is not None and berlin.structured_content is not None
        a, b = alice.structured_content["id"], berlin.structured_content["id"]
        relation = await client.call_tool("add_relation", {"stream": "mcp-g", "subject": a, "predicate": "lives_in",
                                                           "object": b, "valid_from": "2020-01-01T00:00:00Z"})
        found = await client.call_tool("list_entities", {"stream": "mcp-g", "name": "ber"})
        relations = await client.call_tool("list_relations", {"stream": "mcp-g", "entity": a})
        dropped = await client.call_tool("forget_entity", {"entity_id": a})
        after = await client.call_tool("list_relations", {"stream": "mcp-g"})
        return {"relation": relation, "found": found, "relations": relations, "dropped": dropped, "after": after,
                "b": b}

    out = with_client(api_server.base_url, keyed(token), scenario)
    assert out["relation"].structured_content["valid_from"] == 1577836800000
    assert [e["id"] for e in out["found"].structured_content["entities"]] == [out["b"]]
    assert len(out["relations"].structured_content["relations"]) == 1
    assert out["dropped"].is_error is False
    assert out["after"].structured_content["relations"] == []
    assert any(e["action"] == "entity.delete" for e in audit_events(api_server))


def test_tool_errors_carry_the_loom_code_and_never_the_input(api_server: ServerProcess, token: str) -> None:
    async def scenario(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("remember", {"stream": "mcp-e", "content": SECRET_TEXT, "level": True}),
            await client.call_tool("remember", {"stream": "mcp-e", "content": SECRET_TEXT, "levle": 1}),
            await client.call_tool("remember", {"stream": "mcp-e", "content": "   "}),
            await client.call_tool("search", {"query": SECRET_TEXT, "k": 0}),
            await client.call_tool("remember", {"stream": "bad stream!", "content": SECRET_TEXT}),
            await client.call_tool("remember", {"stream": "mcp-e", "content": "x", "supersedes": "no-such-id"}),
            await client.call_tool("no_such_tool", {}),
        ]

    results = with_client(api_server.base_url, keyed(token), scenario)
    codes = [error_of(r)["code"] for r in results]
    assert codes == ["VALIDATION_FAILED", "VALIDATION_FAILED", "VALIDATION_FAILED", "VALIDATION_FAILED",
                     "VALIDATION_FAILED", "NOT_FOUND", "NOT_FOUND"]
    assert error_of(results[0])["details"]["errors"][0]["field"] == "level"
    assert error_of(results[1])["details"]["errors"][0] == {
        "field": "levle", "message": "Extra inputs are not permitted", "type": "extra_forbidden"}
    for result in results:
        text = json.dumps([block.model_dump() for block in result.content])
        assert SECRET_TEXT not in text
        assert "Traceback" not in text
    assert SECRET_TEXT not in api_server.logs()


def test_mcp_needs_the_key_like_every_route(api_server: ServerProcess) -> None:
    """No header: 401 AUTH_REQUIRED with a Bearer challenge; a wrong key: AUTH_INVALID; both audited."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    anonymous = httpx.post(f"{api_server.base_url}/mcp", json=body, headers=headers)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AUTH_REQUIRED"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(f"{api_server.base_url}/mcp", json=body, headers={**headers, **keyed(WRONG)})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "AUTH_INVALID"
    with pytest.raises(BaseException):  # noqa: B017 - the SDK's own error type for a refused connection
        with_client(api_server.base_url, keyed(WRONG), lambda client: client.list_tools())
    denials = [e for e in audit_events(api_server) if e["action"] == "auth.failure" and e["resource"] == "/mcp"]
    assert {"missing", "invalid"} <= {e["details"]["reason"] for e in denials}
    assert WRONG not in api_server.logs()


def test_mcp_bodies_are_held_to_the_body_limit(api_server: ServerProcess, token: str) -> None:
    huge = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": "' + b"x" * 100_000 + b'"}}'
    response = httpx.post(f"{api_server.base_url}/mcp", content=huge, timeout=60,
                          headers={**keyed(token), "Content-Type": "application/json",
                                   "Accept": "application/json, text/event-stream"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_passthrough_serves_mcp_locally_and_refuses_other_origins(spawn: Callable[..., ServerProcess]) -> None:
    server = spawn(token=None).start()

    async def scenario(client: Client) -> CallToolResult:
        return await client.call_tool("remember", {"stream": "local", "content": "no key here"})

    result = with_client(server.base_url, {}, scenario)
    assert result.is_error is False
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    refused = httpx.post(f"{server.base_url}/mcp", json=body,
                         headers={"Origin": "https://evil.example", "Accept": "application/json, text/event-stream"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "AUTH_REQUIRED"
    reasons = [e["details"]["reason"] for e in audit_events(server) if e["action"] == "auth.failure"]
    assert "passthrough_cross_origin" in reasons


def test_only_post_is_served_on_mcp(api_server: ServerProcess, token: str) -> None:
    """Stateless: no server-to-client stream a GET would hold open forever, no session to DELETE."""
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{api_server.base_url}/mcp", timeout=10,
                                 headers={**keyed(token), "Accept": "text/event-stream"})
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
        assert response.json()["error"]["code"] == "USAGE_ERROR"
