"""``loom encryption status|rotate`` as a real subprocess on a real data directory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from .helpers import ENV, codec_for, new_key_b64, open_storage


def _loom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOMEM_")} | env
    return subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", *args], capture_output=True, text=True, env=full, timeout=120
    )


def _seed(data_dir: Path, key: str, streams: int = 5) -> str:
    storage = open_storage(data_dir / "storage")
    try:
        codec = codec_for(storage, {ENV: key})
        for n in range(streams):
            codec.seal(f"stream-{n}", b"chunk:L0:x", b"hello")
        return str(codec.fingerprint)
    finally:
        storage.close()


def test_status_reports_fingerprint_not_key(tmp_path: Path) -> None:
    """Proves `loom encryption status` reports active encryption and the fingerprint, never the key."""
    key = new_key_b64()
    fingerprint = _seed(tmp_path, key)
    proc = _loom("encryption", "status", "--data-dir", str(tmp_path), "--format", "json", env={ENV: key})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["enabled"] is True and info["fingerprint"] == fingerprint
    assert info["streams_with_keys"] == 5
    assert (key in proc.stdout + proc.stderr) is False, "the master key was printed"


def test_status_refuses_wrong_key_with_code(tmp_path: Path) -> None:
    """Proves the CLI refuses a wrong key with error[ENCRYPTION_KEY_MISMATCH] naming the expected fingerprint."""
    fingerprint = _seed(tmp_path, new_key_b64())
    wrong = new_key_b64()
    proc = _loom("encryption", "status", "--data-dir", str(tmp_path), env={ENV: wrong})
    assert proc.returncode == 1
    assert "error[ENCRYPTION_KEY_MISMATCH]" in proc.stderr and fingerprint in proc.stderr
    assert (wrong in proc.stdout + proc.stderr) is False, "the wrong key was printed"


def test_rotate_command_with_progress_bar(tmp_path: Path) -> None:
    """Proves `loom encryption rotate --new-key-env NAME` re-wraps every key with a progress bar,
    after which the new key opens the data and the old one is refused."""
    old, new = new_key_b64(), new_key_b64()
    _seed(tmp_path, old)
    proc = _loom("encryption", "rotate", "--data-dir", str(tmp_path), "--new-key-env", "NEW_MASTER",
                 env={ENV: old, "NEW_MASTER": new})
    assert proc.returncode == 0, proc.stderr
    assert "re-wrapping data keys [" in proc.stderr and "100.0%" in proc.stderr
    assert "re-wrapped 5 data keys" in proc.stdout
    assert (old in proc.stdout + proc.stderr or new in proc.stdout + proc.stderr) is False, "a key was printed"
    audit = [line for line in proc.stderr.splitlines() if " audit: " in line]  # the text log format
    assert len(audit) == 1 and "admin.encryption.rotate success" in audit[0], proc.stderr
    after = _loom("encryption", "status", "--data-dir", str(tmp_path), "--format", "json", env={ENV: new})
    assert after.returncode == 0, after.stderr
    refused = _loom("encryption", "status", "--data-dir", str(tmp_path), env={ENV: old})
    assert "error[ENCRYPTION_KEY_MISMATCH]" in refused.stderr


def test_rotate_refuses_malformed_new_key(tmp_path: Path) -> None:
    """Proves a malformed new key is refused before anything is written."""
    old = new_key_b64()
    _seed(tmp_path, old)
    proc = _loom("encryption", "rotate", "--data-dir", str(tmp_path), "--new-key-env", "NEW_MASTER",
                 env={ENV: old, "NEW_MASTER": "c2hvcnQ="})
    assert proc.returncode == 1 and "error[ENCRYPTION_KEY_INVALID]" in proc.stderr
    assert "NEW_MASTER" in proc.stderr


def test_backfill_command_with_progress_bar(tmp_path: Path) -> None:
    """Proves `loom encryption backfill` encrypts every legacy chunk of a stopped server's data
    directory, drawing a progress bar, and the chunks still read back afterwards."""
    from loom_core.config import LoomConfig
    from loom_core.crypto.engine_glue import open_engine
    from loom_core.crypto.rowcodec import is_sealed
    from loom_core.memory.models import ChunkInput
    from loom_core.plugins.host import PluginHost

    engine = open_engine(LoomConfig(), PluginHost(environ={}), tmp_path, {})
    try:
        ids = [c.id for c in engine.add_chunks("legacy", [ChunkInput(content=f"old {n}") for n in range(25)])]
    finally:
        engine.close()
    key = new_key_b64()
    proc = _loom("encryption", "backfill", "--data-dir", str(tmp_path), env={ENV: key})
    assert proc.returncode == 0, proc.stderr
    assert "encrypting rows [" in proc.stderr and "100.0%" in proc.stderr
    assert "backfill done: 25 rows encrypted" in proc.stdout
    audit = [line for line in proc.stderr.splitlines() if " audit: " in line]
    assert len(audit) == 1 and "admin.backfill.encrypt_at_rest success" in audit[0], proc.stderr
    engine = open_engine(LoomConfig(), PluginHost(environ={ENV: key}), tmp_path, {ENV: key})
    try:
        assert all(is_sealed(engine.storage.get("chunks", f"chunk:L0:{i}".encode())) for i in ids)
        assert engine.get_chunk(ids[3]).content == "old 3"
    finally:
        engine.close()


def test_a_restore_that_cannot_open_leaves_nothing_behind_so_it_can_be_retried(tmp_path: Path) -> None:
    """Restoring an encrypted backup with the wrong key fails with BACKUP_FAILED and removes the
    copied files: the retry with the right key used to be refused as "not empty"."""
    from loom_core.cli.datadir import open_memory
    from loom_core.config import LoomConfig
    from loom_core.memory.models import ChunkInput
    from loom_core.plugins.host import PluginHost

    key = new_key_b64()
    with open_memory(LoomConfig(), PluginHost(environ={ENV: key}), tmp_path / "src", create=True) as engine:
        engine.add_chunk("notes", ChunkInput("restore me"))
    made = _loom("backup", "create", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "src"), env={ENV: key})
    assert made.returncode == 0, made.stderr
    for target, existed in ((tmp_path / "absent", False), (tmp_path / "empty", True)):
        if existed:
            target.mkdir()
        wrong = _loom("backup", "restore", str(tmp_path / "bk"), "--data-dir", str(target), env={ENV: new_key_b64()})
        assert wrong.returncode == 1 and "error[BACKUP_FAILED]" in wrong.stderr
        assert "ENCRYPTION_KEY_MISMATCH" in wrong.stderr and "removed again" in wrong.stderr
        assert target.exists() is existed and (not existed or not any(target.iterdir()))
        right = _loom("backup", "restore", str(tmp_path / "bk"), "--data-dir", str(target), env={ENV: key})
        assert right.returncode == 0, right.stderr


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self._terminal = terminal

    def isatty(self) -> bool:
        return self._terminal


def test_the_progress_bar_redraws_only_on_a_terminal() -> None:
    """`loom encryption backfill 2>log` wrote hundreds of carriage-return redraws into the file. Off a
    terminal the bar is one plain line per tenth of the work; on one it is redrawn in place."""
    from loom_core.cli.encryption_cmd import ProgressBar

    for terminal in (False, True):
        stream = _Stream(terminal)
        bar = ProgressBar("encrypting rows", stream=stream)
        for done in range(0, 1001, 5):
            bar.update(done, 1000, "rows", force=True)
        bar.close()
        text = stream.getvalue()
        if terminal:
            assert text.count("\r") == 201 and text.endswith("100.0%  1000/1000 rows\n")
        else:
            assert "\r" not in text and len(text.splitlines()) == 11
            assert text.splitlines()[-1].endswith("100.0%  1000/1000 rows")


def test_a_fast_job_off_a_terminal_still_logs_every_tenth() -> None:
    """Updates faster than the redraw throttle (a quick backfill) printed 3 of the 11 lines to a log."""
    from loom_core.cli.encryption_cmd import ProgressBar

    stream = _Stream(False)
    bar = ProgressBar("encrypting rows", stream=stream)
    for done in range(0, 1001, 5):
        bar.update(done, 1000, "rows")  # not forced: as the backfill reports progress
    bar.close()
    assert [line.split("]")[1].split("%")[0].strip() for line in stream.getvalue().splitlines()] == [
        f"{tenth * 10:.1f}" for tenth in range(11)
    ]
