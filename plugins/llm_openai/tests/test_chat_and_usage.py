"""What is sent (dimensions, batches, response_format) and how usage and cost add up."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from loom_llm_openai.backend import OpenAILLM
from loom_llm_openai.pricing import PRICES, Ledger
from loom_llm_openai.standin import OpenAIStandIn, estimate_tokens

from loom_core.contracts.llm import ChatMessage
from loom_core.errors import ErrorCode, LoomError

Build = Callable[..., OpenAILLM]
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello")]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}, "note": {"type": "string"}},
    "required": ["facts"],
}


def test_embeddings_request_and_vectors(api: OpenAIStandIn, build: Build) -> None:
    backend = build(embedding_dimension=32)
    out = backend.embed(["alpha", "beta"])
    assert out.dtype == np.float32 and out.shape == (2, 32)
    assert np.allclose(out[0], api.embedding("alpha", dimensions=32), atol=1e-6)
    (request,) = api.requests
    assert request.path == "/v1/embeddings" and request.authorized
    assert request.body == {"model": "text-embedding-3-small", "input": ["alpha", "beta"],
                            "encoding_format": "float", "dimensions": 32}


def test_ada_gets_no_dimensions(api: OpenAIStandIn, build: Build) -> None:
    backend = build(embedding_model="text-embedding-ada-002", embedding_dimension=1536)
    assert backend.embed(["x"]).shape == (1, 1536)
    assert "dimensions" not in api.requests[0].body


def test_empty_input_and_blank_texts_send_nothing(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    assert backend.embed([]).shape == (0, backend.embedding_dimension)
    blank = backend.embed(["", "  \n"])
    assert np.allclose(np.linalg.norm(blank, axis=1), 1.0) and np.allclose(blank[0], blank[1])
    assert api.requests == []
    mixed = backend.embed(["", "real text"])
    assert api.requests[0].texts == ["real text"] and np.allclose(mixed[0], blank[0])


def test_a_text_longer_than_the_model_takes_is_embedded_by_its_start(api: OpenAIStandIn, build: Build) -> None:
    """A 900 KB memory went to the API whole, which refuses inputs over 8,192 tokens, so the write
    failed; it is cut at max_input_bytes (on a character boundary) and the write succeeds."""
    import httpx

    backend = build(embedding_dimension=32, max_input_bytes=2000)
    long = "Grey herons nest in colonies. " * 40_000 + "\u6f22" * 10
    out = backend.embed([long, "short"])
    sent = api.requests[-1].texts
    assert len(sent[0].encode()) <= 2000 and long.startswith(sent[0]) and sent[1] == "short"
    assert np.allclose(out[0], api.embedding(sent[0], dimensions=32), atol=1e-6)
    cjk = backend.embed(["\u6f22" * 1000])  # 3 bytes a character: cut between characters, never inside one
    assert cjk.shape == (1, 32) and api.requests[-1].texts == ["\u6f22" * 666]
    refused = httpx.post(f"{api.base_url}/embeddings", headers={"Authorization": f"Bearer {api.api_key}"},
                         json={"model": "text-embedding-3-small", "input": [long]})
    assert refused.status_code == 400 and "maximum context length is 8192 tokens" in refused.text


def test_large_inputs_are_batched_in_order(api: OpenAIStandIn, build: Build) -> None:
    backend = build(embedding_batch_size=3)
    texts = [f"text {i}" for i in range(8)]
    out = backend.embed(texts)
    assert [len(r.body["input"]) for r in api.requests] == [3, 3, 2]
    assert np.allclose(out, backend.embed(texts[::-1])[::-1], atol=1e-6)
    assert backend.usage().requests == 6


def test_chat_request_shape_and_max_tokens(api: OpenAIStandIn, build: Build) -> None:
    backend = build(model="gpt-4.1-mini")
    api.replies.append("hi there")
    result = backend.complete(HELLO, max_tokens=50)
    assert result.text == "hi there" and result.data is None
    body = api.requests[0].body
    assert body == {"model": "gpt-4.1-mini", "max_completion_tokens": 50,
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]}


def test_json_schema_is_sent_strict_when_it_can_be(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    api.replies.append('{"answer": "yes"}')
    assert backend.complete(HELLO, json_schema=schema).data == {"answer": "yes"}
    sent = api.requests[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's schema is left alone


def test_optional_properties_go_non_strict_and_are_validated_here(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    api.replies.append('{"facts": ["a", "b"]}')
    assert backend.complete(HELLO, json_schema=SCHEMA).data == {"facts": ["a", "b"]}
    assert api.requests[0].body["response_format"]["json_schema"]["strict"] is False


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("not json at all", "not valid JSON"),
        ('{"facts": "one"}', "$.facts"),
        ('{"note": "no facts"}', "required"),
        ('{"facts": [1]}', "$.facts[0]"),
    ],
)
def test_schema_violations_are_bad_response(api: OpenAIStandIn, build: Build, reply: str, fragment: str) -> None:
    backend = build()
    api.replies.append(reply)
    with pytest.raises(LoomError) as info:
        backend.complete(HELLO, json_schema=SCHEMA)
    assert info.value.code is ErrorCode.LLM_BAD_RESPONSE and fragment in info.value.message
    assert "no facts" not in info.value.message and "one" not in info.value.message.split(":")[-1]


def test_cut_off_json_is_bad_response(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    api.replies.append(json.dumps({"facts": ["x" * 400]}))
    with pytest.raises(LoomError) as info:
        backend.complete(HELLO, json_schema=SCHEMA, max_tokens=10)
    assert info.value.code is ErrorCode.LLM_BAD_RESPONSE and "token limit" in info.value.message


def test_invalid_schema_is_the_callers_bug(api: OpenAIStandIn, build: Build) -> None:
    with pytest.raises(LoomError) as info:
        build().complete(HELLO, json_schema={"type": "no-such-type"})
    assert info.value.code is ErrorCode.INTERNAL_ERROR and api.requests == []


def test_usage_and_cost_totals(api: OpenAIStandIn, build: Build) -> None:
    backend = build(model="gpt-4o-mini")
    backend.embed(["one two three", "four"])
    embed_tokens = estimate_tokens("one two three") + estimate_tokens("four")
    api.replies.append("reply text")
    result = backend.complete(HELLO)
    usage = backend.usage()
    assert usage.embedding_tokens == embed_tokens
    assert (usage.prompt_tokens, usage.completion_tokens) == (result.prompt_tokens, result.completion_tokens)
    assert usage.requests == 2
    chat = PRICES["gpt-4o-mini"]
    expected_chat = (result.prompt_tokens * chat.input + result.completion_tokens * chat.output) / 1e6
    expected_embed = embed_tokens * PRICES["text-embedding-3-small"].input / 1e6
    assert usage.by_model == pytest.approx({"gpt-4o-mini": expected_chat, "text-embedding-3-small": expected_embed})
    assert usage.cost_usd == pytest.approx(expected_chat + expected_embed)
    usage.by_model.clear()
    assert backend.usage().by_model, "usage() must return a snapshot"


def test_retries_count_as_requests(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    api.fail_next(status=500, count=2)
    backend.embed(["x"])
    assert backend.usage().requests == 3


def test_unknown_model_costs_zero_and_says_so(
    api: OpenAIStandIn, build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    backend = build(model="my-finetune")
    backend.complete(HELLO)
    backend.complete(HELLO)
    usage = backend.usage()
    assert usage.by_model["my-finetune"] == 0.0 and usage.prompt_tokens > 0
    assert sum("no price known for model 'my-finetune'" in r.getMessage() for r in caplog.records) == 1


def test_price_overrides_and_snapshot_names() -> None:
    ledger = Ledger({"my-finetune": PRICES["gpt-4o"]})
    assert ledger.add("my-finetune", prompt=1_000_000) == pytest.approx(2.50)
    assert ledger.add("gpt-4o-mini-2024-07-18", prompt=1_000_000, completion=1_000_000) == pytest.approx(0.75)
    assert ledger.snapshot().by_model == pytest.approx({"my-finetune": 2.50, "gpt-4o-mini-2024-07-18": 0.75})
