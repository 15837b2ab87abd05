"""Build a job's redactor from its resolved values plus the plugins' extra forms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loom_core.contracts.secrets import SecretValue


class PassThrough:
    """The stream filter for a job without secrets: nothing to hold back or replace."""

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


def _identity(text: str) -> str:
    return text


def plugin_forms(hook: Any, values: Mapping[str, SecretValue]) -> dict[str, list[bytes]]:
    """``loom_redaction_forms`` results per secret name (all implementations merged)."""
    forms: dict[str, list[bytes]] = {}
    for name, value in values.items():
        found: list[bytes] = []
        for result in hook.loom_redaction_forms(value=value.reveal()):
            found.extend(bytes(form) for form in (result or ()) if form)
        if found:
            forms[name] = found
    return forms


def make_redactor(values: Mapping[str, SecretValue], hook: Any, min_length: int) -> Any:
    """A :class:`loom_core.secrets.redaction.Redactor` for ``values`` (``None`` when empty)."""
    if not values:
        return None
    import importlib

    redaction = importlib.import_module("loom_core.secrets.redaction")
    return redaction.Redactor(
        {name: v.reveal() for name, v in values.items()},
        extra_forms=plugin_forms(hook, values),
        min_length=min_length,
    )


def scrubber(redactor: Any) -> Callable[[str], str]:
    """``str -> str`` that redacts with ``redactor`` (identity when there is none)."""
    if redactor is None:
        return _identity
    fn: Callable[[str], str] = redactor.redact_text
    return fn


def stream_filter(redactor: Any) -> Any:
    """A per-stream filter: the redactor's :class:`StreamRedactor`, or a pass-through."""
    return PassThrough() if redactor is None else redactor.stream()
