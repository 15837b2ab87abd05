"""Backfill over real RocksDB: encrypts legacy rows, persists progress, resumes after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from loom_core.crypto import backfill
from loom_core.crypto.rowcodec import is_sealed

from .helpers import ENV, codec_for, new_key_b64, open_storage

ROWS = 230


def _stream_of(key: bytes, value: bytes) -> str:
    return str(json.loads(value)["stream"])


FAMILIES = [backfill.SealedFamily("chunks", _stream_of), backfill.SealedFamily("graph", _stream_of)]

CRASHING_BACKFILL = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from loom_core.config import LoomConfig
    from loom_core.contracts import BackendContext
    from loom_core.crypto import backfill, build_row_codec
    from loom_core.plugins.host import PluginHost

    path, key, crash_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    environ = {"LOOMEM_AT_REST_MASTER_KEY": key}
    host = PluginHost(environ=environ)
    storage = host.create("storage", "rocksdb",
                          BackendContext(data_dir=Path(path), keyspaces=("chunks", "graph", "keys", "meta")))
    codec = build_row_codec(LoomConfig(), host, storage, environ)
    stream_of = lambda key, value: json.loads(value)["stream"]
    families = [backfill.SealedFamily("chunks", stream_of), backfill.SealedFamily("graph", stream_of)]
    batches = 0

    def progress(view):
        global batches
        batches += 1
        if batches >= crash_after:
            os._exit(9)

    backfill.run(storage, codec, families, batch_size=50, progress=progress)
    """
)


def _legacy_rows(path: Path) -> dict[tuple[str, bytes], bytes]:
    storage = open_storage(path)
    rows = {}
    try:
        for n in range(ROWS):
            family = "chunks" if n % 3 else "graph"
            key = f"row:{n:05d}".encode()
            value = json.dumps({"stream": f"s{n % 4}", "content": f"legacy {n}"}).encode()
            storage.put(family, key, value)
            rows[(family, key)] = value
    finally:
        storage.close()
    return rows


def test_backfill_interrupted_then_resumed(tmp_path: Path) -> None:
    """Proves a backfill killed after a few batches (process exit, no clean shutdown) keeps the
    rows it committed, reports its progress, and a second run resumes from the persisted
    cursor without re-encrypting anything: afterwards every row is sealed and reads back."""
    key = new_key_b64()
    rows = _legacy_rows(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_BACKFILL, str(tmp_path), key, "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    storage = open_storage(tmp_path)
    try:
        codec = codec_for(storage, {ENV: key})
        state = backfill.status(storage)
        assert state["state"] == "running" and state["total"] == ROWS
        assert state["encrypted"] == 100 and state["scanned"] == 100
        sealed_now = sum(is_sealed(v) for f in ("chunks", "graph") for _, v in storage.iterate(f))
        assert sealed_now == 100, "exactly the committed batches are encrypted"
        # legacy and sealed rows both read while the backfill is half done
        for (family, rkey), plain in rows.items():
            stream = json.loads(plain)["stream"]
            assert codec.open(stream, rkey, storage.get(family, rkey)) == plain
        seen: list[dict[str, object]] = []
        result = backfill.run(storage, codec, FAMILIES, batch_size=50, progress=seen.append)
        assert result["state"] == "done"
        assert result["encrypted"] == ROWS and result["scanned"] == ROWS, "resume re-did or skipped rows"
        assert seen and seen[-1]["state"] == "done"
        for (family, rkey), plain in rows.items():
            stored = storage.get(family, rkey)
            assert is_sealed(stored)
            assert codec.open(json.loads(plain)["stream"], rkey, stored) == plain
        again = backfill.run(storage, codec, FAMILIES, batch_size=50)
        assert again["encrypted"] == 0 and again["scanned"] == ROWS, "a second pass must change nothing"
        done = backfill.status(storage)
        assert done["state"] == "done"
        # times in integer ms since the epoch, as everywhere in the API (they were float seconds)
        assert all(isinstance(done[k], int) and done[k] > 10**12 for k in ("started_at", "updated_at", "finished_at"))
    finally:
        storage.close()


def test_backfill_status_before_any_run(tmp_path: Path) -> None:
    """Proves status reports 'never' on a data directory that was never backfilled."""
    storage = open_storage(tmp_path)
    try:
        assert backfill.status(storage)["state"] == "never"
    finally:
        storage.close()


def test_backfill_leaves_no_plaintext_on_disk(tmp_path: Path) -> None:
    """Proves that after a completed backfill no file under the storage directory still holds
    the legacy plaintext (old versions are compacted away), while before it they were there."""
    from .helpers import raw_files_containing

    storage = open_storage(tmp_path, {"compression": "none"})
    try:
        markers = []
        for n in range(40):
            marker = f"LEGACY-MARKER-{n:03d}-{os.urandom(6).hex()}"
            markers.append(marker.encode())
            storage.put("chunks", f"row:{n:03d}".encode(), json.dumps({"stream": "s", "content": marker}).encode())
        storage.flush()
    finally:
        storage.close()
    assert all(raw_files_containing(tmp_path, m) for m in markers), "precondition: plaintext on disk"
    storage = open_storage(tmp_path, {"compression": "none"})
    try:
        codec = codec_for(storage, {ENV: new_key_b64()})
        assert backfill.run(storage, codec, FAMILIES, batch_size=16)["encrypted"] == 40
    finally:
        storage.close()
    left = sum(1 for m in markers if raw_files_containing(tmp_path, m))
    assert left == 0, f"{left} legacy plaintext markers still on disk after the backfill"


class _PlainIterators:
    """A storage whose ``iterate`` returns what the contract promises and no more: an Iterator
    without ``close()`` (a class with ``__next__``, as a non-generator backend may return)."""

    def __init__(self, storage: object) -> None:
        self._storage = storage

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)

    def iterate(self, *args: object, **kwargs: object) -> object:
        rows = list(self._storage.iterate(*args, **kwargs))  # type: ignore[attr-defined]

        class Plain:
            def __iter__(self) -> Plain:
                return self

            def __next__(self) -> tuple[bytes, bytes]:
                if not rows:
                    raise StopIteration
                return rows.pop(0)

        return Plain()


def test_backfill_needs_only_the_iterator_the_contract_promises(tmp_path: Path) -> None:
    """The backfill called ``close()`` on what ``iterate`` returned: a backend returning a plain
    iterator passed the storage kit and then crashed ``loom encryption backfill`` with an
    AttributeError."""
    storage = open_storage(tmp_path, {})
    try:
        for n in range(30):
            storage.put("chunks", f"row:{n:03d}".encode(), json.dumps({"stream": "s", "n": n}).encode())
        plain = _PlainIterators(storage)
        codec = codec_for(storage, {ENV: new_key_b64()})
        assert backfill.run(plain, codec, FAMILIES, batch_size=7)["encrypted"] == 30
        assert all(is_sealed(value) for _, value in storage.iterate("chunks"))
    finally:
        storage.close()
