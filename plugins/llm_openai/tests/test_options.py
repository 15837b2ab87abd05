"""Options are checked at build time (CONFIG_INVALID naming the option); the server's context reaches them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from loom_llm_openai.backend import OpenAILLM
from loom_llm_openai.options import parse
from loom_llm_openai.standin import OpenAIStandIn

from loom_core.config import LoomConfig
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import llm_context
from loom_core.plugins.host import PluginHost

Build = Callable[..., OpenAILLM]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"temperature": 1}, "unknown option"),
        ({"embedding_dimension": 4}, "embedding_dimension"),
        ({"embedding_dimension": 2000}, "exceeds"),
        ({"embedding_model": "text-embedding-ada-002", "embedding_dimension": 512}, "always returns 1536"),
        ({"base_url": "http://api.example.com/v1"}, "https"),
        ({"base_url": "https://user:pw@api.example.com/v1"}, "credentials"),
        ({"base_url": "ftp://x/v1"}, "http(s) URL"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"max_retries": 11}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"model": ""}, "model"),
        ({"prices": {"m": {"input": -1}}}, "prices"),
        ({"prices": {"m": {"in": 1}}}, "prices"),
    ],
)
def test_bad_options_are_config_invalid(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(LoomError) as info:
        parse(options)
    assert info.value.code is ErrorCode.CONFIG_INVALID and fragment in info.value.message


def test_defaults() -> None:
    settings = parse({})
    assert (settings.model, settings.embedding_model, settings.embedding_dimension) == (
        "gpt-4o-mini", "text-embedding-3-small", 1536)
    assert settings.base_url == "https://api.openai.com/v1" and settings.api_key_env == "OPENAI_API_KEY"
    assert parse({"base_url": "http://localhost:8000/v1/"}).base_url == "http://localhost:8000/v1"
    assert parse({"embedding_model": "text-embedding-3-large"}).embedding_dimension == 3072


def test_memory_server_context_reaches_the_backend(api: OpenAIStandIn, api_key: str) -> None:
    """[llm] keys (model, dimension, base URL, key variable) reach the backend through llm_context."""
    config = LoomConfig.model_validate({"llm": {
        "backend": "openai", "api_key_env": "TEAM_OPENAI_KEY", "model": "gpt-4.1-nano",
        "embedding_dimension": 256, "base_url": api.base_url, "timeout_seconds": 5,
        "options": {"max_retries": 0},
    }})
    env = {"TEAM_OPENAI_KEY": api_key}
    backend: OpenAILLM = PluginHost(environ=env).create("llm", "openai", llm_context(config, env))
    try:
        assert backend.embed(["x"]).shape == (1, 256)
        assert backend.settings.model == "gpt-4.1-nano" and backend.settings.max_retries == 0
        assert api.requests[0].body["dimensions"] == 256
    finally:
        backend.close()
    with pytest.raises(LoomError) as info:
        PluginHost(environ={}).create("llm", "openai", llm_context(config, {}))
    assert info.value.code is ErrorCode.LLM_AUTH_MISSING and "TEAM_OPENAI_KEY" in info.value.message
