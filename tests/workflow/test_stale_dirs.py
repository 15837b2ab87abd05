"""sweep_stale_dirs: only this user's secrets directories whose lock nobody holds any more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loom_core.contracts.secrets import SecretValue
from loom_core.workflow.graph import build_workflow
from loom_core.workflow.inject import DIR_PREFIX, LOCK_NAME, SecretFiles, sweep_stale_dirs

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def _secrets_dir(base: Path, name: str, *, lock: bool = True) -> Path:
    directory = base / f"{DIR_PREFIX}{name}"
    directory.mkdir(mode=0o700)
    (directory / "TOKEN").write_bytes(b"left-behind-value-1234")
    if lock:
        (directory / LOCK_NAME).touch()
    return directory


def test_a_directory_is_removed_only_once_nobody_holds_its_lock(tmp_path: Path) -> None:
    """A lock held by another live process (a run, or the job a killed run left) keeps the
    directory; when that process exits the kernel drops the lock and the next sweep removes it."""
    held = _secrets_dir(tmp_path, "build-held")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(held / LOCK_NAME)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        assert sweep_stale_dirs(str(tmp_path)) == []
        assert (held / "TOKEN").exists()
    finally:
        holder.communicate(timeout=30)
    assert sweep_stale_dirs(str(tmp_path)) == [held]
    assert not held.exists()


def test_only_this_runs_kind_of_directory_is_touched(tmp_path: Path) -> None:
    """Unlocked: removed. No lock file (being created, or not ours), other names, symlinks and
    plain files: kept."""
    stale = _secrets_dir(tmp_path, "build-stale")
    unlocked_file_missing = _secrets_dir(tmp_path, "build-new", lock=False)
    other = tmp_path / "loom-build-abc"
    other.mkdir()
    (other / LOCK_NAME).touch()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / LOCK_NAME).touch()
    link = tmp_path / f"{DIR_PREFIX}link"
    link.symlink_to(target, target_is_directory=True)
    plain_file = tmp_path / f"{DIR_PREFIX}file"
    plain_file.write_text("not a directory")

    assert sweep_stale_dirs(str(tmp_path)) == [stale]
    for kept in (unlocked_file_missing, other, link, plain_file, target / LOCK_NAME):
        assert kept.exists(), kept


def test_a_run_holds_its_own_directory_until_the_job_ends(tmp_path: Path) -> None:
    """SecretFiles locks its directory before any secret is written; a sweep meanwhile keeps it,
    and leaving the context removes it and releases the lock."""
    job = build_workflow({"jobs": {"deploy": {"script": ["true"], "secrets": {"TOKEN": {"ref": "env://T"}}}}}).jobs[
        "deploy"
    ]
    with SecretFiles(job, {"TOKEN": SecretValue(b"held-secret-value-77aa")}, str(tmp_path)) as files:
        assert files.directory is not None and files.lock_fd is not None
        assert sweep_stale_dirs(str(tmp_path)) == []
        assert files.paths["TOKEN"].read_bytes() == b"held-secret-value-77aa"
        directory = files.directory
    assert not directory.exists()
    assert files.lock_fd is None


def test_a_missing_base_directory_is_not_an_error(tmp_path: Path) -> None:
    """Nothing to sweep in a directory that does not exist."""
    assert sweep_stale_dirs(str(tmp_path / "absent")) == []
