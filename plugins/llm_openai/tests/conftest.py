"""A stand-in OpenAI API per test, and backends built through the plugin host against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loom_llm_openai.backend import OpenAILLM
from loom_llm_openai.standin import OpenAIStandIn

from loom_core.contracts import BackendContext
from loom_core.plugins.host import PluginHost

KEY = "sk-test-openai-stand-in-key-8c41f2e07b"
DIMENSION = 64
#: back-off small enough that retry tests take milliseconds
FAST = {"backoff_seconds": 0.001, "max_backoff_seconds": 0.05, "max_retries": 3}

Build = Callable[..., OpenAILLM]


@pytest.fixture
def api_key() -> str:
    return KEY


@pytest.fixture
def make_backend() -> Callable[..., OpenAILLM]:
    """``make_backend(api, environ=None, **options)``: a backend built the production way (caller closes)."""
    return build_backend


@pytest.fixture
def api() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key=KEY) as server:
        yield server


def build_backend(api: OpenAIStandIn, environ: dict[str, str] | None = None, **options: Any) -> OpenAILLM:
    """The backend as the memory server builds it: through the entry point, options and environment."""
    opts = {"base_url": api.base_url, "embedding_dimension": DIMENSION, **FAST, **options}
    env = {"OPENAI_API_KEY": KEY} if environ is None else environ
    backend: OpenAILLM = PluginHost(environ={}).create("llm", "openai", BackendContext(options=opts, environ=env))
    return backend


@pytest.fixture
def build(api: OpenAIStandIn) -> Iterator[Build]:
    """``build(environ=None, **options)``; every backend built is closed after the test."""
    built: list[OpenAILLM] = []

    def make(environ: dict[str, str] | None = None, **options: Any) -> OpenAILLM:
        backend = build_backend(api, environ, **options)
        built.append(backend)
        return backend

    yield make
    for backend in built:
        backend.close()
