"""The API key never reaches reprs, errors (their whole chain), logs (httpx's included) or output."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from loom_llm_openai.backend import OpenAILLM
from loom_llm_openai.standin import OpenAIStandIn

from loom_core.contracts.llm import ChatMessage
from loom_core.errors import LoomError

Build = Callable[..., OpenAILLM]


def failures(backend: OpenAILLM, api: OpenAIStandIn) -> list[BaseException]:
    """Drive every failure path once; returns the errors raised."""
    errors: list[BaseException] = []
    scripted: list[Callable[[], None]] = [
        lambda: api.fail_next(status=401),
        lambda: api.fail_next(status=429, count=10, retry_after="0"),
        lambda: api.fail_next(status=500, count=10),
        lambda: api.drop_next(count=10),
        lambda: api.fail_next(status=400),
        lambda: api.fail_next(status=200, body=b"garbage"),
    ]
    for script in scripted:
        script()
        try:
            backend.complete([ChatMessage("user", "hi")])
        except LoomError as exc:
            errors.append(exc)
    return errors


def test_key_absent_everywhere(api: OpenAIStandIn, build: Build, api_key: str, secret_leak_check: Any,
                               caplog: pytest.LogCaptureFixture) -> None:
    for name in ("httpx", "httpcore", "loom_llm_openai"):
        caplog.set_level(logging.DEBUG, logger=name)
    backend = build(max_retries=1)
    backend.embed(["hello"])
    errors = failures(backend, api)
    assert len(errors) == 6
    assert any(r.name.startswith("httpcore") for r in caplog.records), "httpcore's DEBUG records were not captured"
    secret_leak_check.assert_absent(api_key, what="api key", exceptions=errors,
                                    objects=[backend, backend._transport, *[e.details for e in errors]])
    for error in errors:
        assert error.__cause__ is None and error.__context__ is None, "a raised error carries a chained exception"


def test_wrong_key_absent_from_auth_errors(api: OpenAIStandIn, build: Build, secret_leak_check: Any) -> None:
    wrong = "sk-wrong-key-kept-out-of-errors-7731"
    backend = build(environ={"OPENAI_API_KEY": wrong})
    with pytest.raises(LoomError) as info:
        backend.embed(["x"])
    secret_leak_check.assert_absent(wrong, what="wrong key", exceptions=[info.value], objects=[backend])


def test_key_echoed_in_a_provider_message_is_masked(api: OpenAIStandIn, build: Build, api_key: str) -> None:
    backend = build()
    api.fail_next(status=400, body=b'{"error": {"message": "bad key ' + api_key.encode() + b' here", '
                                   b'"type": "invalid_request_error", "param": null, "code": null}}')
    with pytest.raises(LoomError) as info:
        backend.embed(["x"])
    assert api_key not in str(info.value) and "[API KEY]" in str(info.value)
