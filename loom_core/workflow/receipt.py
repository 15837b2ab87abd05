"""Run receipts: what ran, how it ended, redacted output tails and references; never values."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Bytes of redacted stdout and of stderr kept per job.
TAIL_BYTES = 64 * 1024


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Tail:
    """The last ``limit`` bytes of an already-redacted stream, with the total seen.

    Chunks are kept by reference (``bytes`` are immutable), never copied on the
    hot path: a chunk is dropped once the newer ones alone cover the limit, so
    at most ``limit`` bytes plus one chunk are held.
    """

    __slots__ = ("_chunks", "_kept", "limit", "total")

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self.total = 0
        self._chunks: deque[bytes] = deque()
        self._kept = 0

    def add(self, data: bytes) -> None:
        size = len(data)
        if not size:
            return
        self.total += size
        if size >= self.limit:
            self._chunks.clear()
            self._kept = 0
        self._chunks.append(data if type(data) is bytes else bytes(data))
        self._kept += size
        chunks = self._chunks
        while chunks and self._kept - len(chunks[0]) >= self.limit:
            self._kept -= len(chunks.popleft())

    def to_dict(self) -> dict[str, Any]:
        kept = b"".join(self._chunks)[-self.limit :] if self.limit else b""
        return {
            "bytes": self.total,
            "truncated": self.total > len(kept),
            "tail": kept.decode("utf-8", "replace"),
        }


@dataclass
class JobRecord:
    """One job's line in the receipt."""

    name: str
    status: str = "pending"  # success | failed | timed_out | interrupted | skipped | error
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    image: str | None = None
    command: str = "local"  # local | docker
    secrets: list[dict[str, Any]] = field(default_factory=list)
    stdout: dict[str, Any] = field(default_factory=lambda: Tail().to_dict())
    stderr: dict[str, Any] = field(default_factory=lambda: Tail().to_dict())
    error: dict[str, str] | None = None
    reason: str | None = None


@dataclass
class Receipt:
    """The whole run: id, workflow, timings, outcome and every job."""

    run_id: str
    workflow: str
    workflow_sha256: str
    selected_job: str | None
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    status: str = "running"  # success | failed | error | interrupted
    error: dict[str, str] | None = None
    jobs: list[JobRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["receipt_version"] = 1
        return body


class ReceiptPathRefused(Exception):
    """``--receipt`` names a node that must not be replaced (a directory, socket, block device)."""


@dataclass(frozen=True)
class ReceiptTarget:
    """Where a receipt goes: ``path`` is replaced atomically (a regular file, or nothing yet),
    or ``stream`` is set and ``path`` is written through (a character device, a FIFO, a
    ``/dev/stdout``-style descriptor link): a stream is opened, never created, renamed or chmodded."""

    path: Path
    stream: bool = False


_FD_DIR = re.compile(r"/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/fd")


def _through_descriptor(path: Path) -> bool:
    """Whether ``path`` is, or leads through symlinks to, a ``/proc/<pid>/fd/N`` link
    (``/dev/stdout``, ``/dev/fd/3``): what such a link names is another process's open file,
    which a rename would swap out from under it."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        parent = os.path.realpath(os.path.dirname(current))
        if _FD_DIR.fullmatch(parent):
            return True
        current = os.path.join(parent, os.path.basename(current))
        if not os.path.islink(current):
            return False
        current = os.path.join(parent, os.readlink(current))
    return False


def receipt_target(path: Path) -> ReceiptTarget:
    """Classify ``path`` (symlinks followed). ``ReceiptPathRefused`` for a node that is neither a
    regular file, a character device nor a FIFO."""
    try:
        info = os.stat(path)
    except FileNotFoundError:  # absent, or a symlink to something absent: create the final target
        return ReceiptTarget(Path(os.path.realpath(path)))
    mode = info.st_mode
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return ReceiptTarget(path, stream=True)
    if stat.S_ISREG(mode):
        if _through_descriptor(path):
            return ReceiptTarget(path, stream=True)
        return ReceiptTarget(Path(os.path.realpath(path)))
    kind = "a directory" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else (
        "a block device" if stat.S_ISBLK(mode) else "not a regular file")
    raise ReceiptPathRefused(
        f"it is {kind}: a receipt creates or replaces a regular file, or is written to a character device or a FIFO"
    )


def _write_through(data: bytes, path: Path) -> None:
    """Write ``data`` to an existing character device or FIFO (or descriptor link) as ``>>`` would:
    no create, no truncate, no rename. A FIFO waits for its reader."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_receipt(receipt: Receipt, path: Path, *, interim: bool = False) -> ReceiptTarget:
    """Write ``receipt`` to ``path`` and return where it went.

    A regular file (or a new one) is written atomically, temp file + rename in the directory of
    the symlinks' final target, so a reader never sees half a receipt. A stream (character device,
    FIFO, ``/dev/stdout``) is written through, and only once: an ``interim`` write (the ``running``
    receipt written before the jobs) only checks that it can be opened for writing.
    """
    target = receipt_target(path)
    if target.stream:
        if interim:
            if not os.access(path, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return target
        _write_through(_encode(receipt), path)
        return target
    final = target.path
    final.parent.mkdir(parents=True, exist_ok=True)
    data = _encode(receipt)
    fd, tmp = tempfile.mkstemp(prefix=".receipt-", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(final).st_mode):  # it changed since it was classified
                raise ReceiptPathRefused("it is no longer a regular file; it was not replaced")
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _encode(receipt: Receipt) -> bytes:
    return json.dumps(receipt.to_dict(), indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
