"""RocksDB-specific behaviour beyond the shared storage conformance suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from loom_storage_rocksdb.plugin import create
from loom_storage_rocksdb.storage import prefix_upper_bound

from loom_core.contracts import BackendContext
from loom_core.contracts.storage import WriteBatch
from loom_core.errors import ErrorCode, LoomError


def test_prefix_upper_bound() -> None:
    """Proves the exclusive upper bound of a prefix scan skips trailing 0xff bytes correctly."""
    assert prefix_upper_bound(b"") is None
    assert prefix_upper_bound(b"\xff\xff") is None
    assert prefix_upper_bound(b"ab") == b"ac"
    assert prefix_upper_bound(b"a\xff") == b"b"


def test_round_trip_and_batch(tmp_path: Path) -> None:
    """Proves a cross-family batch lands and survives reopening."""
    store = create(BackendContext(data_dir=tmp_path / "db", keyspaces=("chunks", "meta")))
    batch = WriteBatch()
    batch.put("chunks", b"k", b"v")
    batch.put("meta", b"m", b"")
    store.write(batch, durable=True)
    store.close()
    store = create(BackendContext(data_dir=tmp_path / "db", keyspaces=("chunks", "meta")))
    assert store.get("chunks", b"k") == b"v"
    assert store.get("meta", b"m") == b""
    store.close()


def test_second_process_gets_storage_locked(tmp_path: Path) -> None:
    """Proves another process opening the same directory gets STORAGE_LOCKED naming it."""
    data = tmp_path / "db"
    store = create(BackendContext(data_dir=data, keyspaces=("chunks",)))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from loom_core.contracts import BackendContext
        from loom_core.errors import LoomError
        from loom_storage_rocksdb.plugin import create
        try:
            create(BackendContext(data_dir=Path({str(data)!r}), keyspaces=("chunks",)))
        except LoomError as exc:
            print(exc.code, exc.message)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    store.close()
    assert result.stdout.startswith("STORAGE_LOCKED"), result.stdout + result.stderr
    assert str(data) in result.stdout
    assert "Resource temporarily unavailable" not in result.stdout


def test_unknown_option_refused(tmp_path: Path) -> None:
    """Proves a mistyped tuning option is refused with CONFIG_INVALID naming it."""
    with pytest.raises(LoomError) as info:
        create(BackendContext(data_dir=tmp_path, keyspaces=("a",), options={"compresion": "lz4"}))
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "compresion" in info.value.message


def test_unusable_directory_is_storage_io(tmp_path: Path) -> None:
    """Proves a data directory that is a regular file fails with STORAGE_IO naming the path."""
    target = tmp_path / "not-a-dir"
    target.write_bytes(b"x")
    with pytest.raises(LoomError) as info:
        create(BackendContext(data_dir=target, keyspaces=("a",)))
    assert info.value.code is ErrorCode.STORAGE_IO
    assert str(target) in info.value.message


def test_unclosed_iterator_does_not_keep_the_lock(tmp_path: Path) -> None:
    """Proves close() releases the lock even while an iterator is still referenced, so the same
    process can reopen the directory (the engine restarts storage in-process in tests)."""
    store = create(BackendContext(data_dir=tmp_path / "db", keyspaces=("a",)))
    store.put("a", b"k1", b"v")
    store.put("a", b"k2", b"v")
    pending = store.iterate("a")
    next(pending)
    store.close()
    again = create(BackendContext(data_dir=tmp_path / "db", keyspaces=("a",)))
    assert again.get("a", b"k2") == b"v"
    again.close()
    with pytest.raises(LoomError) as info:
        next(pending)
    assert info.value.code is ErrorCode.STORAGE_CLOSED
