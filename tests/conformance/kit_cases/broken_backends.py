"""Deliberately broken backends run through the real suites; run only in a subprocess by test_kit_catches.py.

Each backend has known bugs; the calling test checks the suite tests aimed
at those bugs fail (so the kit's tests can fail) and unrelated ones pass.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from loom_core.contracts.llm import ChatMessage, Completion, Usage
from loom_core.contracts.pii import PIIResult
from loom_core.contracts.secrets import SecretRef, SecretValue
from loom_core.testing.llm import LLMSuite
from loom_core.testing.pii import PIIFilterSuite
from loom_core.testing.secrets import SecretsProviderSuite

log = logging.getLogger("broken.provider")


class SloppyProvider:
    """Strips values, logs them, returns None when missing, serves any scheme."""

    scheme = "env"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ

    def validate(self, ref: SecretRef) -> None:
        return None

    def resolve(self, ref: SecretRef) -> Any:
        value = self.environ.get(ref.path)
        if value is None:
            return None
        log.debug("resolved %s to %s", ref.raw, value)
        return SecretValue(value.strip().encode())

    def close(self) -> None:
        return None


class Store:
    def __init__(self) -> None:
        self.environ: dict[str, str] = {}

    def put(self, name: str, value: bytes) -> str:
        self.environ[name.upper()] = value.decode()
        return f"env://{name.upper()}"

    def provider(self) -> SloppyProvider:
        return SloppyProvider(self.environ)

    def missing_ref(self) -> str:
        return "env://NOPE"

    def invalid_refs(self) -> list[str]:
        return ["env://A-B"]


class TestSloppyProvider(SecretsProviderSuite):
    @pytest.fixture
    def secret_store(self) -> Store:
        return Store()


class NumberEater:
    """Replaces every digit run with a made-up token."""

    capabilities = frozenset({"phone"})

    def redact(self, text: str) -> PIIResult:
        return PIIResult(re.sub(r"\d+", "[NUM]", text), {"phone": 0})


class TestNumberEater(PIIFilterSuite):
    capabilities = frozenset({"phone"})

    @pytest.fixture
    def pii_filter(self) -> Any:
        return lambda blocklist=(): NumberEater()


class SpaceBoundFilter:
    """Finds e-mail addresses only between spaces: misses one alone on a line or in quotes."""

    capabilities = frozenset({"email"})

    def redact(self, text: str) -> PIIResult:
        out, n = re.subn(r"(?<= )[\w.+-]+@[\w-]+(?:\.[\w-]+)+(?= )", "[EMAIL]", text)
        return PIIResult(out, {"email": n})


class TestSpaceBoundFilter(PIIFilterSuite):
    capabilities = frozenset({"email"})

    @pytest.fixture
    def pii_filter(self) -> Any:
        return lambda blocklist=(): SpaceBoundFilter()


class LazyLLM:
    """float64, unnormalised, and an empty completion instead of LLM_CAPABILITY_MISSING."""

    name = "lazy"
    capabilities = frozenset({"embed"})
    embedding_dimension = 8

    def embed(self, texts: Sequence[str]) -> Any:
        return np.ones((len(texts), 8))

    def complete(
        self, messages: Sequence[ChatMessage], *, json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        return Completion(text="")

    def usage(self) -> Usage:
        return Usage()

    def close(self) -> None:
        return None


class TestLazyLLM(LLMSuite):
    capabilities = frozenset({"embed"})

    @pytest.fixture
    def llm(self) -> Any:
        return lambda auth="valid": LazyLLM()
