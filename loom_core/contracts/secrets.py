"""Secrets-provider contract: resolve a reference URI to bytes, fail closed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from loom_core.errors import ErrorCode, LoomError


def is_scheme(name: str) -> bool:
    """Whether ``name`` can be a reference scheme: ASCII letters, digits and ``-``.

    One rule for references and for ``[secrets.providers.<scheme>]`` tables, so a
    table is never accepted under a name no reference can carry.
    """
    return bool(name) and name.isascii() and name.replace("-", "").isalnum()


def is_provider_scheme(name: str) -> bool:
    """Whether a provider can serve ``name``: a scheme in the lower case references are matched in.

    The rule for a secrets backend's registered name and a ``[secrets.providers.<scheme>]``
    table: an upper-case one would never be selected by any reference.
    """
    return is_scheme(name) and name == name.lower()


@dataclass(frozen=True)
class SecretRef:
    """A parsed ``scheme://rest#fragment`` reference. Holds no secret bytes."""

    raw: str
    scheme: str
    path: str  # everything between ``scheme://`` and ``#``
    fragment: str | None

    @classmethod
    def parse(cls, raw: str) -> SecretRef:
        """Split ``raw``; raises ``SECRETS_REF_INVALID`` on a malformed URI."""
        if not isinstance(raw, str) or "://" not in raw:
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                f"{raw!r} is not a secret reference: expected scheme://path",
            )
        # Not urllib: it reads "[" as the start of an IPv6 host and raises; each scheme's own
        # syntax check decides what its path may hold.
        scheme = raw.partition("://")[0]
        if not is_scheme(scheme):
            raise LoomError(ErrorCode.SECRETS_REF_INVALID, f"{raw!r} has no valid scheme")
        rest = raw[len(scheme) + 3 :]
        path, sep, fragment = rest.partition("#")
        if not path:
            raise LoomError(ErrorCode.SECRETS_REF_INVALID, f"{raw!r} names nothing after {scheme}://")
        return cls(raw=raw, scheme=scheme.lower(), path=path, fragment=fragment if sep else None)

    def __str__(self) -> str:
        return self.raw


class SecretValue:
    """Resolved secret bytes that refuse to show themselves.

    ``repr`` and ``str`` print only the length; the bytes come out only
    through :meth:`reveal`, so an accidental log line or f-string leaks nothing.
    """

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"SecretValue(<redacted {len(self._value)} bytes>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        import hmac

        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("SecretValue", len(self._value)))

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("SecretValue cannot be pickled")


@runtime_checkable
class SecretsProvider(Protocol):
    """Guarantees every backend gives (the seed's contributor checklist):

    * :attr:`scheme` is the URI scheme it serves; it handles only that scheme.
    * :meth:`validate` checks syntax without touching the vault and raises
      ``SECRETS_REF_INVALID``.
    * :meth:`resolve` returns the exact stored bytes or raises a ``SECRETS_*``
      :class:`LoomError`: missing or invalid auth, unknown entry, ambiguous
      entry. Never ``None``, empty bytes, or a value from another source.
    * Auth material is read only from the runtime environment given in the
      backend context, through the indirections the provider documents.
    * Messages name the reference and the reason, never a value; nothing
      resolved is logged.
    """

    scheme: str
    capabilities: frozenset[str]

    def validate(self, ref: SecretRef) -> None: ...

    def resolve(self, ref: SecretRef) -> SecretValue: ...

    def close(self) -> None: ...
