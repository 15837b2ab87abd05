"""Interrupting `loom run` (SIGINT/SIGTERM): the job is killed, secret files removed, then exit."""

from __future__ import annotations

import contextlib
import json
import os
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


def test_files_left_by_a_killed_run_are_removed_by_the_next_run(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """SIGKILL leaves `loom run` no chance to clean up: its 0600 secret file stays behind. The
    next run (same temp dir) removes that directory, says so, and leaves a live run's alone."""
    write_workflow(WORKFLOW)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = clean_env({"DB_PW": VALUE, "TMPDIR": str(temp)})
    killed = subprocess.Popen([*LOOM, "run", "workflow.yml", "--receipt", "r.json"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        secret = Path(_wait_for(tmp_path / "secret.path"))
        job_pid = int(_wait_for(tmp_path / "job.pid"))
        killed.kill()
        killed.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()
    try:
        assert secret.parent.parent == temp and secret.read_bytes() == VALUE.encode()
        assert secret.parent.name.startswith(f"loom-secrets-{killed.pid}-long-")
        alive = temp / f"loom-secrets-{job_pid}-live-x1"  # a live owner: the orphaned job itself
        alive.mkdir(mode=0o700)
        write_workflow('jobs:\n  quick: {script: ["true"]}\n', name="next.yml")
        done = subprocess.run([*LOOM, "run", "next.yml", "--receipt", "n.json"], cwd=tmp_path, env=env,
                              capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert not secret.parent.exists()
        assert alive.is_dir()
        assert b"removed 1 secrets directory left by runs that were killed" in done.stderr
        assert VALUE.encode() not in done.stdout + done.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job_pid, signal.SIGKILL)
