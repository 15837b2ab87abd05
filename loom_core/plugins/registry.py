"""The registry plugins fill through ``loom_register_backends``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loom_core.contracts import BackendContext, Kind
from loom_core.contracts.secrets import AuthPolicy, is_provider_scheme
from loom_core.errors import ErrorCode, LoomError

BackendFactory = Callable[[BackendContext], Any]


@dataclass(frozen=True)
class BackendSpec:
    """One backend a plugin offers: how to build it and what it can do."""

    kind: Kind
    name: str
    factory: BackendFactory
    capabilities: frozenset[str] = frozenset()
    description: str = ""
    plugin: str = field(default="", compare=False)  # the registering plugin's name
    #: secrets backends only: the environment variables it may read and which are credentials
    #: (an empty policy when the plugin declared none: it sees no variable); ``None`` for other kinds
    auth_policy: AuthPolicy | None = None
    #: whether the plugin passed ``auth_policy`` itself (the conformance kit requires it)
    auth_policy_declared: bool = field(default=False, compare=False)


class BackendRegistry:
    """Backends by kind and name; one name per kind (tox's ``register.add_*`` shape)."""

    def __init__(self) -> None:
        self._specs: dict[tuple[Kind, str], BackendSpec] = {}
        self.current_plugin = ""

    def add(
        self,
        kind: Kind | str,
        name: str,
        factory: BackendFactory,
        *,
        capabilities: frozenset[str] | set[str] = frozenset(),
        description: str = "",
        auth_policy: AuthPolicy | None = None,
    ) -> None:
        """Register ``factory`` as backend ``name`` of ``kind``.

        A secrets backend may pass ``auth_policy``: the environment variables its provider
        reads and which of them are credentials. Without one it gets the empty policy, and its
        provider is built with no environment variable at all.
        """
        kind = Kind(kind)
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise LoomError(ErrorCode.PLUGIN_INVALID, f"backend name {name!r} must be alphanumeric")
        if kind is Kind.SECRETS and not is_provider_scheme(name):
            # the reference scheme selects the provider by this name: any other registers a provider
            # no reference can reach
            raise LoomError(
                ErrorCode.PLUGIN_INVALID,
                f"secrets backend name {name!r} must be the scheme it serves: lower-case letters, digits and -",
            )
        if not callable(factory):
            raise LoomError(ErrorCode.PLUGIN_INVALID, f"{kind}:{name}: factory is not callable")
        if kind is not Kind.SECRETS and auth_policy is not None:
            raise LoomError(
                ErrorCode.PLUGIN_INVALID,
                f"{kind}:{name}: auth_policy is for secrets backends only; other kinds read the "
                "environment their context gives them",
            )
        declared = auth_policy is not None
        if kind is Kind.SECRETS:
            if auth_policy is None:
                auth_policy = AuthPolicy()
            elif not isinstance(auth_policy, AuthPolicy):
                raise LoomError(
                    ErrorCode.PLUGIN_INVALID,
                    f"secrets backend {name!r}: auth_policy must be a loom_core.contracts.secrets.AuthPolicy, "
                    f"not {type(auth_policy).__name__}",
                )
        key = (kind, name)
        if key in self._specs:
            other = self._specs[key].plugin or "another plugin"
            raise LoomError(
                ErrorCode.PLUGIN_CONFLICT,
                f"{kind} backend {name!r} is registered by {other} and again by "
                f"{self.current_plugin or 'this plugin'}",
            )
        self._specs[key] = BackendSpec(
            kind, name, factory, frozenset(capabilities), description, self.current_plugin, auth_policy, declared
        )

    def add_storage(self, name: str, factory: BackendFactory, **kw: Any) -> None:
        self.add(Kind.STORAGE, name, factory, **kw)

    def add_cipher(self, name: str, factory: BackendFactory, **kw: Any) -> None:
        self.add(Kind.CIPHER, name, factory, **kw)

    def add_index(self, name: str, factory: BackendFactory, **kw: Any) -> None:
        self.add(Kind.INDEX, name, factory, **kw)

    def add_llm(self, name: str, factory: BackendFactory, **kw: Any) -> None:
        self.add(Kind.LLM, name, factory, **kw)

    def add_pii(self, name: str, factory: BackendFactory, **kw: Any) -> None:
        self.add(Kind.PII, name, factory, **kw)

    def add_secrets(self, name: str, factory: BackendFactory, **kw: Any) -> None:
        self.add(Kind.SECRETS, name, factory, **kw)

    def get(self, kind: Kind, name: str) -> BackendSpec | None:
        return self._specs.get((kind, name))

    def specs(self) -> list[BackendSpec]:
        return list(self._specs.values())
