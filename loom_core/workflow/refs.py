"""Scheme-specific syntax of secret references, checked without any provider.

The provider's own ``validate`` runs too when it is installed; these checks
make ``loom check`` precise on machines where a provider plugin is absent.
"""

from __future__ import annotations

import re

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

#: Schemes Loom knows the syntax of; the provider backend has the same name.
KNOWN_SCHEMES = ("env", "keepass", "op")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\Z")  # as the keepass plugin parses it


def _bad(ref: str, why: str, form: str) -> LoomError:
    return LoomError(ErrorCode.SECRETS_REF_INVALID, f"reference {ref!r}: {why}; expected {form}")


def check_syntax(raw: str) -> SecretRef:
    """Parse ``raw`` and check the syntax of known schemes; raise ``SECRETS_REF_INVALID``."""
    ref = SecretRef.parse(raw)
    if ref.scheme == "env":
        form = "env://NAME"
        if ref.fragment is not None:
            raise _bad(raw, "env references take no #fragment", form)
        if not _ENV_NAME.match(ref.path):
            raise _bad(raw, "the variable name must be letters, digits and '_'", form)
    elif ref.scheme == "keepass":
        form = "keepass://ALIAS/Group/.../Entry#field"
        parts = ref.path.split("/")
        if len(parts) < 2 or any(not p for p in parts):
            raise _bad(raw, "needs an alias and an entry path without empty segments", form)
        if not _ALIAS.match(parts[0]):
            raise _bad(raw, "the alias must be letters, digits, '_' and '-', starting with a letter or digit", form)
        if ref.fragment is not None and not ref.fragment:
            raise _bad(raw, "an empty #field", form)
    elif ref.scheme == "op":
        form = "op://vault/item[/section]/field"
        if ref.fragment is not None:
            raise _bad(raw, "op references take no #fragment", form)
        path = ref.path.split("?", 1)[0]
        parts = path.split("/")
        if len(parts) not in (3, 4) or any(not p.strip() for p in parts):
            raise _bad(raw, "needs 3 or 4 non-empty segments", form)
    return ref
