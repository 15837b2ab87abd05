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
