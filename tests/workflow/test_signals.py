"""Interrupting `loom run` (SIGINT, SIGTERM, SIGHUP and every other terminating signal): the job is killed,
secret files removed, the receipt written, then exit 128 + signal."""

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


@pytest.mark.parametrize("closes_output", [False, True], ids=["streaming", "exec-to-log"])
@pytest.mark.parametrize(
    ("sig", "code"),
    [
        (signal.SIGINT, 130),
        (signal.SIGTERM, 143),
        # A closed terminal or SSH session sends SIGHUP; these used to kill loom alone, leaving the
        # job (in its own session) running, its secrets directory on disk and the receipt at running.
        (signal.SIGHUP, 129),
        (signal.SIGQUIT, 131),
        (signal.SIGUSR1, 138),
        (signal.SIGUSR2, 140),
        (signal.SIGALRM, 142),
    ],
    ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v),
)
def test_signal_kills_job_removes_files_and_records(
    tmp_path: Path, write_workflow: Callable[..., Path], sig: signal.Signals, code: int, closes_output: bool
) -> None:
    """The signal to loom kills the job's group, removes the secret files, writes the receipt, exits;
    also when the job has closed its pipes (``exec > log``) and loom only waits for it to exit."""
    redirect = "      - 'exec > job.log 2>&1'\n      - 'echo yes > redirected.txt'\n      - 'sleep 60'\n"
    write_workflow(WORKFLOW.replace("      - 'sleep 60'\n", redirect) if closes_output else WORKFLOW)
    proc = subprocess.Popen(
        [*LOOM, "run", "workflow.yml", "--receipt", "r.json"],
        cwd=tmp_path,
        env=clean_env({"DB_PW": VALUE}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    job_pid = None
    try:
        secret = Path(_wait_for(tmp_path / "secret.path"))
        job_pid = int(_wait_for(tmp_path / "job.pid"))
        if closes_output:
            _wait_for(tmp_path / "redirected.txt")  # loom is now only waiting for the job to exit
        assert secret.exists()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        deadline = time.monotonic() + 15
        while not _gone(job_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        job_left = not _gone(job_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        if job_pid is not None and not _gone(job_pid):  # a failing run must not leave its job behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job_pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert not job_left, "the job outlived loom run"
    assert not secret.exists() and not secret.parent.exists()
    receipt = json.loads((tmp_path / "r.json").read_text())
    assert receipt["status"] == "interrupted"
    assert [j["status"] for j in receipt["jobs"]] == ["interrupted", "skipped"]
    assert not (tmp_path / "after.marker").exists()
    assert (VALUE.encode() in out + err) is False, "value on console"


def test_sighup_ignored_at_start_stays_ignored(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """`nohup loom run ...`: SIGHUP was ignored when loom started, so it does not stop the run."""
    write_workflow(
        "jobs:\n  wait:\n    script:\n      - 'echo $$ > job.pid'\n"
        "      - 'while [ ! -e go ]; do sleep 0.05; done'\n"
    )
    proc = subprocess.Popen(
        [*LOOM, "run", "workflow.yml", "--receipt", "r.json"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    try:
        _wait_for(tmp_path / "job.pid")
        proc.send_signal(signal.SIGHUP)
        (tmp_path / "go").touch()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "success"


def test_files_left_by_a_killed_run_are_removed_once_its_job_is_gone(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """SIGKILL leaves `loom run` no chance to clean up: its 0600 secret file stays behind, and its job
    keeps running. A later run leaves the directory while that job lives (the job holds the directory's
    lock), and removes it, saying so, once the job is gone too."""
    write_workflow(WORKFLOW)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = clean_env({"DB_PW": VALUE, "TMPDIR": str(temp)})
    killed = subprocess.Popen([*LOOM, "run", "workflow.yml", "--receipt", "r.json"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job_pid = None
    try:
        secret = Path(_wait_for(tmp_path / "secret.path"))
        job_pid = int(_wait_for(tmp_path / "job.pid"))
        killed.kill()
        killed.wait(timeout=30)
        assert secret.parent.parent == temp and secret.read_bytes() == VALUE.encode()
        assert secret.parent.name.startswith("loom-secrets-long-")
        write_workflow('jobs:\n  quick: {script: ["true"]}\n', name="next.yml")

        def next_run() -> subprocess.CompletedProcess[bytes]:
            done = subprocess.run([*LOOM, "run", "next.yml", "--receipt", "n.json"], cwd=tmp_path, env=env,
                                  capture_output=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            assert VALUE.encode() not in done.stdout + done.stderr
            return done

        first = next_run()
        assert secret.exists(), "the orphaned job still runs and may still read its secret file"
        assert b"removed" not in first.stderr
        os.killpg(job_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not _gone(job_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = next_run()
        assert not secret.parent.exists()
        assert b"removed 1 secrets directory left by runs that were killed" in second.stderr
    finally:
        if killed.poll() is None:
            killed.kill()
        if job_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job_pid, signal.SIGKILL)
