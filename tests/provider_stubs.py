"""A plugin host holding one throwaway secrets provider whose behaviour a test supplies."""

from __future__ import annotations

from collections.abc import Callable

from loom_core.plugins.host import PluginHost


def _never(ref: object) -> object:
    raise AssertionError("this test must never resolve")


def host_with_provider(
    scheme: str,
    *,
    validate: Callable[[object], None] | None = None,
    resolve: Callable[[object], object] = _never,
) -> PluginHost:
    """A host whose ``scheme`` backend builds a provider serving ``scheme`` with these calls."""

    class Provider:
        capabilities: frozenset[str] = frozenset()

        def __init__(self) -> None:
            self.scheme = scheme

        def validate(self, ref: object) -> None:
            if validate is not None:
                validate(ref)

        def resolve(self, ref: object) -> object:
            return resolve(ref)

        def close(self) -> None:
            return None

    class Plugin:
        @staticmethod
        def loom_register_backends(registry: object) -> None:
            registry.add_secrets(scheme, lambda ctx: Provider())  # type: ignore[attr-defined]

    host = PluginHost(environ={})
    host.register_plugin(Plugin(), f"{scheme}-test")
    return host
