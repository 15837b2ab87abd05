"""Built as runs build it (through the kernel's ProviderPool, its environment cut down to the op
backend's AuthPolicy), the provider still has every variable it reads: the token, LOOM_OP_PATH,
LOOM_OP_TIMEOUT_SECONDS, PATH, and everything op's own allow-listed environment passes on."""

from __future__ import annotations

from pathlib import Path

import pytest
from loom_secrets_op import cli
from loom_secrets_op.plugin import AUTH_POLICY
from loom_secrets_op.testing import FakeOp

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.secrets.providers import ProviderPool


def _pool(environ: dict[str, str]) -> ProviderPool:
    return ProviderPool(PluginHost(environ={}), environ)


def test_everything_op_reads_survives_the_allowlist(fake_op: FakeOp, token: str, tmp_path: Path) -> None:
    """``op`` found through LOOM_OP_PATH (not on PATH), and the child gets HOME and every
    passthrough variable as before; other secrets, including other providers', stay out."""
    passthrough = {name: f"value-of-{name}" for name in cli.PASSTHROUGH}
    environ = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "OP_SERVICE_ACCOUNT_TOKEN": token,
        "LOOM_OP_PATH": str(fake_op.path),
        "LOOM_OP_TIMEOUT_SECONDS": "20",
        **passthrough,
        "AWS_SECRET_ACCESS_KEY": "unrelated-secret-not-for-op",
        "VAULT_TOKEN": "another-providers-token",
    }
    ref = fake_op.put("prod", "db", "password", b"through-the-pool-value-7c2e")
    pool = _pool(environ)
    try:
        provider = pool.get("op")
        assert provider.resolve(SecretRef.parse(ref)).reveal() == b"through-the-pool-value-7c2e"
    finally:
        pool.close()
    [call] = fake_op.calls()
    child = call["env"]
    assert child["OP_SERVICE_ACCOUNT_TOKEN"] == token
    assert child["PATH"] == "/usr/bin:/bin" and child["HOME"] == str(tmp_path / "home")
    assert {k: child.get(k) for k in passthrough} == passthrough
    assert "AWS_SECRET_ACCESS_KEY" not in child and "VAULT_TOKEN" not in child


def test_the_timeout_variable_reaches_the_factory(fake_op: FakeOp, token: str) -> None:
    """LOOM_OP_TIMEOUT_SECONDS is read when the provider is built: an invalid one is reported,
    which it could not be if the allowlist dropped it."""
    environ = {"PATH": "/usr/bin:/bin", "OP_SERVICE_ACCOUNT_TOKEN": token, "LOOM_OP_TIMEOUT_SECONDS": "soon"}
    pool = _pool(environ)
    try:
        with pytest.raises(LoomError) as info:
            pool.get("op")
    finally:
        pool.close()
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_UNAVAILABLE
    assert "LOOM_OP_TIMEOUT_SECONDS" in info.value.message


def test_the_policy_names_the_token_as_the_credential_and_nothing_else() -> None:
    """Only the token is protected (kept from jobs); the other variables op reads are not."""
    assert AUTH_POLICY.credentials == frozenset({"OP_SERVICE_ACCOUNT_TOKEN"})
    assert not AUTH_POLICY.reads_any and not AUTH_POLICY.setting_prefixes
    assert {"PATH", "HOME", "LOOM_OP_PATH", "LOOM_OP_TIMEOUT_SECONDS", *cli.PASSTHROUGH} == AUTH_POLICY.reads
