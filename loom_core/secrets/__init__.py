"""Loom secrets: redaction of resolved values on every output surface."""

from loom_core.secrets.redaction import Redactor, StreamRedactor, forms_from_hook

__all__ = ["Redactor", "StreamRedactor", "forms_from_hook"]
