"""Redaction tests run twice: on the automaton alone and with the numpy prefilter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loom_core.secrets import redaction_matcher


@pytest.fixture(scope="module", params=["automaton only", "numpy prefilter"])
def matcher_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Matchers built meanwhile use the automaton alone, or the prefilter from their first byte."""
    saved = redaction_matcher.LAZY_BYTES
    redaction_matcher.LAZY_BYTES = 1 << 62 if request.param == "automaton only" else 0
    try:
        yield str(request.param)
    finally:
        redaction_matcher.LAZY_BYTES = saved
