"""Scanning a live RocksDB directory for leaks must not release its lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loom_core.contracts import BackendContext, Kind
from loom_core.plugins.host import PluginHost
from loom_core.testing.leaks import scan_files

SECOND_OPEN = """
import sys
from pathlib import Path
from loom_core.contracts import BackendContext
from loom_core.errors import LoomError
from loom_core.plugins.host import PluginHost
try:
    PluginHost(environ={}).create("storage", "rocksdb",
        BackendContext(data_dir=Path(sys.argv[1]), keyspaces=("chunks",))).close()
    print("OPENED")
except LoomError as exc:
    print(exc.code.value)
"""


def test_scan_of_open_database_keeps_it_locked(tmp_path: Path) -> None:
    """After scan_files reads every file of an open database, a second process still gets STORAGE_LOCKED.

    Fix: scan_files must not open lock files (closing any descriptor of a
    file drops the process's fcntl locks on it).
    """
    data = tmp_path / "db"
    storage = PluginHost(environ={}).create(
        Kind.STORAGE, "rocksdb", BackendContext(data_dir=data, keyspaces=("chunks",))
    )
    try:
        storage.put("chunks", b"k", b"marker-value")
        storage.flush()
        assert (data / "LOCK").exists()
        scan_files(data, {"marker": b"never-present"})
        second = subprocess.run(
            [sys.executable, "-c", SECOND_OPEN, str(data)], capture_output=True, text=True, timeout=60
        )
        assert second.stdout.strip() == "STORAGE_LOCKED", second.stderr
    finally:
        storage.close()


TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "r+b") as f:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("ACQUIRED")
    except OSError:
        print("HELD")
"""


def test_scan_keeps_a_posix_lock_on_a_file_of_any_name(tmp_path: Path) -> None:
    """A backend's lock file named other than RocksDB's or Tantivy's (here ``store.lck``) was read
    and closed by the scan, which dropped the fcntl lock this process held on it: a second server
    could then open the same directory. Locked files are found through /proc/locks now."""
    import fcntl

    lock_path = tmp_path / "store.lck"
    lock_path.write_bytes(b"lock")
    (tmp_path / "data.bin").write_bytes(b"holds the marker-value")
    with lock_path.open("r+b") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        leaks = scan_files(tmp_path, {"marker": b"marker-value"})
        other = subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock_path)], capture_output=True, text=True,
                               timeout=60, check=False)
        assert other.stdout.strip() == "HELD", "the scan released this process's lock"
    assert [leak.path.name for leak in leaks] == ["data.bin"]
