"""Every built-in backend is found and built through its entry point, exactly like an external plugin."""

from __future__ import annotations

from importlib.metadata import distribution

import pytest

from loom_core.contracts import BackendContext, Kind
from loom_core.contracts.cipher import Cipher
from loom_core.contracts.llm import LLM
from loom_core.contracts.pii import PIIFilter
from loom_core.contracts.secrets import SecretsProvider
from loom_core.plugins.host import PluginHost

PROTOCOLS: dict[Kind, type] = {
    Kind.CIPHER: Cipher,
    Kind.LLM: LLM,
    Kind.PII: PIIFilter,
    Kind.SECRETS: SecretsProvider,
}
EXPECTED = {("cipher", "aes256gcm"), ("pii", "regex"), ("secrets", "env"), ("llm", "hash")}


def _builtin_entry_points() -> list[tuple[str, str, str]]:
    return sorted(
        (ep.group.removeprefix("loom."), ep.name, ep.value)
        for ep in distribution("loom-framework").entry_points
        if ep.group.startswith("loom.")
    )


def test_expected_builtins_are_declared() -> None:
    """Proves loom-framework declares the four built-ins as entry points (so discovery finds them)."""
    declared = {(kind, name) for kind, name, _ in _builtin_entry_points()}
    assert declared >= EXPECTED, f"missing entry points: {sorted(EXPECTED - declared)}"


@pytest.mark.parametrize(("kind", "name", "target"), _builtin_entry_points())
def test_builtin_created_through_host(kind: str, name: str, target: str) -> None:
    """Proves PluginHost().create(kind, name) loads the entry point and returns an object of the kind's contract.

    Fix: the module named by the entry point must register, in
    ``loom_register_backends``, a backend of that kind under the entry point's name.
    """
    assert target.startswith("loom_core.builtins."), f"{kind}:{name} points outside loom_core.builtins"
    host = PluginHost(environ={})
    backend = host.create(kind, name, BackendContext())
    assert isinstance(backend, PROTOCOLS[Kind(kind)]), f"{kind}:{name} does not satisfy its contract"
    spec = host.backend(kind, name)
    assert frozenset(backend.capabilities) <= spec.capabilities, "instance claims capabilities the spec lacks"
    close = getattr(backend, "close", None)
    if close is not None:
        close()
