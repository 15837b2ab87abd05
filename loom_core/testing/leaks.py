"""Leak checks that never print what they look for.

Helpers the conformance kit and plugin authors share: the forms a secret
takes when it leaks (quoted, ``repr``-escaped, JSON-escaped, line by line),
a raw-byte scan of every file under a directory, and a snapshot diff proving
nothing was written outside the directories a backend was given. Every
report names *where* and *which form* leaked, never the value.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

#: Lines of a multi-line value shorter than this are not searched on their own
#: (a one-character line would match everywhere).
MIN_LINE_FORM = 6


def redaction_variants(value: bytes | str) -> dict[str, bytes]:
    """Every form of ``value`` whose presence in an output counts as a leak.

    Keys are labels safe to print (``"raw"``, ``"repr-escaped"``,
    ``"line 2"``...); values are the byte patterns to search for.
    """
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    forms: dict[str, bytes] = {"raw": raw}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        forms["repr-escaped"] = repr(text)[1:-1].encode("utf-8")
        forms["ascii-escaped"] = ascii(text)[1:-1].encode("ascii")
        forms["json-escaped"] = json.dumps(text)[1:-1].encode("utf-8")
        forms["json-escaped-utf8"] = json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")
        forms["double-quoted"] = b'"' + raw + b'"'
        forms["single-quoted"] = b"'" + raw + b"'"
        forms["shell-quoted"] = shlex.quote(text).encode("utf-8")
        forms["stripped"] = text.strip().encode("utf-8")
    forms["bytes-repr-escaped"] = repr(raw)[2:-1].encode("ascii")
    # An error or log line holding the value base64-encoded leaks it as surely (padding dropped:
    # the value may sit inside longer base64 text).
    forms["base64"] = base64.b64encode(raw).rstrip(b"=")
    forms["base64-urlsafe"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
    if b"\n" in raw or b"\r" in raw:
        forms["crlf"] = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        forms["lf"] = raw.replace(b"\r\n", b"\n")
        forms["newline-escaped"] = raw.replace(b"\r", b"\\r").replace(b"\n", b"\\n")
        for number, line in enumerate(raw.replace(b"\r\n", b"\n").split(b"\n"), start=1):
            if len(line.strip()) >= MIN_LINE_FORM:
                forms[f"line {number}"] = line.strip()
    unique: dict[str, bytes] = {}
    for label, form in forms.items():  # one label per distinct pattern, first wins
        if form and form not in unique.values():
            unique[label] = form
    return unique


def find_forms(haystack: bytes | str, forms: Mapping[str, bytes]) -> list[str]:
    """Labels of the ``forms`` present in ``haystack``."""
    data = haystack.encode("utf-8", "surrogateescape") if isinstance(haystack, str) else haystack
    return [label for label, form in forms.items() if form in data]


@dataclass(frozen=True)
class FileLeak:
    """A marker found in a file; ``marker`` is the caller's label, not the bytes."""

    path: Path
    marker: str

    def __str__(self) -> str:
        return f"{self.path}: contains marker {self.marker}"


#: Lock files hold no data, and opening then closing one in this process would
#: silently release a POSIX (fcntl) lock the process holds on it, e.g. RocksDB's.
#: Files this process holds POSIX locks on are skipped whatever their name
#: (:func:`_posix_locked_inodes`); these names cover systems without /proc/locks.
LOCK_FILES = frozenset({"LOCK", ".tantivy-writer.lock", ".tantivy-meta.lock"})


def _posix_locked_inodes() -> frozenset[int]:
    """Inode numbers of the files this process holds POSIX (fcntl) locks on, from /proc/locks.

    Closing any descriptor of such a file drops the lock, so a scan must not
    open them. Only inode numbers are compared (device numbers are reported
    differently on some file systems): a collision merely skips a file.
    """
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return frozenset()
    pid = str(os.getpid())
    inodes: set[int] = set()
    for line in table.splitlines():
        # "1: POSIX  ADVISORY  WRITE 4242 08:01:131075 0 EOF" (waiters carry "->" and shift)
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "POSIX" and fields[4] == pid:
            with suppress(ValueError, IndexError):
                inodes.add(int(fields[5].rsplit(":", 1)[1]))
    return frozenset(inodes)


def scan_files(root: Path, markers: Mapping[str, bytes] | Iterable[bytes]) -> list[FileLeak]:
    """Read every regular file under ``root`` as raw bytes and report markers found.

    ``markers`` is either ``{label: bytes}`` or a plain iterable of byte
    strings (labelled ``#0``, ``#1``, ... so reports never show them).
    """
    return scan_paths(sorted(walk_files(root)), markers)


def scan_paths(paths: Iterable[Path], markers: Mapping[str, bytes] | Iterable[bytes]) -> list[FileLeak]:
    """:func:`scan_files` for an explicit list of files (lock files are skipped)."""
    labelled = (
        dict(markers)
        if isinstance(markers, Mapping)
        else {f"#{i}": m for i, m in enumerate(markers)}
    )
    leaks: list[FileLeak] = []
    locked = _posix_locked_inodes()
    for path in paths:
        if path.name in LOCK_FILES:
            continue
        try:
            if locked and path.stat().st_ino in locked:
                continue
            data = path.read_bytes()
        except OSError:
            continue  # vanished or unreadable (sockets, locks): nothing to scan
        leaks.extend(FileLeak(path, label) for label, marker in labelled.items() if marker and marker in data)
    return leaks


def walk_files(root: Path) -> Iterable[Path]:
    """Every regular file (not symlink) under ``root``; nothing when ``root`` is absent."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


Snapshot = dict[Path, tuple[int, int]]


def snapshot_tree(root: Path) -> Snapshot:
    """``{path: (size, mtime_ns)}`` of every file under ``root`` (empty if absent)."""
    if not root.exists():
        return {}
    snap: Snapshot = {}
    for path in walk_files(root):
        try:
            st = path.stat()
        except OSError:
            continue
        snap[path] = (st.st_size, st.st_mtime_ns)
    return snap


def changed_paths(before: Snapshot, after: Snapshot, *, allowed: Iterable[Path] = ()) -> list[Path]:
    """Files created or modified between two snapshots, outside ``allowed`` dirs."""
    allowed_dirs = [Path(a).resolve() for a in allowed]
    changed = [p for p, meta in after.items() if before.get(p) != meta]
    return sorted(p for p in changed if not any(_is_within(p.resolve(), a) for a in allowed_dirs))


def _is_within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


__all__ = [
    "FileLeak",
    "Snapshot",
    "changed_paths",
    "find_forms",
    "redaction_variants",
    "scan_files",
    "scan_paths",
    "snapshot_tree",
    "walk_files",
]
