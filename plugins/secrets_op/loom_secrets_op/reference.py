"""Check ``op://vault/item[/section]/field[?attribute=...]`` the way 1Password defines it.

1Password secret references name a vault, an item, an optional section and a
field (or file) by name or unique ID. Names may hold letters, digits, ``-``,
``_``, ``.`` and spaces; anything else must be referred to by its ID. One
query parameter is allowed: ``attribute`` (``type``, ``value``, ``id``,
``purpose``, ``otp``/``totp``) or ``ssh-format=openssh``. The reference is
passed to ``op read`` as written; this module only refuses what ``op`` would
refuse, before a process is started.
"""

from __future__ import annotations

from dataclasses import dataclass

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

SCHEME = "op"
ATTRIBUTES = frozenset({"type", "value", "id", "purpose", "otp", "totp"})
SSH_FORMATS = frozenset({"openssh"})
_PUNCTUATION = frozenset("-_. ")


@dataclass(frozen=True)
class OpRef:
    raw: str
    vault: str
    item: str
    section: str | None
    field: str
    query: str | None


def _invalid(raw: str, reason: str) -> LoomError:
    return LoomError(
        ErrorCode.SECRETS_REF_INVALID,
        f"{raw!r} is not a valid 1Password reference: {reason} "
        "(expected op://vault/item[/section]/field[?attribute=...])",
    )


def _check_name(raw: str, name: str, what: str) -> None:
    if not name or not name.strip():
        raise _invalid(raw, f"the {what} is empty")
    bad = sorted({c for c in name if not (c.isalnum() or c in _PUNCTUATION)})
    if bad:
        shown = "".join(c if c.isprintable() else "?" for c in bad)
        raise _invalid(raw, f"the {what} contains {shown!r}; refer to it by its ID instead")


def _check_query(raw: str, query: str) -> None:
    key, sep, value = query.partition("=")
    if not sep or "&" in query:
        raise _invalid(raw, "the query must be a single attribute=... or ssh-format=... parameter")
    if key == "attribute" and value.lower() in ATTRIBUTES:
        return
    if key == "ssh-format" and value.lower() in SSH_FORMATS:
        return
    raise _invalid(raw, f"unsupported query parameter {key!r}")


def parse(ref: SecretRef) -> OpRef:
    """Validate ``ref``; raises ``SECRETS_REF_INVALID`` (never runs ``op``)."""
    raw = ref.raw
    if ref.scheme != SCHEME:
        raise _invalid(raw, f"scheme {ref.scheme!r} is not {SCHEME!r}")
    if ref.fragment is not None:
        raise _invalid(raw, "'#' has no meaning in op:// references")
    path, qsep, query = ref.path.partition("?")
    segments = path.split("/")
    if len(segments) < 3:
        raise _invalid(raw, "it needs a vault, an item and a field")
    if len(segments) > 4:
        raise _invalid(raw, "too many '/' segments")
    labels = ["vault", "item", "section", "field"] if len(segments) == 4 else ["vault", "item", "field"]
    for label, segment in zip(labels, segments, strict=True):
        _check_name(raw, segment, label)
    if qsep:
        _check_query(raw, query)
    return OpRef(
        raw=raw,
        vault=segments[0],
        item=segments[1],
        section=segments[2] if len(segments) == 4 else None,
        field=segments[-1],
        query=query if qsep else None,
    )
