"""No ``op`` outlives its call: the child holds the service account token in its environment.

A call can be given up on (a run's ``secrets.resolve_timeout_seconds``, a signal); the run
then closes its providers, and closing must kill the ``op`` still running, with anything it
started. op's own timeout must take the whole process group too, not only its leader.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loom_secrets_op import cli
from loom_secrets_op.provider import OpProvider
from loom_secrets_op.testing import FakeOp

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/<pid>/environ")

Make = Callable[..., OpProvider]
Failure = Callable[[OpProvider, str], LoomError]
DEADLINE = 30.0  # seconds; only reached when a process survives


def holds_token(pid: int, token: str) -> bool:
    """Whether ``pid`` is a live process with ``token`` in its environment (a zombie has none)."""
    try:
        return token.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def started(token: str) -> Iterator[list[int]]:
    """Pids a test saw start; any still holding the token is killed afterwards, pass or fail."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if holds_token(pid, token):
            os.kill(pid, signal.SIGKILL)


def op_pids(fake_op: FakeOp, wrapper: Path | None) -> list[int]:
    """The stand-in's pid once it has started, and the wrapper's before it."""
    assert wait_until(lambda: bool(fake_op.calls())), "op was never started"
    pids = [int(fake_op.calls()[0]["pid"])]
    if wrapper is not None:
        pids.insert(0, int(wrapper.with_suffix(".pid").read_text()))
    return pids


@pytest.mark.parametrize("wrapped", [False, True], ids=["op", "wrapper-and-child"])
def test_close_kills_op_still_running(
    fake_op: FakeOp, wrapped_op: Path, make_provider: Make, token: str, started: list[int], wrapped: bool
) -> None:
    """close() while a resolve waits on another thread: every process holding the token is gone,
    the resolve fails with a coded error, and a later resolve starts no op."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    fake_op.set_delay(120)
    wrapper = wrapped_op if wrapped else None
    p = make_provider(options={"op_path": str(wrapper or fake_op.path), "timeout_seconds": 600})
    errors: list[BaseException] = []

    def resolve() -> None:
        try:
            p.resolve(SecretRef.parse(ref))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    pids = op_pids(fake_op, wrapper)
    started.extend(pids)
    assert all(holds_token(pid, token) for pid in pids)

    p.close()
    assert wait_until(lambda: not any(holds_token(pid, token) for pid in pids)), "op survived close()"
    worker.join(DEADLINE)
    assert not worker.is_alive(), "resolve still waiting after close()"
    (err,) = errors
    assert isinstance(err, LoomError) and err.code == ErrorCode.SECRETS_PROVIDER_FAILED
    assert ref in err.message and "closed" in err.message
    assert token not in f"{err} {err!r}"

    p.close()  # idempotent
    with pytest.raises(LoomError) as after:
        p.resolve(SecretRef.parse(ref))
    assert after.value.code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE
    assert len(fake_op.calls()) == 1, "op was started after close()"


def test_op_timeout_kills_the_wrappers_child(
    fake_op: FakeOp, wrapped_op: Path, make_provider: Make, failure: Failure, token: str, started: list[int]
) -> None:
    """op's own timeout kills its whole process group: a wrapper's child does not live on."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    fake_op.set_delay(120)
    p = make_provider(options={"op_path": str(wrapped_op), "timeout_seconds": 1})
    err = failure(p, ref)
    pids = op_pids(fake_op, wrapped_op)
    started.extend(pids)
    assert err.code == ErrorCode.SECRETS_PROVIDER_FAILED and "did not finish" in err.message
    assert wait_until(lambda: not any(holds_token(pid, token) for pid in pids)), "op outlived its timeout"


def test_a_helper_op_leaves_behind_is_killed_when_op_exits(
    fake_op: FakeOp, make_provider: Make, token: str, started: list[int], tmp_path: Path
) -> None:
    """An ``op`` that answers and exits but leaves a background process in its group (a caching
    helper, say) must not leave the token running: the group goes when op has answered."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    leftover_pid = tmp_path / "leftover.pid"
    wrapper = tmp_path / "bg" / "op"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nsleep 300 </dev/null >/dev/null 2>&1 &\necho $! > "{leftover_pid}"\n"{fake_op.path}" "$@"\n'
    )
    wrapper.chmod(0o755)
    p = make_provider(options={"op_path": str(wrapper)})
    assert p.resolve(SecretRef.parse(ref)).reveal() == b"pg-password-value"
    pid = int(leftover_pid.read_text())
    started.append(pid)
    assert wait_until(lambda: not holds_token(pid, token)), "a process op left behind still holds the token"
    p.close()


HELPER_TIMEOUT = 60  # op's timeout in the helper tests: far beyond an answer, so only a wait for EOF hits it


@pytest.fixture(params=["pidfd", "polling"])
def exit_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways op's exit is noticed: a pidfd where the OS has one, else polling."""
    if request.param == "polling":
        monkeypatch.setattr(cli, "_exit_handle", lambda pid: None)
    return str(request.param)


def test_op_exit_is_the_answer_though_its_helper_holds_stdout(
    fake_op: FakeOp, make_provider: Make, token: str, started: list[int], tmp_path: Path, exit_watch: str
) -> None:
    """op forks a helper that keeps its stdout open, prints the value and exits 0: the value comes
    back without waiting for the helper (which would be a timeout), and the helper is killed."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    helper_pid = tmp_path / "helper.pid"
    fake_op.leave_helper(helper_pid)
    p = make_provider(options={"op_path": str(fake_op.path), "timeout_seconds": HELPER_TIMEOUT})
    try:
        assert p.resolve(SecretRef.parse(ref)).reveal() == b"pg-password-value"
    finally:
        if helper_pid.exists():
            started.append(int(helper_pid.read_text()))
    (pid,) = started
    assert wait_until(lambda: not holds_token(pid, token)), "the helper op left behind still holds the token"
    p.close()


def test_op_failing_while_its_helper_holds_stdout_is_its_own_error(
    fake_op: FakeOp, make_provider: Make, failure: Failure, token: str, started: list[int], tmp_path: Path,
    exit_watch: str,
) -> None:
    """op forks such a helper and exits 1: its stderr picks the code (not a timeout), stdout and
    stderr text stay out of the error, and the helper is killed."""
    fake_op.put("prod", "db", "password", b"pg-password-value")
    helper_pid = tmp_path / "helper.pid"
    fake_op.leave_helper(helper_pid)
    p = make_provider(options={"op_path": str(fake_op.path), "timeout_seconds": HELPER_TIMEOUT})
    try:
        err = failure(p, "op://prod/nope/password")
    finally:
        if helper_pid.exists():
            started.append(int(helper_pid.read_text()))
    assert err.code == ErrorCode.SECRETS_NOT_FOUND, err.message
    assert "did not finish" not in err.message and "[ERROR]" not in err.message
    (pid,) = started
    assert wait_until(lambda: not holds_token(pid, token)), "the helper op left behind still holds the token"
    p.close()


def test_output_larger_than_a_pipe_buffer(fake_op: FakeOp, make_provider: Make, exit_watch: str) -> None:
    """A value bigger than the pipe buffer comes back whole: the pipes are read while op writes."""
    value = bytes(range(256)) * 4096  # 1 MiB
    ref = fake_op.put("prod", "blob", "file", value)
    p = make_provider(options={"op_path": str(fake_op.path), "timeout_seconds": HELPER_TIMEOUT})
    assert p.resolve(SecretRef.parse(ref)).reveal() == value


def test_close_without_calls_and_a_normal_resolve(fake_op: FakeOp, make_provider: Make) -> None:
    """close() on an idle provider is harmless, before and after a resolve that finished."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    p = make_provider()
    assert p.resolve(SecretRef.parse(ref)).reveal() == b"pg-password-value"
    p.close()
    p.close()


@pytest.mark.parametrize("stop", ["resolve-timeout", "sigterm", "sigint"])
def test_loom_run_leaves_no_op_behind(
    fake_op: FakeOp, wrapped_op: Path, tmp_path: Path, token: str, started: list[int], stop: str
) -> None:
    """`loom run` giving up on op (its resolve time limit, or a signal sent to loom alone, not its
    group) ends with no process holding the token, though op's own timeout is far off."""
    fake_op.put("prod", "db", "password", b"pg-password-value")
    fake_op.set_delay(120)
    work = tmp_path / "work"
    work.mkdir()
    (work / "workflow.yml").write_text(
        'jobs:\n  deploy:\n    secrets: {S: {ref: "op://prod/db/password"}}\n    script: ["touch started.marker"]\n'
    )
    limit = 2 if stop == "resolve-timeout" else 600
    (work / "loom.toml").write_text(
        f"[secrets]\nresolve_timeout_seconds = {limit}\n\n[secrets.providers.op]\ntimeout_seconds = 600\n"
    )
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update({"OP_SERVICE_ACCOUNT_TOKEN": token, "LOOM_OP_PATH": str(wrapped_op),
                "XDG_CACHE_HOME": str(tmp_path / "cache")})
    argv = [sys.executable, "-m", "loom_core.cli.main", "run", "workflow.yml", "--config", "loom.toml",
            "--receipt", "r.json"]
    loom = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pids = op_pids(fake_op, wrapped_op)
        started.extend(pids)
        if stop != "resolve-timeout":
            loom.send_signal(signal.SIGTERM if stop == "sigterm" else signal.SIGINT)
        _, err = loom.communicate(timeout=90)
    finally:
        if loom.poll() is None:
            loom.kill()
            loom.wait()
    expected = {"resolve-timeout": 1, "sigterm": 143, "sigint": 130}[stop]
    assert loom.returncode == expected, err.decode(errors="replace")
    assert not (work / "started.marker").exists()
    assert token.encode() not in err
    assert wait_until(lambda: not any(holds_token(pid, token) for pid in pids)), "op outlived loom run"
