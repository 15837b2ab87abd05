"""Build a job's redactor from its resolved values plus the plugins' extra forms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from loom_core.contracts.secrets import SecretValue

if TYPE_CHECKING:  # imported at run time only when a job has secrets (it pulls in numpy)
    from loom_core.secrets.redaction import Redactor, StreamRedactor


class PassThrough:
    """The stream filter for a job without secrets: nothing to hold back or replace."""

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


def _identity(text: str) -> str:
    return text


def make_redactor(values: Mapping[str, SecretValue], hook: Any, min_length: int) -> Redactor | None:
    """A redactor for ``values`` plus every ``loom_redaction_forms`` result (``None`` when empty)."""
    if not values:
        return None
    from loom_core.secrets.redaction import Redactor, forms_from_hook

    return Redactor(values, extra_forms=forms_from_hook(hook), min_length=min_length)


def scrubber(redactor: Redactor | None) -> Callable[[str], str]:
    """``str -> str`` that redacts with ``redactor`` (identity when there is none)."""
    if redactor is None:
        return _identity
    fn: Callable[[str], str] = redactor.redact_text
    return fn


def stream_filter(redactor: Redactor | None) -> StreamRedactor | PassThrough:
    """A per-stream filter: the redactor's :class:`StreamRedactor`, or a pass-through."""
    return PassThrough() if redactor is None else redactor.stream()
