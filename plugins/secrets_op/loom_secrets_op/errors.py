"""Turn a failed ``op read`` into a ``SECRETS_*`` code by the category of its stderr.

``op`` reports failures as ``[ERROR] YYYY/MM/DD HH:MM:SS <message>`` on stderr
with exit status 1. Only the *category* is taken from that text; the text
itself never reaches an error message (it may quote names, and a future CLI
version might quote more), and stdout is never looked at on failure.
Categories are matched in order, so "403 ... aren't authorized" is access
denied and not mistaken for a token problem, and an ambiguous item called
"Forbidden" is ambiguous, not a permission problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from loom_core.errors import ErrorCode
from loom_secrets_op.reference import OpRef


@dataclass(frozen=True)
class Category:
    code: ErrorCode
    reason: str
    markers: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    # first: this wording names the item and vault unquoted ("for item <name>: ... in vault <name>:"),
    # which the quoted-name blanking below cannot catch, so a name must not pick another category
    Category(
        ErrorCode.SECRETS_AMBIGUOUS,
        "more than one item in the vault has this name; rename one or name the item by its ID",
        ("more than one item matches",),
    ),
    Category(
        ErrorCode.SECRETS_REF_INVALID,
        "op refused the reference syntax",
        ("invalid secret reference", "too many '/'", "invalid character in secret reference"),
    ),
    Category(
        ErrorCode.SECRETS_ACCESS_DENIED,
        "the service account may not read this vault or item (403 forbidden)",
        ("(403)", "forbidden", "aren't authorized", "not authorized to access"),
    ),
    Category(
        ErrorCode.SECRETS_AUTH_MISSING,
        "op is not signed in (no usable service account token)",
        (
            "not currently signed in",
            "account is not signed in",
            "no accounts configured",
            "could not find session token",
        ),
    ),
    Category(
        ErrorCode.SECRETS_AUTH_INVALID,
        "op rejected the service account token",
        (
            "decodesacredentials",
            "(401)",
            "unauthorized",
            "invalid bearer token",
            "invalid token",
            "token is invalid",
            "invalid credentials",
            "service account is deleted",
            "token has expired",
        ),
    ),
    Category(
        ErrorCode.SECRETS_NOT_FOUND,
        "the vault does not exist or is not visible to the service account",
        ("isn't a vault",),
    ),
    Category(
        ErrorCode.SECRETS_NOT_FOUND,
        "the item does not exist in the vault",
        ("isn't an item", "could not find item", "no item found"),
    ),
    Category(
        ErrorCode.SECRETS_FIELD_NOT_FOUND,
        "the item has no such field or section",
        ("does not have a field", "does not have a section", "could not find field", "isn't a field"),
    ),
    Category(
        ErrorCode.SECRETS_PROVIDER_FAILED,
        "1Password rate-limited the service account (429)",
        ("(429)", "too many requests"),
    ),
)

UNKNOWN = Category(ErrorCode.SECRETS_PROVIDER_FAILED, "op failed for an unrecognised reason", ())


def _without_names(text: str, ref: OpRef) -> str:
    """``text`` with the reference and its quoted names blanked out.

    ``op`` quotes the names it could not find; an item called "forbidden" must
    not make a missing item look like a permission problem.
    """
    names = [n for n in (ref.vault, ref.item, ref.section, ref.field) if n]
    spans = {ref.raw, f"{ref.vault}/{ref.item}"}
    spans |= {f"{q}{n}{q}" for n in names for q in ("'", '"')}
    for span in sorted(spans, key=len, reverse=True):
        text = text.replace(span, "<name>")
    return text


def classify(stderr: bytes, ref: OpRef) -> Category:
    """The first category whose marker appears in ``stderr`` (case-insensitive), else UNKNOWN."""
    text = _without_names(stderr.decode("utf-8", "replace"), ref).lower()
    for category in CATEGORIES:
        if any(marker in text for marker in category.markers):
            return category
    return UNKNOWN
