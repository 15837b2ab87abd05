"""Run receipts: what ran, how it ended, redacted output tails and references; never values."""

from __future__ import annotations

import json
import os
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


def write_receipt(receipt: Receipt, path: Path) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a receipt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(receipt.to_dict(), indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=".receipt-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
