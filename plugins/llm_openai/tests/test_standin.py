"""The stand-in speaks OpenAI's HTTP interface: paths, auth, validation, shapes, scripted failures."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from loom_llm_openai.standin import ChatReply, OpenAIStandIn

KEY = "sk-standin-test-5f0c9d"


@pytest.fixture
def api() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key=KEY) as server:
        yield server


def post(api: OpenAIStandIn, path: str, body: Any, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    with httpx.Client(trust_env=False) as client:
        return client.post(f"{api.base_url}{path}", json=body, headers=headers)


def test_serves_on_loopback_and_stops() -> None:
    with OpenAIStandIn(api_key=KEY) as server:
        url = server.base_url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    with pytest.raises(httpx.TransportError), httpx.Client(trust_env=False) as client:
        client.post(f"{url}/embeddings", json={})
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_embeddings_shape_determinism_and_dimensions(api: OpenAIStandIn) -> None:
    body = {"model": "text-embedding-3-small", "input": ["alpha", "beta"], "dimensions": 32}
    first, again = post(api, "/embeddings", body).json(), post(api, "/embeddings", body).json()
    assert first["object"] == "list" and first["model"] == "text-embedding-3-small"
    assert [row["index"] for row in first["data"]] == [0, 1]
    assert all(row["object"] == "embedding" and len(row["embedding"]) == 32 for row in first["data"])
    assert first["data"] == again["data"]
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]
    assert abs(float(np.linalg.norm(first["data"][0]["embedding"])) - 1.0) < 1e-5
    assert first["usage"]["prompt_tokens"] == first["usage"]["total_tokens"] > 0
    assert first["data"][0]["embedding"] == api.embedding("alpha", dimensions=32)
    native = post(api, "/embeddings", {"model": "text-embedding-3-small", "input": "alpha"}).json()
    assert len(native["data"][0]["embedding"]) == 1536


def test_embeddings_base64_encoding(api: OpenAIStandIn) -> None:
    body = {"model": "text-embedding-3-small", "input": ["alpha"], "dimensions": 8, "encoding_format": "base64"}
    encoded = post(api, "/embeddings", body).json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert np.allclose(decoded, api.embedding("alpha", dimensions=8))


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ["x"]}, 400, "model"),
        ({"model": "text-embedding-3-small", "input": []}, 400, "input"),
        ({"model": "text-embedding-3-small", "input": [""]}, 400, "input"),
        ({"model": "text-embedding-3-small", "input": ["x"] * 2049}, 400, "input"),
        ({"model": "text-embedding-3-small", "input": ["x"], "dimensions": 4096}, 400, "dimensions"),
        ({"model": "text-embedding-ada-002", "input": ["x"], "dimensions": 64}, 400, "dimensions"),
        ({"model": "no-such-model", "input": ["x"]}, 404, None),
    ],
)
def test_embeddings_validation(api: OpenAIStandIn, body: dict[str, Any], status: int, param: str | None) -> None:
    answer = post(api, "/embeddings", body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param


def test_auth_missing_and_wrong_key(api: OpenAIStandIn) -> None:
    body = {"model": "text-embedding-3-small", "input": ["x"]}
    missing = post(api, "/embeddings", body, key=None)
    wrong = post(api, "/embeddings", body, key="sk-wrong-key-123")
    assert missing.status_code == wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-key-123" not in wrong.text
    assert [r.authorized for r in api.requests] == [False, False]
    assert all("authorization" not in r.headers for r in api.requests)


def test_unknown_path_and_bad_json(api: OpenAIStandIn) -> None:
    assert post(api, "/nothing", {}).status_code == 404
    with httpx.Client(trust_env=False) as client:
        bad = client.post(f"{api.base_url}/embeddings", content=b"{nope", headers={"Authorization": f"Bearer {KEY}"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_chat_scripted_replies_then_responder_then_default(api: OpenAIStandIn) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    api.replies.extend(["first", ChatReply(content="second", finish_reason="stop")])
    answers = [post(api, "/chat/completions", body).json() for _ in range(2)]
    api.responder = lambda request: f"echo {request['messages'][-1]['content']}"
    answers.append(post(api, "/chat/completions", body).json())
    api.responder = None
    answers.append(post(api, "/chat/completions", body).json())
    contents = [a["choices"][0]["message"]["content"] for a in answers]
    assert contents == ["first", "second", "echo hi", "Hello from the OpenAI stand-in."]
    first = answers[0]
    assert first["object"] == "chat.completion" and first["choices"][0]["finish_reason"] == "stop"
    assert first["usage"]["total_tokens"] == first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"]
    assert api.requests[0].texts == ["hi"]


def test_chat_refusal_and_length_limit(api: OpenAIStandIn) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    api.replies.append(ChatReply(refusal="I can't help with that."))
    refused = post(api, "/chat/completions", body).json()["choices"][0]["message"]
    assert refused["content"] is None and refused["refusal"] == "I can't help with that."
    api.replies.append("word " * 100)
    cut = post(api, "/chat/completions", {**body, "max_completion_tokens": 5}).json()
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 5


def test_chat_json_schema_default_and_strict_checks(api: OpenAIStandIn) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "response_format": fmt}
    answer = post(api, "/chat/completions", body).json()
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"answer": "stand-in"}
    loose = {**schema, "additionalProperties": True}
    refused = post(api, "/chat/completions", {**body, "response_format": {
        "type": "json_schema", "json_schema": {"name": "reply", "schema": loose, "strict": True}}})
    assert refused.status_code == 400 and "additionalProperties" in refused.json()["error"]["message"]
    bad_name = post(api, "/chat/completions", {**body, "response_format": {
        "type": "json_schema", "json_schema": {"name": "no spaces", "schema": schema}}})
    assert bad_name.status_code == 400


def test_injected_failures_in_order_and_by_path(api: OpenAIStandIn) -> None:
    body = {"model": "text-embedding-3-small", "input": ["x"]}
    api.fail_next(status=429, count=2, retry_after="3")
    api.fail_next(status=500, path="/v1/chat/completions")
    api.fail_next(status=200, body=b"not json")
    limited = post(api, "/embeddings", body)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert post(api, "/embeddings", body).status_code == 429
    garbled = post(api, "/embeddings", body)
    assert garbled.status_code == 200 and garbled.content == b"not json"
    assert post(api, "/embeddings", body).status_code == 200
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert post(api, "/chat/completions", chat).status_code == 500
    assert [r.status for r in api.requests] == [429, 429, 200, 200, 500]


def test_dropped_connection(api: OpenAIStandIn) -> None:
    api.drop_next()
    with pytest.raises(httpx.TransportError):
        post(api, "/embeddings", {"model": "text-embedding-3-small", "input": ["x"]})
    assert post(api, "/embeddings", {"model": "text-embedding-3-small", "input": ["x"]}).status_code == 200
    assert [r.status for r in api.requests] == [0, 200]
    api.clear_requests()
    assert api.requests == []
