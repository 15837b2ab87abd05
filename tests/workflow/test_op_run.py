"""End to end with the 1Password provider and its stand-in `op` CLI: op:// through `loom run`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loom_secrets_op.testing import FakeOp

from loom_core.errors import ErrorCode

from .conftest import run_inprocess

TOKEN = "ops_service-account-token-for-tests"
VALUE = b"op-api-token-value-5d2e"


def _setup(tmp_path: Path) -> tuple[FakeOp, dict[str, str]]:
    fake = FakeOp(tmp_path / "op")
    fake.grant(TOKEN, ["ci"])
    fake.put("ci", "deploy", "token", VALUE)
    fake.put("prod", "deploy", "token", b"prod-only-value-000")
    return fake, {"OP_SERVICE_ACCOUNT_TOKEN": TOKEN, "LOOM_OP_PATH": str(fake.path)}


def test_op_secret_direct_injection_and_token_not_inherited(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """file: false puts the value in the variable; the service-account token never reaches the job."""
    _, env = _setup(tmp_path)
    path = write_workflow(
        """\
        jobs:
          deploy:
            secrets:
              API_TOKEN: {ref: "op://ci/deploy/token", file: false}
            script:
              - 'printf %s "$API_TOKEN" | sha256sum | cut -d" " -f1 > env.sha'
              - 'env > env.txt'
              - 'echo "token: $API_TOKEN"'
        """
    )
    result: Any
    result, out, err = run_inprocess(path, env)
    assert result.exit_code == 0, err
    assert (tmp_path / "env.sha").read_text().strip() == hashlib.sha256(VALUE).hexdigest()
    assert out == b"token: [REDACTED:SECRET_API_TOKEN]\n"
    assert (TOKEN in (tmp_path / "env.txt").read_text()) is False, "service-account token inherited"
    receipt = (tmp_path / "receipt.json").read_bytes()
    assert (VALUE in receipt) is False and (TOKEN.encode() in receipt) is False


def test_forbidden_vault_fails_before_the_job(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """A vault the token may not read: a SECRETS_* code naming the reference; the job never ran."""
    _, env = _setup(tmp_path)
    path = write_workflow(
        'jobs:\n  a: {secrets: {T: {ref: "op://prod/deploy/token"}}, script: ["touch a.marker"]}\n'
    )
    result: Any
    result, _, _ = run_inprocess(path, env)
    assert result.error.code == ErrorCode.SECRETS_ACCESS_DENIED
    assert "op://prod/deploy/token" in result.error.message
    assert not (tmp_path / "a.marker").exists()
