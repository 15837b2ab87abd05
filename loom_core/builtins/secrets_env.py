"""The ``env`` secrets provider: ``env://NAME`` reads a variable of the runtime environment.

The environment is the one in the :class:`BackendContext` (never
``os.environ`` directly), so a run resolves exactly what its launcher passed
in. A variable that is unset, or set to the empty string, fails closed with
``SECRETS_NOT_FOUND`` / ``SECRETS_VALUE_UNSAFE``; nothing falls back.

It reads arbitrary variables by design (``AuthPolicy(reads_any=True)``), so it
is the one provider that must itself refuse the variables that are secrets
providers' credentials or settings: ``BackendContext.protected`` (every
registered backend's policy, evaluated over the run's environment) and, as a
baseline, the first-party providers' variables. Those are ``SECRETS_ACCESS_DENIED``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import AuthPolicy, SecretRef, SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.registry import BackendRegistry
from loom_core.secrets.credentials import BASELINE, protected_names, protected_prefixes

SCHEME = "env"
#: ``env://NAME`` reads whatever variable a workflow names: the whole environment, less the
#: protected variables this provider refuses itself.
AUTH_POLICY = AuthPolicy(reads_any=True)
#: POSIX portable environment variable names.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvSecretsProvider:
    """Resolves ``env://NAME`` from a fixed environment mapping."""

    scheme = SCHEME
    capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        environ: Mapping[str, str],
        protected: frozenset[str] = frozenset(),
        prefixes: tuple[str, ...] = (),
    ) -> None:
        self._environ = environ
        # the baseline too, so a provider built without a kernel context still refuses them
        self._protected = protected | protected_names((BASELINE,), environ)
        self._prefixes = tuple(sorted({*prefixes, *protected_prefixes((BASELINE,))}))
        self._closed = False

    def __repr__(self) -> str:
        return f"EnvSecretsProvider(scheme={SCHEME!r}, closed={self._closed})"

    def validate(self, ref: SecretRef) -> None:
        """Check ``ref`` is ``env://NAME`` with a portable name; reads no variable."""
        if ref.scheme != SCHEME:
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                f"{ref.raw!r} has scheme {ref.scheme!r}; the env provider serves only env://NAME",
            )
        if ref.fragment is not None:
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                f"{ref.raw!r}: env references take no #field; use env://NAME",
            )
        if not _NAME.fullmatch(ref.path):
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                f"{ref.raw!r}: {ref.path!r} is not a variable name "
                "(letters, digits and _, not starting with a digit)",
            )
        if ref.path in self._protected or ref.path.startswith(self._prefixes):
            raise _credential(ref)

    def resolve(self, ref: SecretRef) -> SecretValue:
        """The variable's value as UTF-8 bytes, or a ``SECRETS_*`` error."""
        self.validate(ref)
        if self._closed:
            raise LoomError(ErrorCode.SECRETS_PROVIDER_UNAVAILABLE, f"{ref.raw}: the env provider is closed")
        value = self._environ.get(ref.path)
        if value is None:
            raise LoomError(
                ErrorCode.SECRETS_NOT_FOUND,
                f"{ref.raw}: environment variable {ref.path} is not set; export it before the run",
            )
        if value == "":
            raise LoomError(
                ErrorCode.SECRETS_VALUE_UNSAFE,
                f"{ref.raw}: environment variable {ref.path} is set but empty",
            )
        return SecretValue(value.encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        self._closed = True


def _credential(ref: SecretRef) -> LoomError:
    return LoomError(
        ErrorCode.SECRETS_ACCESS_DENIED,
        f"{ref.raw}: {ref.path} holds a secrets provider's own credential or setting, which workflows "
        "may not read (jobs never get it); give the job its own credential in another variable",
    )


def create(ctx: BackendContext) -> EnvSecretsProvider:
    """Factory: the provider takes no options (it has nothing to configure)."""
    if ctx.options:
        unknown = ", ".join(sorted(map(str, ctx.options)))
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"the env secrets provider takes no options (got: {unknown}); remove them",
        )
    return EnvSecretsProvider(ctx.environ, ctx.protected, ctx.protected_prefixes)


@hookimpl
def loom_register_backends(registry: BackendRegistry) -> None:
    registry.add_secrets(
        SCHEME,
        create,
        capabilities=EnvSecretsProvider.capabilities,
        description="env://NAME: a variable of the run's environment",
        auth_policy=AUTH_POLICY,
    )
