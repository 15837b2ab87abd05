"""A secrets backend is registered under the scheme it serves, so no name is accepted that no
reference could carry (references are matched in lower case, letters, digits and ``-``)."""

from __future__ import annotations

import pytest

from loom_core.contracts import Kind
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.registry import BackendRegistry


def _factory(ctx: object) -> object:
    return object()


@pytest.mark.parametrize("name", ["FCase", "my_vault", "Vault"])
def test_a_secrets_backend_name_no_reference_can_reach_is_refused(name: str) -> None:
    """``FCase`` passed the kit and was listed by `loom plugins`, then every `fcase://` reference
    was PLUGIN_NOT_FOUND (installed: FCase)."""
    with pytest.raises(LoomError) as info:
        BackendRegistry().add_secrets(name, _factory)
    assert info.value.code is ErrorCode.PLUGIN_INVALID and "lower-case" in info.value.message


def test_scheme_names_and_other_kinds_are_accepted() -> None:
    registry = BackendRegistry()
    registry.add_secrets("my-vault2", _factory)
    registry.add_storage("My_Store", _factory)  # other kinds are named in the configuration as given
    assert registry.get(Kind.SECRETS, "my-vault2") is not None
    assert registry.get(Kind.STORAGE, "My_Store") is not None


def test_a_provider_serving_another_scheme_than_its_name_is_refused_at_run_time() -> None:
    """``loom run`` used a provider whose ``scheme`` differed from the backend name it was built by;
    only the kit noticed. The pool refuses it, and closes it."""
    from loom_core.plugins.host import PluginHost
    from loom_core.secrets.providers import ProviderPool

    closed: list[bool] = []

    class Elsewhere:
        scheme = "other"
        capabilities: frozenset[str] = frozenset()

        def validate(self, ref: object) -> None:
            return None

        def resolve(self, ref: object) -> object:
            raise AssertionError("never called")

        def close(self) -> None:
            closed.append(True)

    class Plugin:
        @staticmethod
        def loom_register_backends(registry: BackendRegistry) -> None:
            registry.add_secrets("mine", lambda ctx: Elsewhere())

    host = PluginHost(environ={})
    host.register_plugin(Plugin(), "mismatch-test")
    with pytest.raises(LoomError) as info:
        ProviderPool(host, {}).get("mine")
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_FAILED and "serves 'other'" in info.value.message
    assert closed == [True]
