"""Each provider failure maps to its code; retries are bounded and honour Retry-After (counted, not timed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from loom_llm_openai.backend import OpenAILLM
from loom_llm_openai.options import parse
from loom_llm_openai.standin import ChatReply, OpenAIStandIn

from loom_core.contracts.llm import ChatMessage
from loom_core.errors import ErrorCode, LoomError

Build = Callable[..., OpenAILLM]
HELLO = [ChatMessage("user", "hello")]


def code_of(call: object) -> LoomError:
    with pytest.raises(LoomError) as info:
        call()  # type: ignore[operator]
    return info.value


def test_missing_key_refuses_to_build_without_a_request(api: OpenAIStandIn, build: Build) -> None:
    for environ in ({}, {"OPENAI_API_KEY": "   "}):
        error = code_of(lambda env=environ: build(environ=env))
        assert error.code is ErrorCode.LLM_AUTH_MISSING and "OPENAI_API_KEY" in error.message
    error = code_of(lambda: build(environ={"OPENAI_API_KEY": "x"}, api_key_env="TEAM_OPENAI_KEY"))
    assert error.code is ErrorCode.LLM_AUTH_MISSING and "TEAM_OPENAI_KEY" in error.message
    assert api.requests == []


def test_key_with_spaces_is_refused(build: Build) -> None:
    error = code_of(lambda: build(environ={"OPENAI_API_KEY": "sk-a b"}))
    assert error.code is ErrorCode.LLM_AUTH_INVALID and "sk-a b" not in str(error)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_auth_invalid_without_retry(api: OpenAIStandIn, build: Build, status: int) -> None:
    backend = build()
    api.fail_next(status=status, count=5)
    assert code_of(lambda: backend.embed(["x"])).code is ErrorCode.LLM_AUTH_INVALID
    assert len(api.requests) == 1


def test_wrong_key_against_the_real_check(api: OpenAIStandIn, build: Build) -> None:
    backend = build(environ={"OPENAI_API_KEY": "sk-not-the-right-one-1234"})
    assert code_of(lambda: backend.complete(HELLO)).code is ErrorCode.LLM_AUTH_INVALID
    assert [r.authorized for r in api.requests] == [False]


def test_429_retried_then_succeeds(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    api.fail_next(status=429, count=2, retry_after="0.01")
    assert backend.embed(["x"]).shape == (1, backend.embedding_dimension)
    assert [r.status for r in api.requests] == [429, 429, 200]


def test_429_every_time_is_rate_limited_after_bounded_attempts(api: OpenAIStandIn, build: Build) -> None:
    backend = build(max_retries=2)
    api.fail_next(status=429, count=10, retry_after="0")
    error = code_of(lambda: backend.embed(["x"]))
    assert error.code is ErrorCode.LLM_RATE_LIMITED and "3 attempts" in error.message
    assert len(api.requests) == 3


def test_retry_after_beyond_the_bound_is_not_hammered(api: OpenAIStandIn, build: Build) -> None:
    """A Retry-After longer than max_backoff_seconds gives up at once instead of retrying early."""
    backend = build(max_backoff_seconds=0.05)
    api.fail_next(status=429, count=3, retry_after="30")
    error = code_of(lambda: backend.embed(["x"]))
    assert error.code is ErrorCode.LLM_RATE_LIMITED and "30s" in error.message
    assert len(api.requests) == 1


def test_retry_after_is_the_wait_requested(api: OpenAIStandIn) -> None:
    """The waits tenacity asks for are exactly the Retry-After values (recorded, no clock involved)."""
    waits: list[float] = []
    settings = parse({"base_url": api.base_url, "embedding_dimension": 64, "max_backoff_seconds": 60})
    backend = OpenAILLM(settings, api.api_key, sleep=waits.append)
    try:
        api.fail_next(status=429, retry_after="7")
        api.fail_next(status=503, retry_after="2.5")
        backend.embed(["x"])
    finally:
        backend.close()
    assert waits == [7.0, 2.5]
    assert [r.status for r in api.requests] == [429, 503, 200]


def test_insufficient_quota_is_not_retried(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    body = b'{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", ' \
           b'"param": null, "code": "insufficient_quota"}}'
    api.fail_next(status=429, count=3, body=body)
    error = code_of(lambda: backend.embed(["x"]))
    assert error.code is ErrorCode.LLM_RATE_LIMITED and "quota" in error.message
    assert len(api.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_retried_then_unavailable(api: OpenAIStandIn, build: Build, status: int) -> None:
    backend = build(max_retries=2)
    api.fail_next(status=status, count=10)
    assert code_of(lambda: backend.complete(HELLO)).code is ErrorCode.LLM_UNAVAILABLE
    assert len(api.requests) == 3


def test_server_error_then_recovery(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    api.fail_next(status=500)
    assert backend.complete(HELLO).text
    assert [r.status for r in api.requests] == [500, 200]


def test_dropped_connections_retried_then_unavailable(api: OpenAIStandIn, build: Build) -> None:
    backend = build(max_retries=1)
    api.drop_next(count=5)
    error = code_of(lambda: backend.embed(["x"]))
    assert error.code is ErrorCode.LLM_UNAVAILABLE and "connection" in error.message
    assert len(api.requests) == 2


def test_nothing_listening_is_unavailable(build: Build) -> None:
    backend = build(base_url="http://127.0.0.1:9/v1", max_retries=1, timeout_seconds=2)
    assert code_of(lambda: backend.embed(["x"])).code is ErrorCode.LLM_UNAVAILABLE


def test_400_is_bad_response_with_the_providers_message_not_the_content(api: OpenAIStandIn, build: Build) -> None:
    backend = build(model="gpt-4o-mini")
    api.fail_next(status=400, body=b'{"error": {"message": "This model\'s maximum context length is 128000 tokens.",'
                                   b' "type": "invalid_request_error", "param": "messages", "code": null}}')
    error = code_of(lambda: backend.complete([ChatMessage("user", "my private diary entry")]))
    assert error.code is ErrorCode.LLM_BAD_RESPONSE and "maximum context length" in error.message
    assert "private diary" not in str(error) and "private diary" not in repr(error.details)
    assert len(api.requests) == 1


def test_unknown_embedding_model_is_bad_response(api: OpenAIStandIn, build: Build) -> None:
    backend = build(embedding_model="text-embedding-9", embedding_dimension=64)
    error = code_of(lambda: backend.embed(["x"]))
    assert error.code is ErrorCode.LLM_BAD_RESPONSE and "does not exist" in error.message


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"object": "list"}',
        b'{"object": "list", "data": [{"index": 0, "embedding": [1.0, 2.0]}]}',
        b'{"object": "list", "data": [{"index": 3, "embedding": []}]}',
        b'{"object": "list", "data": [{"index": 0, "embedding": ["a"]}]}',
    ],
)
def test_malformed_embedding_answers_are_bad_response(api: OpenAIStandIn, build: Build, body: bytes) -> None:
    backend = build()
    api.fail_next(status=200, body=body)
    assert code_of(lambda: backend.embed(["x"])).code is ErrorCode.LLM_BAD_RESPONSE
    assert len(api.requests) == 1


def test_zero_vector_is_bad_response(api: OpenAIStandIn, build: Build) -> None:
    backend = build(embedding_dimension=8)
    api.fail_next(status=200, body=b'{"object": "list", "data": [{"index": 0, "embedding": [0,0,0,0,0,0,0,0]}]}')
    assert code_of(lambda: backend.embed(["x"])).code is ErrorCode.LLM_BAD_RESPONSE


def test_dimension_mismatch_is_bad_response(api: OpenAIStandIn, build: Build) -> None:
    """A model answering with another length than configured (ada-002 ignores dimensions) is refused."""
    backend = build(embedding_model="text-embedding-ada-002", embedding_dimension=1536)
    api.embedding_models["text-embedding-ada-002"] = 768  # a provider serving another size than promised
    error = code_of(lambda: backend.embed(["x"]))
    assert error.code is ErrorCode.LLM_BAD_RESPONSE and "768 values, expected 1536" in error.message


def test_chat_refusal_filter_and_malformed_answers(api: OpenAIStandIn, build: Build) -> None:
    backend = build()
    api.replies.append(ChatReply(refusal="I can't help with that."))
    assert "refused" in code_of(lambda: backend.complete(HELLO)).message
    api.replies.append(ChatReply(content="", finish_reason="content_filter"))
    assert code_of(lambda: backend.complete(HELLO)).code is ErrorCode.LLM_BAD_RESPONSE
    api.fail_next(status=200, body=b'{"object": "chat.completion", "choices": []}')
    assert code_of(lambda: backend.complete(HELLO)).code is ErrorCode.LLM_BAD_RESPONSE
    api.replies.append(ChatReply(content="", finish_reason="length"))
    assert "token limit" in code_of(lambda: backend.complete(HELLO, max_tokens=5)).message


def test_refused_and_filtered_replies_are_billed_all_the_same(api: OpenAIStandIn, build: Build) -> None:
    """The provider charges for a refusal or a filtered reply; leaving them out let spend pass the
    daily cost alert unseen."""
    backend = build()
    api.replies.append(ChatReply(refusal="I can't help with that.", prompt_tokens=100_000, completion_tokens=10))
    api.replies.append(ChatReply(content="", finish_reason="content_filter", prompt_tokens=50_000,
                                 completion_tokens=0))
    for _ in range(2):
        code_of(lambda: backend.complete(HELLO))
    usage = backend.usage()
    assert usage.prompt_tokens == 150_000 and usage.completion_tokens >= 10
    assert usage.cost_usd > 0


def test_closed_backend_refuses(build: Build) -> None:
    backend = build()
    backend.close()
    assert code_of(lambda: backend.embed(["x"])).code is ErrorCode.LLM_UNAVAILABLE
