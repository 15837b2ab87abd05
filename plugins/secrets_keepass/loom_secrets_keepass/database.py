"""Open a KDBX file once and read entries from its decrypted XML tree.

Lookups walk the tree by exact names instead of pykeepass's search helpers:
those return the first of several equal titles (hiding duplicates) and splice
names into XPath strings (breaking on quotes). Walking counts every match,
so two entries on one path are reported as ambiguous, never picked at random.
"""

from __future__ import annotations

from typing import Any

from pykeepass import PyKeePass
from pykeepass.exceptions import CredentialsError, HeaderChecksumError, PayloadChecksumError

from loom_core.errors import ErrorCode, LoomError
from loom_secrets_keepass.reference import STANDARD_KEYS, KeepassRef
from loom_secrets_keepass.settings import Unlock


def open_database(ref: KeepassRef, unlock: Unlock) -> PyKeePass:
    """Decrypt the database (one full KDF); map every failure to a ``SECRETS_*`` code."""
    where = f"{ref.raw}: keepass alias {ref.alias!r} ({str(unlock.path)!r})"
    if not unlock.path.is_file():
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"{where}: no database file there (missing or not a regular file); "
            f"check LOOM_KEEPASS_DB_{ref.alias_key}_PATH",
        )
    try:
        kp = PyKeePass(
            str(unlock.path),
            password=unlock.password,
            keyfile=str(unlock.keyfile) if unlock.keyfile is not None else None,
        )
    except CredentialsError:
        raise LoomError(
            ErrorCode.SECRETS_AUTH_INVALID,
            f"{where}: the master password and/or keyfile do not unlock the database",
        ) from None
    except (HeaderChecksumError, PayloadChecksumError) as exc:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"{where}: the file is not a readable KeePass database ({type(exc).__name__})",
        ) from None
    except OSError as exc:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"{where}: the database or keyfile cannot be read ({type(exc).__name__})",
        ) from None
    except Exception as exc:  # construct/lxml parse errors on truncated or foreign files
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"{where}: the file could not be parsed as KDBX ({type(exc).__name__})",
        ) from None
    # pykeepass keeps the credentials only for save(); this provider never saves.
    # (the private attributes: the public setters would also stamp a credential-change date)
    kp._password = None
    kp._keyfile = None
    return kp


def _text(element: Any, tag: str) -> str | None:
    child = element.find(tag)
    return None if child is None else child.text


def _strings(entry: Any, key: str) -> list[str | None]:
    """Values of the entry's string fields named exactly ``key`` (history excluded)."""
    return [_text(s, "Value") for s in entry.findall("String") if _text(s, "Key") == key]


def find_entry(kp: PyKeePass, ref: KeepassRef) -> Any:
    """The one entry element at ``ref``'s path; NOT_FOUND or AMBIGUOUS otherwise."""
    groups = [kp.root_group._element]
    for depth, name in enumerate(ref.groups):
        groups = [g for parent in groups for g in parent.findall("Group") if _text(g, "Name") == name]
        if not groups:
            path = "/".join(ref.groups[: depth + 1])
            raise LoomError(
                ErrorCode.SECRETS_NOT_FOUND,
                f"{ref.raw}: keepass alias {ref.alias!r} has no group {path!r}",
            )
    entries = [e for g in groups for e in g.findall("Entry") if ref.title in _strings(e, "Title")]
    if not entries:
        raise LoomError(
            ErrorCode.SECRETS_NOT_FOUND,
            f"{ref.raw}: keepass alias {ref.alias!r} has no entry {ref.title!r} at that path",
        )
    if len(entries) > 1:
        raise LoomError(
            ErrorCode.SECRETS_AMBIGUOUS,
            f"{ref.raw}: {len(entries)} entries share this path in keepass alias {ref.alias!r}; "
            "rename or move all but one",
        )
    return entries[0]


def _nonempty(ref: KeepassRef, value: bytes) -> bytes:
    if not value:
        raise LoomError(
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"{ref.raw}: the {ref.field.describe()} is empty; store a value or fix the reference",
        )
    return value


def read_field(kp: PyKeePass, entry: Any, ref: KeepassRef) -> bytes:
    """The bytes of the requested string field or attachment."""
    spec = ref.field
    if spec.attachment:
        refs = [b.find("Value") for b in entry.findall("Binary") if _text(b, "Key") == spec.name]
        if not refs:
            raise LoomError(
                ErrorCode.SECRETS_FIELD_NOT_FOUND,
                f"{ref.raw}: the entry has no {spec.describe()}",
            )
        if len(refs) > 1:
            raise LoomError(ErrorCode.SECRETS_AMBIGUOUS, f"{ref.raw}: the entry has several {spec.describe()}")
        try:
            data = kp.binaries[int(refs[0].attrib["Ref"])]
        except (AttributeError, KeyError, ValueError, IndexError, TypeError):
            raise LoomError(
                ErrorCode.SECRETS_PROVIDER_FAILED,
                f"{ref.raw}: the {spec.describe()} points at binary data the database does not hold",
            ) from None
        return _nonempty(ref, bytes(data))
    values = _strings(entry, spec.name)
    if not values:
        if spec.name in STANDARD_KEYS:
            return _nonempty(ref, b"")  # KeePass treats an absent standard field as empty
        raise LoomError(ErrorCode.SECRETS_FIELD_NOT_FOUND, f"{ref.raw}: the entry has no {spec.describe()}")
    if len(values) > 1:
        raise LoomError(ErrorCode.SECRETS_AMBIGUOUS, f"{ref.raw}: the entry has several {spec.describe()}")
    return _nonempty(ref, (values[0] or "").encode("utf-8"))
