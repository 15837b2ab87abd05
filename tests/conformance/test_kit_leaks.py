"""Tests of the kit's leak helpers (loom_core.testing.leaks and the leak fixtures)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from loom_core.testing.leaks import (
    changed_paths,
    find_forms,
    redaction_variants,
    scan_files,
    scan_paths,
    snapshot_tree,
)


def test_variants_cover_quoted_escaped_and_lines() -> None:
    """Proves a multi-line value with quotes yields raw, quoted, escaped, CRLF and per-line forms."""
    forms = redaction_variants(b'pa"ss\nword-line-two')
    assert forms["raw"] == b'pa"ss\nword-line-two'
    assert forms["double-quoted"] == b'"pa"ss\nword-line-two"'
    assert forms["repr-escaped"] == b'pa"ss\\nword-line-two'
    assert forms["json-escaped"] == b'pa\\"ss\\nword-line-two'
    assert forms["crlf"] == b'pa"ss\r\nword-line-two'
    assert forms["line 2"] == b"word-line-two"
    assert "line 1" not in forms  # too short to search on its own


def test_variants_of_a_value_ending_in_crlf() -> None:
    """Proves a value ending in CRLF is also searched stripped, LF-converted and escaped (how CLIs and logs show it)."""
    patterns = set(redaction_variants(b"tok 'value'-77\r\n").values())
    for form in [
        b"tok 'value'-77",  # stripped
        b"tok 'value'-77\n",  # LF
        b"tok 'value'-77\\r\\n",  # escaped (repr, JSON)
        b"\"tok 'value'-77\r\n\"",  # double-quoted
        b"'tok '\"'\"'value'\"'\"'-77\r\n'",  # shell-quoted
    ]:
        assert form in patterns, form


def test_scan_paths_reads_listed_files_and_skips_locks(tmp_path: Path) -> None:
    """Proves scan_paths scans exactly the files given, skipping lock files (whose fcntl locks an open would drop)."""
    (tmp_path / "cache.bin").write_bytes(b"..marker-88..")
    (tmp_path / "LOCK").write_bytes(b"marker-88")
    (tmp_path / "other").write_bytes(b"marker-88")
    leaks = scan_paths([tmp_path / "cache.bin", tmp_path / "LOCK", tmp_path / "gone"], {"m": b"marker-88"})
    assert [(leak.path.name, leak.marker) for leak in leaks] == [("cache.bin", "m")]


def test_find_forms_reports_labels_only() -> None:
    """Proves find_forms returns the labels of what it found (never the bytes)."""
    forms = redaction_variants("s3cr3t-value\nnext-line-x")
    found = find_forms("error: 's3cr3t-value\\nnext-line-x'", forms)
    assert "repr-escaped" in found
    assert all("s3cr3t" not in label for label in found)


def test_scan_files_reads_raw_bytes(tmp_path: Path) -> None:
    """Proves scan_files finds markers in nested binary files and labels them."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "data.sst").write_bytes(b"\x00\x01plain-marker-77\xff")
    (tmp_path / "clean.log").write_bytes(b"nothing here")
    leaks = scan_files(tmp_path, {"m": b"plain-marker-77"})
    assert [(leak.path.name, leak.marker) for leak in leaks] == [("data.sst", "m")]
    assert "plain-marker-77" not in str(leaks[0])
    assert scan_files(tmp_path, [b"absent"]) == []


def test_changed_paths_respects_allowed_dirs(tmp_path: Path) -> None:
    """Proves snapshots detect new and modified files outside the allowed directories only."""
    (tmp_path / "allowed").mkdir()
    (tmp_path / "old.txt").write_text("1")
    before = snapshot_tree(tmp_path)
    (tmp_path / "allowed" / "db").write_text("x")
    (tmp_path / "stray.tmp").write_text("y")
    (tmp_path / "old.txt").write_text("22")
    changed = changed_paths(before, snapshot_tree(tmp_path), allowed=[tmp_path / "allowed"])
    assert [p.name for p in changed] == ["old.txt", "stray.tmp"]


def test_leak_check_sees_logs_output_and_reprs(secret_leak_check: Any) -> None:
    """Proves the fixture finds a value in DEBUG logs of any logger, stdout, and object reprs."""
    logging.getLogger("deep.module").debug("token=%s", "tok-value-1234")
    print("tok-value-5678")

    class Holder:
        def __repr__(self) -> str:
            return "Holder('tok-value-9999')"

    assert "captured logs: raw" in secret_leak_check.leaks("tok-value-1234")
    assert "captured stdout/stderr: raw" in secret_leak_check.leaks("tok-value-5678")
    assert "object[0] repr: single-quoted" in secret_leak_check.leaks("tok-value-9999", objects=[Holder()])
    assert secret_leak_check.leaks("never-seen-value") == []


def test_leak_scanner_fixture(tmp_path: Path, leak_scanner: Any) -> None:
    """Proves leak_scanner.assert_clean passes on clean files and fails, naming file and label only, on dirty ones."""
    import pytest

    (tmp_path / "rows.bin").write_bytes(b"\x00sealed\x01")
    leak_scanner.assert_clean(tmp_path, {"plaintext": b"plaintext-marker-42"})
    (tmp_path / "wal.log").write_bytes(b"..plaintext-marker-42..")
    with pytest.raises(pytest.fail.Exception) as info:
        leak_scanner.assert_clean(tmp_path, {"plaintext": b"plaintext-marker-42"}, what="storage files")
    message = str(info.value)
    assert "wal.log: contains marker plaintext" in message
    assert ("plaintext-marker-42" in message) is False
