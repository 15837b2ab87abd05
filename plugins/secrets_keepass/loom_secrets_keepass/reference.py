"""Parse ``keepass://ALIAS/Group/Sub/Entry#field`` without touching a database.

Names are percent-encoded: ``%2F`` for ``/``, ``%23`` for ``#``, ``%25`` for
``%`` (any other ``%XX`` UTF-8 escape is accepted too). Everything else is
literal, so a reference copied from the KeePass tree reads as it looks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

SCHEME = "keepass"
ATTACHMENT_PREFIX = "attachment:"
DEFAULT_FIELD = "password"

#: Reference spelling -> KeePass's own key for the five standard string fields.
STANDARD_FIELDS: dict[str, str] = {
    "title": "Title",
    "username": "UserName",
    "password": "Password",
    "url": "URL",
    "notes": "Notes",
}
#: KeePass's own spellings are accepted as well (``#UserName``).
STANDARD_KEYS = frozenset(STANDARD_FIELDS.values())

_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class FieldSpec:
    """Which part of an entry a reference asks for."""

    name: str  # KeePass string key, or the attachment's file name
    attachment: bool = False

    def describe(self) -> str:
        return f"attachment {self.name!r}" if self.attachment else f"field {self.name!r}"


@dataclass(frozen=True)
class KeepassRef:
    """A validated reference: alias, group path below the root, entry title, field."""

    raw: str
    alias: str
    groups: tuple[str, ...]
    title: str
    field: FieldSpec

    @property
    def alias_key(self) -> str:
        """The alias as it appears in ``LOOM_KEEPASS_DB_<ALIAS>_*`` variable names."""
        return alias_key(self.alias)


def alias_key(alias: str) -> str:
    return alias.upper().replace("-", "_")


def _invalid(raw: str, reason: str) -> LoomError:
    return LoomError(
        ErrorCode.SECRETS_REF_INVALID,
        f"{raw!r} is not a valid keepass reference: {reason} "
        "(expected keepass://ALIAS/Group/Entry#field; escape '/', '#' and '%' in names as %2F, %23, %25)",
    )


def _decode(raw: str, part: str, what: str) -> str:
    if _BAD_PERCENT.search(part):
        raise _invalid(raw, f"{what} has a '%' that is not followed by two hex digits")
    try:
        text = unquote(part, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _invalid(raw, f"{what} has a percent-escape that is not UTF-8") from None
    if not text:
        raise _invalid(raw, f"{what} is empty")
    if _CONTROL.search(text):
        raise _invalid(raw, f"{what} contains a control character")
    return text


def parse_field(raw: str, fragment: str | None) -> FieldSpec:
    if fragment is None:
        return FieldSpec(STANDARD_FIELDS[DEFAULT_FIELD])
    if fragment.startswith(ATTACHMENT_PREFIX):
        filename = _decode(raw, fragment[len(ATTACHMENT_PREFIX) :], "the attachment name")
        return FieldSpec(filename, attachment=True)
    name = _decode(raw, fragment, "the field name after '#'")
    return FieldSpec(STANDARD_FIELDS.get(name, name))


def parse(ref: SecretRef) -> KeepassRef:
    """Validate ``ref`` and split it; raises ``SECRETS_REF_INVALID``."""
    raw = ref.raw
    if ref.scheme != SCHEME:
        raise _invalid(raw, f"scheme {ref.scheme!r} is not {SCHEME!r}")
    segments = ref.path.split("/")
    if len(segments) < 2:
        raise _invalid(raw, "it needs an alias and an entry title")
    alias = segments[0]
    if not _ALIAS.fullmatch(alias):
        raise _invalid(raw, "the alias must be letters, digits, '-' or '_'")
    names = [_decode(raw, seg, f"path segment {i}") for i, seg in enumerate(segments[1:], start=1)]
    field = parse_field(raw, ref.fragment)
    return KeepassRef(raw=raw, alias=alias, groups=tuple(names[:-1]), title=names[-1], field=field)
