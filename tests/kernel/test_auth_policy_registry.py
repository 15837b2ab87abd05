"""Secrets backends register with an AuthPolicy; other kinds take none; bad policies are refused."""

from __future__ import annotations

from typing import Any

import pytest

from loom_core.contracts import BackendContext, Kind
from loom_core.contracts.secrets import AuthPolicy
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.plugins.registry import BackendRegistry
from loom_core.secrets import credentials


def _factory(ctx: BackendContext) -> Any:
    return object()


def test_a_secrets_backend_without_a_policy_gets_the_empty_one() -> None:
    """Explicit allowlisting: no declaration means no variable, never the whole environment."""
    registry = BackendRegistry()
    registry.add_secrets("quiet", _factory)
    spec = registry.get(Kind.SECRETS, "quiet")
    assert spec is not None and spec.auth_policy == AuthPolicy() and spec.auth_policy.is_empty
    assert credentials.allowed_environ(spec.auth_policy, {"PATH": "/bin", "TOKEN": "t-0a1b"}) == {}


def test_a_declared_policy_is_kept_on_the_spec() -> None:
    policy = AuthPolicy(credentials=frozenset({"VAULT_TOKEN"}), reads=frozenset({"HOME"}))
    registry = BackendRegistry()
    registry.add_secrets("vault", _factory, auth_policy=policy)
    spec = registry.get(Kind.SECRETS, "vault")
    assert spec is not None and spec.auth_policy is policy


def test_other_kinds_take_no_policy() -> None:
    registry = BackendRegistry()
    registry.add_storage("mem", _factory)
    spec = registry.get(Kind.STORAGE, "mem")
    assert spec is not None and spec.auth_policy is None
    with pytest.raises(LoomError) as info:
        registry.add_storage("other", _factory, auth_policy=AuthPolicy())
    assert info.value.code is ErrorCode.PLUGIN_INVALID


def test_a_policy_that_is_not_an_auth_policy_is_refused() -> None:
    registry = BackendRegistry()
    with pytest.raises(LoomError) as info:
        registry.add_secrets("vault", _factory, auth_policy={"credentials": ["VAULT_TOKEN"]})  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.PLUGIN_INVALID


@pytest.mark.parametrize(
    "fields",
    [
        {"credentials": "VAULT_TOKEN"},  # one string is not a set of names
        {"reads": frozenset({""})},
        {"credentials": frozenset({"A=B"})},
        {"setting_prefixes": ("",)},  # would match every variable: that is reads_any
        {"indirection_suffixes": ("_ENV",)},  # suffixes of settings, but no settings declared
    ],
)
def test_malformed_policies_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        AuthPolicy(**fields)


def test_policy_is_frozen_and_normalised() -> None:
    policy = AuthPolicy(credentials=["B", "A"], setting_prefixes=["Y_", "X_", "X_"])  # type: ignore[arg-type]
    assert policy.credentials == frozenset({"A", "B"}) and policy.setting_prefixes == ("X_", "Y_")
    with pytest.raises(AttributeError):
        policy.reads_any = True  # type: ignore[misc]


def test_the_first_party_backends_declare_their_policies() -> None:
    """env reads anything; op and keepass list what they read. The host's registry has them."""
    host = PluginHost(environ={})
    env = host.backend(Kind.SECRETS, "env").auth_policy
    assert env is not None and env.reads_any
    op = host.backend(Kind.SECRETS, "op").auth_policy
    assert op is not None and op.credentials == frozenset({"OP_SERVICE_ACCOUNT_TOKEN"})
    assert {"PATH", "HOME", "LOOM_OP_PATH", "LOOM_OP_TIMEOUT_SECONDS", "OP_CONFIG_DIR"} <= op.reads
    keepass = host.backend(Kind.SECRETS, "keepass").auth_policy
    assert keepass is not None and keepass.setting_prefixes == ("LOOM_KEEPASS_DB_",)
    assert set(keepass.indirection_suffixes) == {"_PASSWORD_ENV", "_KEYFILE_ENV"}


def test_protected_names_cover_registered_policies_and_the_baseline() -> None:
    """The baseline (op tokens, KeePass settings and what they name) whatever is registered,
    plus each registered backend's credentials; variables it only reads are not protected."""
    environ = {
        "VAULT_TOKEN": "v",
        "HOME": "/home/x",
        "LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV": "KPW ",
        "KPW": "k",
        "PLAIN": "p",
    }
    vault = AuthPolicy(credentials=frozenset({"VAULT_TOKEN"}), reads=frozenset({"HOME"}))
    names = credentials.protected_names((credentials.BASELINE, vault), environ)
    assert names == {
        "OP_SERVICE_ACCOUNT_TOKEN",
        "OP_CONNECT_TOKEN",
        "LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV",
        "KPW",
        "VAULT_TOKEN",
    }


def test_context_repr_shows_no_protected_value() -> None:
    ctx = BackendContext(environ={"VAULT_TOKEN": "hvs.value-3c4d"}, protected=frozenset({"VAULT_TOKEN"}))
    assert "hvs.value-3c4d" not in repr(ctx) and "protected=<1 names" in repr(ctx)
    assert ctx.is_protected("VAULT_TOKEN") and not ctx.is_protected("PATH")
