"""Run ``op read`` with a minimal environment and the token outside argv.

The child gets ``PATH``, ``HOME`` and the service account token, plus a short
allowlist of settings ``op`` itself reads (config directory, proxies, CA
bundle, locale). Everything else in the caller's environment — other
secrets above all — stays out. The reference is the only argument besides
the command and ``--no-newline``, so ``ps`` shows nothing sensitive.

The child holds the token for as long as it runs, so none may outlive the
call that started it: each ``op`` runs in a session (process group) of its
own, and the whole group is killed when ``op``'s timeout expires, when the
calling thread is interrupted, and when the provider is closed (which is how
a run that gave up on a call, or got a signal, stops it). The group takes
along whatever the executable started, in case it is a wrapper.

``op``'s own exit is its answer, not the end of its output: a helper it left
behind may hold its stdout open indefinitely. So both pipes are read while ``op``
runs, and once it exits its group is killed and what is already in the pipes
is taken without waiting for EOF.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from loom_core.errors import ErrorCode, LoomError
from loom_secrets_op import errors
from loom_secrets_op.reference import OpRef

TOKEN_VAR = "OP_SERVICE_ACCOUNT_TOKEN"  # noqa: S105 (a variable name, not a value)
OP_PATH_VAR = "LOOM_OP_PATH"
PASSTHROUGH = (
    "OP_CONFIG_DIR",
    "OP_CACHE",
    "OP_INTEGRATION_NAME",
    "OP_INTEGRATION_ID",
    "OP_INTEGRATION_BUILDNUMBER",
    "XDG_CONFIG_HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
)

POLL_INTERVAL = 0.05  # seconds between exit checks where the OS has no pidfd
CHUNK = 65536


@dataclass(frozen=True)
class OpCommand:
    """Where ``op`` is and how long it may take. Holds no credentials."""

    executable: str
    timeout: float


def find_op(configured: str | None, environ: Mapping[str, str]) -> str:
    """The ``op`` executable: option ``op_path``, else ``LOOM_OP_PATH``, else ``op`` on ``PATH``."""
    wanted = configured or environ.get(OP_PATH_VAR, "").strip() or "op"
    source = "option op_path" if configured else (OP_PATH_VAR if environ.get(OP_PATH_VAR) else "PATH")
    if os.sep in wanted:
        path = Path(wanted).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"the 1Password CLI {str(path)!r} (from {source}) does not exist or is not executable; "
            f"install op or point option op_path / {OP_PATH_VAR} at it",
        )
    found = shutil.which(wanted, path=environ.get("PATH", os.defpath))
    if found is None:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"the 1Password CLI {wanted!r} is not on PATH; install op or set option op_path / {OP_PATH_VAR}",
        )
    return found


def child_environ(environ: Mapping[str, str], token: str) -> dict[str, str]:
    env = {"PATH": environ.get("PATH", os.defpath), TOKEN_VAR: token}
    for name in ("HOME", *PASSTHROUGH):
        if name in environ:
            env[name] = environ[name]
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc``'s process group: ``op`` and anything it started.

    Only while ``proc`` is not reaped: until then its pid, which is the group's id, cannot
    belong to another process (the check ``Popen.send_signal`` makes too).
    """
    if proc.returncode is None:
        _kill_process_group(proc.pid)


def _kill_process_group(group: int) -> None:
    """SIGKILL process group ``group`` (``op``'s pid): ``op`` and whatever it started or left behind.

    Called while ``op`` is not yet reaped (its pid, the group's id, cannot belong to another
    process then), also the moment it exits, to end what it left running (a helper it started in
    the background would keep the token in its environment, and op's pipes open). Where there is
    no pidfd to see that exit, ``op`` is reaped by then, but Linux hands out pids cyclically
    (``pid_max``, 4 million by default) and never one that is still a process group's id, so the
    id cannot name another group this soon after ``op`` ended.
    """
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left: the usual case


def _exit_handle(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux 5.3+), else None (then exits are polled for).

    It becomes readable when ``op`` exits, before it is reaped, so its group is killed while its
    pid cannot name another process, and the wait wakes at once instead of at the next poll.
    """
    pidfd_open: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return pidfd_open(pid)
    except OSError:
        return None


def _read_into(fd: int, buf: bytearray) -> int | None:
    """Append a chunk of what ``fd`` (non-blocking) holds to ``buf``: its size, 0 at EOF, None if empty."""
    try:
        chunk = os.read(fd, CHUNK)
    except BlockingIOError:
        return None
    buf += chunk
    return len(chunk)


def _collect(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    """``op``'s stdout and stderr once ``op`` itself has exited, within ``timeout`` seconds.

    Both pipes are read as data arrives, so a full pipe never blocks ``op``. When ``op`` exits,
    its group is killed (a helper it left must not keep the token, nor the pipes open) and the
    pipes are drained without waiting: everything ``op`` wrote is in them by then. Raises
    ``subprocess.TimeoutExpired`` with ``op`` still running; the caller kills it.
    """
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPE
    deadline = time.monotonic() + timeout
    out, err = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out: bytearray(), err: bytearray()}
    pidfd = _exit_handle(proc.pid)
    try:
        with selectors.DefaultSelector() as selector:
            for fd in bufs:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            if pidfd is not None:
                selector.register(pidfd, selectors.EVENT_READ)
            exited = False
            while not exited:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(proc.args, timeout)
                wait = remaining if pidfd is not None else min(remaining, POLL_INTERVAL)
                for key, _ in selector.select(wait):
                    if key.fd == pidfd:
                        exited = True
                    elif _read_into(key.fd, bufs[key.fd]) == 0:
                        selector.unregister(key.fd)
                if pidfd is None:
                    exited = proc.poll() is not None
        _kill_process_group(proc.pid)
        for fd, buf in bufs.items():  # until empty (a killed helper's end may linger) or EOF
            while _read_into(fd, buf):
                pass
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return bytes(bufs[out]), bytes(bufs[err])


class Children:
    """The ``op`` processes in flight, so that closing the provider can kill them.

    ``close`` may run on another thread while a call waits for its ``op`` (a run
    closes its providers after giving up on a call). Once closed, no ``op`` starts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self, argv: list[str], env: dict[str, str], raw: str) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new session; under the lock, so ``close`` cannot miss it."""
        with self._lock:
            if self._closed:
                raise LoomError(
                    ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
                    f"{raw}: the op secrets provider was already closed; op was not started",
                )
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            self._running.add(proc)
            return proc

    def finished(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.discard(proc)

    def close(self) -> None:
        """Kill every ``op`` still running, with its process group; idempotent."""
        with self._lock:
            self._closed = True
            for proc in self._running:
                _kill_group(proc)


def read(command: OpCommand, ref: OpRef, environ: Mapping[str, str], token: str, children: Children) -> bytes:
    """``op read --no-newline REF``: the exact value bytes, or a coded ``LoomError``."""
    argv = [command.executable, "read", "--no-newline", ref.raw]
    try:
        proc = children.start(argv, child_environ(environ, token), ref.raw)
    except OSError as exc:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"{ref.raw}: the 1Password CLI {command.executable!r} could not be started ({type(exc).__name__})",
        ) from None
    with proc:  # on the way out: pipes closed, the (killed or finished) child reaped
        try:
            stdout, stderr = _collect(proc, command.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise LoomError(
                ErrorCode.SECRETS_PROVIDER_FAILED,
                f"{ref.raw}: op read did not finish within {command.timeout:g} s and was stopped",
            ) from None
        except BaseException:  # this thread was interrupted: op must not go on holding the token
            _kill_group(proc)
            raise
        finally:
            children.finished(proc)
    if proc.returncode != 0 and children.closed:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"{ref.raw}: op read was stopped because the op secrets provider was closed",
        )
    if proc.returncode != 0:
        category = errors.classify(stderr, ref)
        raise LoomError(
            category.code,
            f"{ref.raw}: {category.reason} (op exited with status {proc.returncode})",
        )
    if not stdout:
        raise LoomError(
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"{ref.raw}: op returned an empty value; store a value in the field or fix the reference",
        )
    return stdout
