"""Shared set-up for the encryption tests: real RocksDB directories and keys."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from loom_core.config import LoomConfig
from loom_core.contracts import BackendContext
from loom_core.crypto import build_row_codec
from loom_core.plugins.host import PluginHost

KEYSPACES = ("chunks", "graph", "keys", "meta")
ENV = "LOOMEM_AT_REST_MASTER_KEY"


def new_key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def open_storage(path: Path, options: dict[str, Any] | None = None) -> Any:
    """A real rocksdb storage with the families these tests use."""
    ctx = BackendContext(data_dir=path, keyspaces=KEYSPACES, options=options or {})
    return PluginHost(environ={}).create("storage", "rocksdb", ctx)


def codec_for(storage: Any, environ: dict[str, str], config: LoomConfig | None = None) -> Any:
    """What the server builds at start-up, for ``storage`` and ``environ``."""
    return build_row_codec(config or LoomConfig(), PluginHost(environ=environ), storage, environ)


def raw_files_containing(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` whose raw bytes contain ``needle`` (relative paths)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def wait_ready(proc: subprocess.Popen[bytes], base: str) -> None:
    """Wait until the ``loom serve`` child answers /health; fail with its output if it exits."""
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"")[-3000:].decode()
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a ``loom serve`` child."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(token: str, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without Loom's own variables, plus the API key and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOMEM_", "LOOM_"))}
    return env | {"LOOMEM_AUTH_TOKEN": token, "PYTHONUNBUFFERED": "1"} | extra
