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


def test_ctrl_c_while_op_resolves_is_an_interruption(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """Ctrl-C reaches the terminal's whole process group, `op` included: the run reports the job as
    interrupted and exits 130 (not a provider failure with exit 1), and the job never starts."""
    import json
    import os
    import signal
    import subprocess
    import time

    from .conftest import LOOM, clean_env

    fake, env = _setup(tmp_path)
    fake.set_delay(60)
    write_workflow(
        """\
        jobs:
          deploy:
            secrets: {API_TOKEN: {ref: "op://ci/deploy/token"}}
            script: ['touch started.marker']
        """
    )
    proc = subprocess.Popen([*LOOM, "run", "workflow.yml", "--receipt", "r.json"], cwd=tmp_path,
                            env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own group, as a terminal's foreground job
    try:
        deadline = time.monotonic() + 60
        while not fake.calls() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.calls(), "op was never called"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (err, (tmp_path / "r.json").read_text())
    job = json.loads((tmp_path / "r.json").read_text())["jobs"][0]
    assert job["status"] == "interrupted"
    assert not (tmp_path / "started.marker").exists()
