"""Interrupting `loom run` (SIGINT/SIGTERM): the job is killed, secret files removed, then exit."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import LOOM, clean_env

VALUE = "interrupt-me-secret-51aa"

WORKFLOW = """\
jobs:
  long:
    secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
    script:
      - 'echo "$DATABASE_PASSWORD" > secret.path'
      - 'echo $$ > job.pid'
      - 'sleep 60'
  after: {needs: [long], script: ["touch after.marker"]}
"""


def _wait_for(path: Path, seconds: float = 30.0) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path.name} never appeared")


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_kills_job_removes_files_and_records(
    tmp_path: Path, write_workflow: Callable[..., Path], sig: signal.Signals, code: int
) -> None:
    """The signal to loom kills the job's group, removes the secret files, writes the receipt, exits."""
    write_workflow(WORKFLOW)
    proc = subprocess.Popen(
        [*LOOM, "run", "workflow.yml", "--receipt", "r.json"],
        cwd=tmp_path,
        env=clean_env({"DB_PW": VALUE}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        secret = Path(_wait_for(tmp_path / "secret.path"))
        job_pid = int(_wait_for(tmp_path / "job.pid"))
        assert secret.exists()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert not secret.exists() and not secret.parent.exists()
    time.sleep(0.1)
    assert _gone(job_pid)
    receipt = json.loads((tmp_path / "r.json").read_text())
    assert receipt["status"] == "interrupted"
    assert [j["status"] for j in receipt["jobs"]] == ["interrupted", "skipped"]
    assert not (tmp_path / "after.marker").exists()
    assert (VALUE.encode() in out + err) is False, "value on console"
