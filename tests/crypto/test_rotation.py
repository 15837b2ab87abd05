"""Master-key rotation: re-wraps data keys only, survives a crash mid-way, resumes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from loom_core.crypto import layout
from loom_core.crypto.masterkey import parse_master_key
from loom_core.crypto.rotation import rotate
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost

from .helpers import ENV, codec_for, new_key_b64, open_storage

STREAMS = [f"s{n:02d}" for n in range(12)]

CRASHING_ROTATION = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from loom_core.contracts import BackendContext
    from loom_core.crypto.masterkey import parse_master_key
    from loom_core.crypto.rotation import rotate
    from loom_core.plugins.host import PluginHost

    path, old, new, crash_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    host = PluginHost(environ={})
    ctx = BackendContext(data_dir=Path(path), keyspaces=("chunks", "graph", "keys", "meta"))
    storage = host.create("storage", "rocksdb", ctx)
    cipher = host.create("cipher", "aes256gcm")

    def progress(done, total):
        if done >= crash_after:
            os._exit(9)  # a crash: no close, no flush

    rotate(storage, cipher, parse_master_key(old, "old"), parse_master_key(new, "new"),
           progress=progress, batch_size=1)
    """
)


def _populate(path: Path, key: str) -> dict[tuple[str, bytes], bytes]:
    storage = open_storage(path)
    try:
        codec = codec_for(storage, {ENV: key})
        rows = {}
        for stream in STREAMS:
            rkey = f"chunk:L0:{stream}".encode()
            rows[(stream, rkey)] = f"content of {stream}".encode()
            storage.put("chunks", rkey, codec.seal(stream, rkey, rows[(stream, rkey)]))
        return rows
    finally:
        storage.close()


def _assert_all_readable(path: Path, key: str, rows: dict[tuple[str, bytes], bytes]) -> None:
    storage = open_storage(path)
    try:
        codec = codec_for(storage, {ENV: key})
        for (stream, rkey), plain in rows.items():
            assert codec.open(stream, rkey, storage.get("chunks", rkey)) == plain
    finally:
        storage.close()


def _start_code(path: Path, key: str) -> ErrorCode | None:
    storage = open_storage(path)
    try:
        codec_for(storage, {ENV: key})
        return None
    except LoomError as exc:
        return exc.code
    finally:
        storage.close()


def _rotate(path: Path, old: str, new: str) -> Any:
    storage = open_storage(path)
    try:
        cipher = PluginHost(environ={}).create("cipher", "aes256gcm")
        return rotate(storage, cipher, parse_master_key(old, "old"), parse_master_key(new, "new"))
    finally:
        storage.close()


def test_rotation_rewraps_keys_not_rows(tmp_path: Path) -> None:
    """Proves rotation leaves every row byte-identical, re-wraps every data key, and afterwards
    only the new key starts the server (the old one is refused as a mismatch)."""
    old, new = new_key_b64(), new_key_b64()
    rows = _populate(tmp_path, old)
    storage = open_storage(tmp_path)
    before_rows = dict(storage.iterate("chunks"))
    before_keys = dict(storage.iterate("keys", prefix=layout.DEK_PREFIX))
    storage.close()
    result = _rotate(tmp_path, old, new)
    assert (result.rewrapped, result.reused, result.already_done) == (len(STREAMS), 0, False)
    storage = open_storage(tmp_path)
    try:
        assert dict(storage.iterate("chunks")) == before_rows, "rotation must not rewrite rows"
        after_keys = dict(storage.iterate("keys", prefix=layout.DEK_PREFIX))
        assert set(after_keys) == set(before_keys)
        assert all(after_keys[k] != before_keys[k] for k in before_keys), "a data key was not re-wrapped"
        assert list(storage.iterate("keys", prefix=layout.STAGED_PREFIX)) == []
        assert storage.get("meta", layout.ROTATION_RECORD) is None
    finally:
        storage.close()
    _assert_all_readable(tmp_path, new, rows)
    assert _start_code(tmp_path, old) == ErrorCode.ENCRYPTION_KEY_MISMATCH
    assert _rotate(tmp_path, old, new).already_done is True, "a second run must be a no-op"


@pytest.mark.parametrize("crash_after", [1, 6, len(STREAMS)])
def test_rotation_interrupted_then_resumed(tmp_path: Path, crash_after: int) -> None:
    """Proves a rotation killed mid-way (a real process exit, no clean shutdown) leaves every
    key readable with the old master key, the new key alone is refused until the rotation is
    finished, and rerunning it resumes (reusing the keys already re-wrapped) and completes."""
    old, new = new_key_b64(), new_key_b64()
    rows = _populate(tmp_path, old)
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_ROTATION, str(tmp_path), old, new, str(crash_after)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    _assert_all_readable(tmp_path, old, rows)  # the old key still opens everything
    if crash_after < len(STREAMS):
        assert _start_code(tmp_path, new) == ErrorCode.ENCRYPTION_KEY_MISMATCH
        result = _rotate(tmp_path, old, new)
        assert result.reused == crash_after and result.rewrapped == len(STREAMS) - crash_after
    else:
        # every key was staged before the crash: the new key alone finishes the rotation
        assert _start_code(tmp_path, new) is None
    _assert_all_readable(tmp_path, new, rows)
    assert _start_code(tmp_path, old) == ErrorCode.ENCRYPTION_KEY_MISMATCH


def test_rotation_with_wrong_old_key_is_refused(tmp_path: Path) -> None:
    """Proves rotate refuses to start when the 'old' key is not the data's key."""
    old = new_key_b64()
    rows = _populate(tmp_path, old)
    with pytest.raises(LoomError) as info:
        _rotate(tmp_path, new_key_b64(), new_key_b64())
    assert info.value.code == ErrorCode.ENCRYPTION_KEY_MISMATCH
    _assert_all_readable(tmp_path, old, rows)


def test_status_with_the_new_key_does_not_finish_an_interrupted_rotation(tmp_path: Path) -> None:
    """`loom encryption status` with the new key finished a rotation whose keys were all staged, after
    which the old key no longer opened the data: a status command that changed it. Status only
    reports the pending rotation now; a start or `rotate` finishes it."""
    import os

    old, new = new_key_b64(), new_key_b64()
    store = tmp_path / "data" / "storage"
    rows = _populate(store, old)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_ROTATION, str(store), old, new, str(len(STREAMS))],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOMEM_")} | {ENV: new}
    status = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "encryption", "status", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "rotation pending:" in status.stdout and "rotation pending:   no" not in status.stdout
    assert "finished an interrupted" not in status.stderr
    _assert_all_readable(store, old, rows)  # still the old key's data: nothing was flipped
    assert _start_code(store, new) is None  # a start with the new key finishes it
    _assert_all_readable(store, new, rows)
