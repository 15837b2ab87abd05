"""Run receipts: what ran, how it ended, redacted output tails and references; never values."""

from __future__ import annotations

import json
import os
import tempfile
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

    Appending is amortised O(chunk): the buffer is trimmed only when it has
    grown to twice the limit, which keeps the runner's hot path cheap.
    """

    __slots__ = ("_buf", "limit", "total")

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if len(data) >= self.limit:
            self._buf[:] = data[-self.limit :]
            return
        self._buf += data
        if len(self._buf) > 2 * self.limit:
            del self._buf[: -self.limit]

    def to_dict(self) -> dict[str, Any]:
        kept = bytes(self._buf[-self.limit :])
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
