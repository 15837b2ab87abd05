"""The core-tier guard also protects the kit's own fixtures and helpers, not only a short list:
a suite subclass defining ``provider`` (the most natural name) silently replaced the object five
core tests check, and overriding ``_expect_secrets_error`` let a fail-open provider pass all."""

from __future__ import annotations

from typing import Any

import pytest

from loom_core.testing.index import IndexSuite
from loom_core.testing.secrets import SecretsProviderSuite


def test_a_subclass_fixture_named_like_a_kit_fixture_fails_the_guard() -> None:
    class TestShadowsProvider(SecretsProviderSuite):
        @pytest.fixture
        def provider(self) -> Any:
            return None

    [violation] = TestShadowsProvider.core_tier_violations()
    assert "fixture 'provider' is redefined by" in violation and "TestShadowsProvider" in violation


def test_a_subclass_replacing_a_kit_helper_fails_the_guard() -> None:
    class Lenient:
        def _expect_secrets_error(self, call: Any, *codes: Any, what: str) -> Any:
            return None

    class TestLenient(Lenient, SecretsProviderSuite):
        pass

    assert any("helper '_expect_secrets_error' is redefined by" in v for v in TestLenient.core_tier_violations())


def test_the_fixtures_a_suite_asks_for_may_be_defined() -> None:
    """What the fixture contract asks the subclass to provide is not a kit internal."""

    class TestIndex(IndexSuite):
        backend_name = "tantivy"

        @pytest.fixture
        def make_index(self) -> Any:
            return None

    assert TestIndex.core_tier_violations() == []
