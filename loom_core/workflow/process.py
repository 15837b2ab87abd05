"""Run one job process and stream its redacted output: the hot path of ``loom run``.

Both pipes are read in large chunks with ``os.read`` from one selector, each
through its own stream redactor, and written straight to the console sink;
the receipt keeps a bounded tail. A timeout or a signal to ``loom run``
kills the job's whole process group.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loom_core.workflow.receipt import Tail

PIPE_SIZE = 1 << 20
CHUNK = PIPE_SIZE  # one read can take all a full pipe holds
COALESCE_SECONDS = 0.0005
KILL_GRACE_SECONDS = 3.0
POLL_SECONDS = 0.25
ORPHAN_GRACE_SECONDS = 1.0
EXIT_POLL_SECONDS = 0.05  # where no process fd exists: how often to check the main process
_SIGNAL, _EXIT = -1, -2  # selector keys besides the two streams (0, 1)
_F_SETPIPE_SZ = 1031  # Linux fcntl; larger pipes mean fewer, larger reads
_F_GETPIPE_SZ = 1032


class StreamFilter(Protocol):
    """What the runner needs from a stream redactor."""

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


@dataclass
class Outcome:
    """How a process ended: ``exited``, ``timed_out``, ``interrupted`` (with the signal), or
    ``output_failed``: a sink refused the job's output (``failed_stream`` 0 or 1, ``error``)."""

    how: str
    returncode: int
    signal: int | None = None
    failed_stream: int | None = None
    error: str | None = None


class Sink(Protocol):
    """Where a stream's redacted output goes (the console's binary stdout or stderr)."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _Discard:
    """Stands in for a sink that failed, so the other stream and the receipt tails go on."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return None


def _emit(sinks: list[Sink], tails: tuple[Tail, Tail], index: int, out: bytes) -> OSError | None:
    """Write redacted ``out`` to its sink and tail; a failing sink is replaced by a discarding one."""
    tails[index].add(out)
    try:
        sinks[index].write(out)
        sinks[index].flush()
    except OSError as exc:  # the console went away (EPIPE) or its file system is full (ENOSPC)
        sinks[index] = _Discard()
        return exc
    return None


def terminating_signals() -> list[int]:
    """The signals whose default action would end ``loom run`` and that can be caught: each
    must stop the run cleanly (job group killed, secret files removed, receipt written) instead
    of leaving the job and its secrets behind. SIGPIPE is left to EPIPE; fault signals (SIGSEGV,
    SIGBUS, SIGFPE, SIGILL, SIGSYS, SIGTRAP, SIGABRT) to the interpreter."""
    names = (
        "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM",
        "SIGPROF", "SIGIO", "SIGPWR", "SIGXCPU", "SIGXFSZ", "SIGSTKFLT",
    )  # fmt: skip
    found = {int(getattr(signal, name)) for name in names if hasattr(signal, name)}
    low, high = getattr(signal, "SIGRTMIN", None), getattr(signal, "SIGRTMAX", None)
    if low is not None and high is not None:  # real-time signals also terminate by default
        found.update(range(int(low), int(high) + 1))
    return sorted(found & {int(s) for s in signal.valid_signals()})


class SignalWatch:
    """Turns every terminating signal (:func:`terminating_signals`) into a flag plus a wake-up
    byte the selector sees. SIGINT and SIGTERM are always watched; the others only when they
    were not ignored when ``loom run`` started (``nohup`` keeps SIGHUP ignored, and SIGXFSZ,
    which Python ignores, stays an ``EFBIG`` error)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._old: dict[int, object] = {}
        self._old_wakeup = -1

    def _handler(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum

    def install(self) -> None:
        always = (signal.SIGINT, signal.SIGTERM)
        for sig in terminating_signals():
            old = signal.getsignal(sig)
            if old is signal.SIG_IGN and sig not in always:
                continue
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except (OSError, ValueError):  # reserved on this platform
                if sig in always:
                    raise
        self._old_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 512):
                pass

    def uninstall(self) -> None:
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        os.close(self.read_fd)
        os.close(self.write_fd)


_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20  # well above CHUNK and the buffers derived from one read
TRIM_THRESHOLD = 32 << 20


def tune_allocator() -> bool:
    """Keep the stream's chunk-sized buffers on the heap instead of fresh pages per read.

    Each read allocates a few buffers of up to ``CHUNK`` bytes and frees them right
    after. glibc serves blocks that size with ``mmap`` or trims them off the heap
    top when freed, so every chunk paid page faults and kernel zeroing again: about
    5x the CPU of the redaction itself on 256 KiB chunks. Fixed thresholds keep them
    on the heap. Process-wide, so only ``loom run`` (its own process) calls this;
    best effort, a no-op where glibc is absent. Returns whether it applied.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError, ImportError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and ok


def _grow_pipe(fd: int) -> int:
    """Ask for a ``PIPE_SIZE`` pipe; return the capacity it has (0 where it cannot be known).

    The kernel may refuse or shrink the request: above ``/proc/sys/fs/pipe-max-size``,
    or when the user's pipes already hold ``pipe-user-pages-soft`` pages, in which
    case a new pipe gets a single page.
    """
    try:
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
        return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))
    except (OSError, ImportError):
        return 0  # not Linux: the pipe still works, with smaller reads


def coalesce_threshold(capacity: int) -> int:
    """Reads shorter than this, from a pipe of ``capacity`` bytes, are worth a short pause.

    A fast writer hands over small pieces while the reader keeps up; pausing lets
    the pipe fill so the next read is large. The threshold must follow the pipe's
    real size: with a fixed 256 KiB one, a 4 KiB or 64 KiB pipe made every read
    "small", and one pause per pipeful capped the stream at a few MB/s (4 KiB
    pipe) or ~100 MB/s (64 KiB). A quarter of the pipe counts as large; unknown
    capacity: never pause.
    """
    return capacity // 4


def _exit_fd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux pidfd), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the job's main process has exited, leaving it unreaped: a zombie keeps its id,
    which is also the group's, so signalling the group cannot reach a stranger that reused it."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except (AttributeError, ChildProcessError):  # no waitid: reaping is the only way to ask
        return proc.poll() is not None


def _group_leftovers(pgid: int, leader: int) -> bool:
    """Whether a live process other than ``leader`` is still in process group ``pgid``.

    Read from Linux ``/proc`` (zombies count as gone); where that cannot be read, or does not
    show the (unreaped) leader, the answer is yes, so the caller's grace and kill still apply.
    """
    try:
        names = os.listdir("/proc")
        with open(f"/proc/{leader}/stat", "rb"):
            pass
    except OSError:
        return True
    for name in names:
        if not name.isdigit() or int(name) == leader:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                text = fh.read()
        except OSError:  # it exited meanwhile
            continue
        fields = text[text.rfind(b")") + 2 :].split()  # state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _kill_group(proc: subprocess.Popen[bytes], on_kill: Callable[[], None] | None) -> None:
    """SIGTERM the job's group, give it ``KILL_GRACE_SECONDS`` to go (the main process and
    whatever it started), then SIGKILL whatever is left, even when the main process went first."""
    if on_kill is not None:
        with contextlib.suppress(Exception):
            on_kill()
    if proc.returncode is not None:  # reaped: the group's id is no longer ours to signal
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    end = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < end and not (_exited(proc) and not _group_leftovers(proc.pid, proc.pid)):
        time.sleep(EXIT_POLL_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_SECONDS)


def run_streaming(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float | None,
    sinks: tuple[Sink, Sink],
    filters: tuple[StreamFilter, StreamFilter],
    tails: tuple[Tail, Tail],
    watch: SignalWatch | None = None,
    on_start: Callable[[int], None] | None = None,
    on_kill: Callable[[], None] | None = None,
    pass_fds: Sequence[int] = (),
) -> Outcome:
    """Run ``argv`` in its own process group, streaming redacted output until it ends.
    ``pass_fds`` stay open in the job (the secrets directory's lock).

    The job ends when its main process has exited and its pipes are closed.
    Whatever the main process leaves running in its group, holding the pipes or
    not (``cmd >/dev/null 2>&1 &``), gets ``ORPHAN_GRACE_SECONDS`` from the main
    process's exit to finish, then the group is killed. A main process that
    closed its pipes (``exec > log``) is still waited for, under the same
    timeout and signals. The main process is reaped last, so the group's id
    stays its own while the group is signalled.
    """
    if watch is not None and watch.received is not None:
        return Outcome("interrupted", -watch.received, watch.received)
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        bufsize=0,
        pass_fds=tuple(pass_fds),
    )
    assert proc.stdout is not None and proc.stderr is not None
    if on_start is not None:
        on_start(proc.pid)
    deadline = time.monotonic() + timeout if timeout is not None else None
    sel = selectors.DefaultSelector()
    fds = (proc.stdout.fileno(), proc.stderr.fileno())
    thresholds = [0, 0]
    for index, fd in enumerate(fds):
        thresholds[index] = coalesce_threshold(_grow_pipe(fd))
        sel.register(fd, selectors.EVENT_READ, index)
    if watch is not None:
        sel.register(watch.read_fd, selectors.EVENT_READ, _SIGNAL)
    exit_fd = _exit_fd(proc.pid)
    if exit_fd is not None:
        sel.register(exit_fd, selectors.EVENT_READ, _EXIT)
    how = "exited"
    outputs: list[Sink] = list(sinks)
    failed: tuple[int, OSError] | None = None
    open_streams = 2
    read = os.read
    sleep = time.sleep
    exited_at: float | None = None  # when the main process was seen to exit
    next_poll = 0.0  # without an exit fd: when to ask the kernel again
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and exit_fd is None and now >= next_poll:
                next_poll = now + EXIT_POLL_SECONDS
                if _exited(proc):
                    exited_at = now
            if exited_at is not None and not open_streams and not _group_leftovers(proc.pid, proc.pid):
                break
            wait = POLL_SECONDS
            if exited_at is not None:
                wait = exited_at + ORPHAN_GRACE_SECONDS - now
                if wait <= 0:
                    how = "orphaned"  # the group's leftovers, on the pipes or not, outlived the grace
                    break
                if not open_streams:  # nothing left to read: look at the group again soon
                    wait = min(wait, EXIT_POLL_SECONDS)
            elif exit_fd is None:
                wait = min(wait, next_poll - now)
            if deadline is not None:
                wait = min(wait, deadline - now)
                if wait <= 0:
                    how = "timed_out"
                    break
            got = 0
            large = False  # some read took a large share of its pipe: no pause
            for key, _ in sel.select(max(wait, 0.0)):
                index = key.data
                if index == _SIGNAL:
                    assert watch is not None
                    watch.drain()
                    if watch.received is not None:
                        how = "interrupted"
                    continue
                if index == _EXIT:
                    sel.unregister(key.fd)
                    exited_at = time.monotonic()
                    continue
                data = read(key.fd, CHUNK)
                got += len(data)
                large = large or len(data) >= thresholds[index]
                if data:
                    out = filters[index].feed(data)
                else:
                    sel.unregister(key.fd)
                    open_streams -= 1
                    out = filters[index].finish()
                if out and (failure := _emit(outputs, tails, index, out)) is not None:
                    how, failed = "output_failed", (index, failure)
            if how != "exited":
                break
            if got and not large:
                # See coalesce_threshold. Costs at most COALESCE_SECONDS of latency.
                sleep(COALESCE_SECONDS)
        if how == "orphaned":
            # The job ended; what it left running in its group goes with it. The main process
            # is not reaped yet, so the group's id cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        elif how != "exited":
            _kill_group(proc, on_kill)
        if how != "exited":
            for key in list(sel.get_map().values()):
                if key.data in (_SIGNAL, _EXIT):
                    sel.unregister(key.fd)
            _drain_after_kill(sel, fds, outputs, filters, tails)
        returncode = proc.wait()
    finally:
        sel.close()
        if exit_fd is not None:
            os.close(exit_fd)
        if proc.poll() is None:
            _kill_group(proc, on_kill)
        proc.stdout.close()
        proc.stderr.close()
    sig = watch.received if (watch is not None and how == "interrupted") else None
    if how == "output_failed" and failed is not None:
        index, exc = failed
        return Outcome(how, returncode, failed_stream=index, error=f"{type(exc).__name__}: {exc.strerror or exc}")
    return Outcome("exited" if how == "orphaned" else how, returncode, sig)


def _drain_after_kill(
    sel: selectors.BaseSelector,
    fds: tuple[int, int],
    sinks: list[Sink],
    filters: tuple[StreamFilter, StreamFilter],
    tails: tuple[Tail, Tail],
) -> None:
    """Release what the killed group had written; give up after a short grace period."""
    end = time.monotonic() + KILL_GRACE_SECONDS
    live = {fd for fd in fds if fd in {k.fd for k in sel.get_map().values()}}
    while live and time.monotonic() < end:
        for key, _ in sel.select(max(0.0, end - time.monotonic())):
            if key.fd not in live:
                continue
            data = os.read(key.fd, CHUNK)
            index = key.data
            out = filters[index].feed(data) if data else filters[index].finish()
            if not data:
                live.discard(key.fd)
                sel.unregister(key.fd)
            if out:
                _emit(sinks, tails, index, out)
    for fd in live:
        index = fds.index(fd)
        out = filters[index].finish()
        if out:
            _emit(sinks, tails, index, out)
