"""``--receipt PATH`` that is not a plain file: symlinks are followed, character devices and FIFOs
are written through (never replaced or chmodded), other nodes are refused before any job runs.

Every test works on nodes inside ``tmp_path`` (a symlink to ``/dev/null``, a private copy of the
null device), so code that replaced the node, as ``loom run`` used to, destroys nothing real."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loom_core.errors import ErrorCode

from .conftest import LOOM, clean_env, run_inprocess

WORKFLOW = "jobs:\n  a: {script: ['echo job-output', 'touch ran.marker']}\n"


def test_a_symlink_is_followed_and_its_target_replaced(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """The receipt lands in the link's final target (through two links); the links stay links."""
    path = write_workflow(WORKFLOW)
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "r.json"
    target.write_text("old")
    (tmp_path / "mid.json").symlink_to(target)
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "mid.json")
    result: Any
    result, _, err = run_inprocess(path, {}, receipt=link)
    assert result.exit_code == 0, err
    assert link.is_symlink() and (tmp_path / "mid.json").is_symlink()
    assert json.loads(target.read_text())["status"] == "success"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list((tmp_path / "store").glob(".receipt-*")) and not list(tmp_path.glob(".receipt-*"))


def test_a_dangling_symlink_creates_its_target(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    path = write_workflow(WORKFLOW)
    target = tmp_path / "runs" / "deep" / "r.json"
    link = tmp_path / "r.json"
    link.symlink_to(target)
    result: Any
    result, _, err = run_inprocess(path, {}, receipt=link)
    assert result.exit_code == 0, err
    assert link.is_symlink() and json.loads(target.read_text())["status"] == "success"


def test_a_symlink_to_dev_null_discards_the_receipt_and_keeps_the_link(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """``--receipt`` naming ``/dev/null`` (here through a link) means no receipt: the run goes on,
    and neither the link nor the device is replaced."""
    path = write_workflow(WORKFLOW)
    link = tmp_path / "r.json"
    link.symlink_to(os.devnull)
    result: Any
    result, _, err = run_inprocess(path, {}, receipt=link)
    assert result.exit_code == 0 and result.error is None, err
    assert (tmp_path / "ran.marker").exists()
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_character_device_is_written_through_never_replaced(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A character device node given directly (a private copy of the null device, so that the
    old behaviour, replacing it with a 0600 regular file, harms nothing) stays that device."""
    path = write_workflow(WORKFLOW)
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    result: Any
    result, _, err = run_inprocess(path, {}, receipt=device)
    assert result.exit_code == 0 and result.error is None, err
    info = os.lstat(device)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(info.st_mode) == 0o666 & ~_umask(), "the device's mode was changed"
    assert not list(tmp_path.glob(".receipt-*"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_fifo_gets_the_final_receipt_once(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """A FIFO is opened and written, not replaced; it gets one receipt, the final one (the
    interim ``running`` receipt is not sent down a stream that cannot take it back)."""
    path = write_workflow(WORKFLOW)
    fifo = tmp_path / "receipt.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there: the writer does not wait
    try:
        result: Any
        result, _, err = run_inprocess(path, {}, receipt=fifo)
        chunks = []
        while True:
            try:
                data = os.read(reader, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(reader)
    assert result.exit_code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    body = json.loads(b"".join(chunks))  # exactly one JSON document
    assert body["status"] == "success" and body["run_id"] == result.receipt.run_id


@pytest.mark.parametrize("stdout_is", ["pipe", "file"])
def test_a_link_to_dev_stdout_appends_the_receipt_to_stdout(
    tmp_path: Path, write_workflow: Callable[..., Path], stdout_is: str
) -> None:
    """``--receipt`` naming ``/dev/stdout`` (through a link here) writes the receipt after the
    job's output, whether stdout is a pipe or a file: that file is appended to, not replaced."""
    write_workflow(WORKFLOW)
    link = tmp_path / "r.json"
    link.symlink_to("/dev/stdout")
    out_file = tmp_path / "out.txt"
    with out_file.open("wb") as sink:
        proc = subprocess.run(
            [*LOOM, "run", "workflow.yml", "--receipt", str(link)],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_is == "pipe" else sink,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout if stdout_is == "pipe" else out_file.read_bytes()
    assert out.startswith(b"job-output\n"), out
    assert json.loads(out[len(b"job-output\n") :])["status"] == "success"
    assert link.is_symlink()


@pytest.mark.parametrize("node", ["directory", "socket"])
def test_a_directory_or_socket_is_refused_before_any_job_runs(
    tmp_path: Path, write_workflow: Callable[..., Path], node: str
) -> None:
    """Neither is replaced nor written: WORKFLOW_RECEIPT_UNWRITABLE saying what the node is,
    before the first job starts."""
    path = write_workflow(WORKFLOW)
    target = tmp_path / "r.json"
    server = None
    if node == "directory":
        target.mkdir()
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(target))
    try:
        result: Any
        result, _, _ = run_inprocess(path, {}, receipt=target)
        assert stat.S_ISDIR(os.lstat(target).st_mode) if node == "directory" else stat.S_ISSOCK(
            os.lstat(target).st_mode
        )
    finally:
        if server is not None:
            server.close()
    assert result.exit_code == 1
    assert result.error is not None and result.error.code == ErrorCode.WORKFLOW_RECEIPT_UNWRITABLE
    assert f"it is a {node}" in result.error.message and "nothing ran" in result.error.message
    assert not (tmp_path / "ran.marker").exists()
