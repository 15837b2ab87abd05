"""A secrets provider that never answers cannot hold `loom run`: a time limit, and Ctrl-C at once.

The provider is a real installed distribution (a ``*.dist-info`` on ``PYTHONPATH``) whose
``resolve`` blocks for an hour, as a call to an unreachable vault may.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.kernel.fakedist import make_dist

from .conftest import LOOM, clean_env

HANGING_PROVIDER = '''
import time
from pathlib import Path
from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl


class Hanging:
    scheme = "hang"
    capabilities = frozenset()

    def __init__(self, ctx):
        self._mark = Path(ctx.options["mark"])

    def validate(self, ref):
        if ref.scheme != "hang":
            raise LoomError(ErrorCode.SECRETS_REF_INVALID, "not hang://")

    def resolve(self, ref):
        self._mark.write_text("resolving")
        time.sleep(3600)
        return SecretValue(b"never-returned-value")

    def close(self):
        pass


@hookimpl
def loom_register_backends(registry):
    registry.add_secrets("hang", Hanging)
'''

WORKFLOW = """\
jobs:
  deploy:
    secrets: {TOKEN: {ref: "hang://token"}}
    script: ["touch started.marker"]
"""


def _setup(tmp_path: Path, timeout: float) -> dict[str, str]:
    site = tmp_path / "site"
    make_dist(site, "loom-test-hanging", "0.1", {"loom.secrets": {"hang": "loom_test_hanging"}},
              {"loom_test_hanging": HANGING_PROVIDER})
    (tmp_path / "workflow.yml").write_text(WORKFLOW)
    (tmp_path / "loom.toml").write_text(
        f"[secrets]\nresolve_timeout_seconds = {timeout}\n\n"
        f'[secrets.providers.hang]\nmark = "{tmp_path / "resolving.marker"}"\n'
    )
    return clean_env({"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache")})


def _receipt_job(tmp_path: Path) -> dict[str, object]:
    job: dict[str, object] = json.loads((tmp_path / "r.json").read_text())["jobs"][0]
    return job


def test_a_provider_that_never_answers_fails_the_job_after_the_time_limit(tmp_path: Path) -> None:
    env = _setup(tmp_path, timeout=1)
    done = subprocess.run([*LOOM, "run", "workflow.yml", "--config", "loom.toml", "--receipt", "r.json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 1, done.stderr
    assert "error[SECRETS_PROVIDER_FAILED]" in done.stderr and "resolve_timeout_seconds" in done.stderr
    assert (tmp_path / "resolving.marker").exists()  # the provider really was called
    assert not (tmp_path / "started.marker").exists()
    job = _receipt_job(tmp_path)
    assert job["status"] == "error" and job["error"]["code"] == "SECRETS_PROVIDER_FAILED"  # type: ignore[index]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_wait_for_a_provider(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    """Ctrl-C only set a flag that nobody read until the provider returned: an hour here."""
    env = _setup(tmp_path, timeout=3600)
    proc = subprocess.Popen([*LOOM, "run", "workflow.yml", "--config", "loom.toml", "--receipt", "r.json"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "resolving.marker").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "resolving.marker").exists(), "the provider was never called"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert not (tmp_path / "started.marker").exists()
    job = _receipt_job(tmp_path)
    assert job["status"] == "interrupted" and "while this job's secrets were resolved" in str(job["reason"])
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "interrupted"


def test_a_server_key_behind_a_provider_that_never_answers_fails_the_start(tmp_path: Path) -> None:
    """The same for `loom serve` with its API key given as a reference: it waited for ever."""
    env = _setup(tmp_path, timeout=1)
    config = (tmp_path / "loom.toml").read_text()
    (tmp_path / "serve.toml").write_text('[server]\nauth_token_ref = "hang://api-key"\n\n' + config)
    with socket.socket() as probe:  # a port free now; the start fails before it would listen anyway
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = subprocess.run([*LOOM, "serve", "--config", "serve.toml", "--data-dir", "data", "--port", port],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 1, done.stderr
    assert "error[SECRETS_PROVIDER_FAILED]: server.auth_token_ref" in done.stderr
    assert (tmp_path / "resolving.marker").exists()
