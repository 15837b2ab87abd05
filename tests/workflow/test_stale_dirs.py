"""sweep_stale_dirs: only this user's secrets directories whose owning process is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loom_core.workflow.inject import DIR_PREFIX, sweep_stale_dirs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_directories_of_dead_owners_are_removed(tmp_path: Path) -> None:
    """Dead owner: removed with its files. Live owner, other names, odd names, symlinks: kept."""
    dead = _dead_pid()
    stale = tmp_path / f"{DIR_PREFIX}{dead}-build-abc"
    stale.mkdir(mode=0o700)
    (stale / "TOKEN").write_bytes(b"left-behind-value-1234")
    live = tmp_path / f"{DIR_PREFIX}{os.getpid()}-build-def"
    live.mkdir()
    other = tmp_path / f"loom-build-{dead}"
    other.mkdir()
    odd = tmp_path / f"{DIR_PREFIX}notapid-x"
    odd.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("k")
    link = tmp_path / f"{DIR_PREFIX}{dead}-link-x"
    link.symlink_to(target, target_is_directory=True)
    plain_file = tmp_path / f"{DIR_PREFIX}{dead}-file"
    plain_file.write_text("not a directory")

    assert sweep_stale_dirs(str(tmp_path)) == [stale]
    assert not stale.exists()
    for kept in (live, other, odd, link, plain_file, target / "keep"):
        assert kept.exists(), kept


def test_a_missing_base_directory_is_not_an_error(tmp_path: Path) -> None:
    """Nothing to sweep in a directory that does not exist."""
    assert sweep_stale_dirs(str(tmp_path / "absent")) == []
