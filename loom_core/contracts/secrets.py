"""Secrets-provider contract: resolve a reference URI to bytes, fail closed."""

from __future__ import annotations

from collections.abc import Iterable
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
        # Text that does not parse is not repeated: it is often the secret itself, pasted where
        # its reference belongs, and these messages reach consoles and `loom check` output.
        if not isinstance(raw, str) or "://" not in raw:
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                "the value is not a secret reference (expected scheme://path, e.g. env://NAME; the text is "
                "not repeated here in case it is a secret)",
            )
        # Not urllib: it reads "[" as the start of an IPv6 host and raises; each scheme's own
        # syntax check decides what its path may hold.
        scheme = raw.partition("://")[0]
        if not is_scheme(scheme):
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                "the value has no valid scheme before :// (lower-case letters, digits and -; the text is not "
                "repeated here in case it is a secret)",
            )
        rest = raw[len(scheme) + 3 :]
        path, sep, fragment = rest.partition("#")
        if not path:
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                f"the reference names nothing after {scheme.lower()}:// (the rest is not repeated here in case it "
                "is a secret)",
            )
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


def _names(what: str, names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):  # "PATH" would become {"P", "A", "T", "H"}
        raise TypeError(f"AuthPolicy.{what} takes a collection of variable names, not one string")
    found = frozenset(names)
    bad = sorted(repr(n) for n in found if not isinstance(n, str) or not n or "=" in n or "\0" in n)
    if bad:
        raise ValueError(f"AuthPolicy.{what}: {', '.join(bad)} cannot be an environment variable name")
    return found


def _affixes(what: str, affixes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(affixes, str):
        raise TypeError(f"AuthPolicy.{what} takes a collection of strings, not one string")
    found = set(affixes)
    bad = sorted(repr(a) for a in found if not isinstance(a, str) or not a or "=" in a or "\0" in a)
    if bad:  # an empty prefix would match every variable: that is ``reads_any``
        raise ValueError(f"AuthPolicy.{what}: {', '.join(bad)} is not a usable part of a variable name")
    return tuple(sorted(found))


@dataclass(frozen=True)
class AuthPolicy:
    """Which environment variables a secrets backend may read, and which of them are credentials.

    A secrets backend declares it when it registers (``registry.add_secrets(...,
    auth_policy=AuthPolicy(...))``). The kernel uses it two ways:

    * **Allowlisting**: the provider is built with ``BackendContext.environ`` holding only
      the variables its policy names (``credentials``, ``reads``, variables starting with
      a ``setting_prefixes`` entry and the variables the indirections name). Anything it
      did not declare, it does not see. The default, empty policy sees no variable at all.
    * **Protection**: the variables that are credentials (``credentials``, the settings
      under ``setting_prefixes`` and the indirection targets) of every registered
      backend are kept from jobs, refused as workflow variable names by ``loom check``,
      and refused to ``env://`` references (``SECRETS_ACCESS_DENIED``).

    Names are exact and case-sensitive. The policy holds names only, never values.
    """

    #: Variables that are credentials themselves (``OP_SERVICE_ACCOUNT_TOKEN``,
    #: ``VAULT_TOKEN``): the provider sees them; jobs, workflows and ``env://`` never do.
    credentials: frozenset[str] = frozenset()
    #: Prefixes of the provider's settings variables (``LOOM_KEEPASS_DB_``): every
    #: variable starting with one is visible to the provider and protected like a
    #: credential, since settings say where the credentials are (and a mistyped one may
    #: hold one).
    setting_prefixes: tuple[str, ...] = ()
    #: Suffixes of settings (variables under ``setting_prefixes``) whose value is the
    #: *name* of the variable holding a credential (KeePass's ``_PASSWORD_ENV``): the
    #: named variable, stripped of surrounding whitespace, is visible to the provider
    #: and protected. Lets a user keep a credential in a variable of their choosing.
    indirection_suffixes: tuple[str, ...] = ()
    #: Variables the provider may read that are not credentials (``PATH`` and ``HOME``
    #: to find and run a CLI, a timeout setting): visible to the provider, and still
    #: inherited by jobs as before.
    reads: frozenset[str] = frozenset()
    #: The provider reads arbitrary variables by design (the built-in ``env`` provider):
    #: it gets the whole environment and must itself refuse every variable in
    #: ``BackendContext.protected``. Only for providers whose purpose is reading the
    #: environment; the others list what they read.
    reads_any: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "credentials", _names("credentials", self.credentials))
        object.__setattr__(self, "reads", _names("reads", self.reads))
        object.__setattr__(self, "setting_prefixes", _affixes("setting_prefixes", self.setting_prefixes))
        object.__setattr__(self, "indirection_suffixes", _affixes("indirection_suffixes", self.indirection_suffixes))
        if not isinstance(self.reads_any, bool):
            raise TypeError("AuthPolicy.reads_any must be True or False")
        if self.indirection_suffixes and not self.setting_prefixes:
            raise ValueError(
                "AuthPolicy.indirection_suffixes apply to settings variables: declare their setting_prefixes"
            )

    @property
    def is_empty(self) -> bool:
        """Whether the provider may read no variable at all (the default)."""
        return not (self.credentials or self.setting_prefixes or self.reads or self.reads_any)


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
      backend context, through the indirections the provider documents. The
      backend declares at registration, as an :class:`AuthPolicy`, which
      variables it reads and which are credentials; it is built with
      ``BackendContext.environ`` holding only those (explicit allowlisting),
      and those credentials are kept from jobs and ``env://``.
    * Messages name the reference and the reason, never a value; nothing
      resolved is logged.
    """

    scheme: str
    capabilities: frozenset[str]

    def validate(self, ref: SecretRef) -> None: ...

    def resolve(self, ref: SecretRef) -> SecretValue: ...

    def close(self) -> None: ...
