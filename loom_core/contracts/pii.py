"""PII filter contract: text in, redacted text out, before any LLM call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: The replacement tokens the seed names; filters use exactly these.
PII_TOKENS: Mapping[str, str] = {
    "phone": "[PHONE]",
    "email": "[EMAIL]",
    "id": "[ID]",
    "blocklist": "[REDACTED]",
}


@dataclass(frozen=True)
class PIIResult:
    text: str
    counts: Mapping[str, int] = field(default_factory=dict)  # kind -> matches


@runtime_checkable
class PIIFilter(Protocol):
    """Guarantees every backend gives:

    * Every match is replaced by its token from :data:`PII_TOKENS`; text
      without PII is returned unchanged.
    * Redaction is idempotent: filtering the output again changes nothing.
    * Filtering never raises on arbitrary Unicode input.
    * The original matches never appear in logs, exceptions or ``repr``.
    """

    capabilities: frozenset[str]

    def redact(self, text: str) -> PIIResult: ...
