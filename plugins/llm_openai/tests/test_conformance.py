"""The openai backend passes the kernel's LLM conformance kit against the stand-in API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loom_llm_openai.backend import CAPABILITIES, OpenAILLM
from loom_llm_openai.standin import OpenAIStandIn

from loom_core.testing.llm import LLMSuite

WRONG_KEY = "sk-test-wrong-key-that-the-stand-in-rejects-51d9"


class Builder:
    """``build(auth="valid" | "missing" | "invalid")``: built through the plugin host against one stand-in."""

    def __init__(self, api: OpenAIStandIn, key: str, make: Callable[..., OpenAILLM]) -> None:
        self.api, self.key, self.make = api, key, make
        self.secret_material = [key, WRONG_KEY]

    def __call__(self, auth: str = "valid") -> OpenAILLM:
        environ = {"valid": {"OPENAI_API_KEY": self.key}, "missing": {}, "invalid": {"OPENAI_API_KEY": WRONG_KEY}}
        return self.make(self.api, environ[auth])


class TestOpenAIConformance(LLMSuite):
    capabilities = CAPABILITIES

    @pytest.fixture
    def llm(self, api_key: str, make_backend: Callable[..., OpenAILLM]) -> Iterator[Any]:
        with OpenAIStandIn(api_key=api_key) as api:
            yield Builder(api, api_key, make_backend)
