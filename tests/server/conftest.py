"""Real servers for the end-to-end tests: ``loom serve`` subprocesses on 127.0.0.1.

Each server writes its stdout (the log) to a file so tests can read what was
logged, and so a full pipe can never stall the server. Servers are started
per module where the tests only read and write through the API, to keep the
suite fast.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT = 90.0
TOKEN = "e2e-" + "7f3a9c" * 11  # a long test key; tests check it never reaches the logs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """One running ``loom serve``; ``restart`` reuses the data directory and port."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    generations: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        log = self.log_path.with_suffix(f".{len(self.generations)}.log")
        self.generations.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer /health in {START_TIMEOUT}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return "".join(p.read_text(encoding="utf-8", errors="replace") for p in self.generations if p.exists())

    def stop(self) -> int:
        """SIGTERM and wait: the graceful path (lifespan shutdown runs)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()


def server_env(token: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOMEM_", "LOOM_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["LOOMEM_LOG_FORMAT"] = "json"
    if token is not None:
        env["LOOMEM_AUTH_TOKEN"] = token
    env.update(extra or {})
    return env


def make_server(
    tmp: Path,
    *,
    token: str | None = TOKEN,
    data_dir: Path | None = None,
    extra_args: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    command: list[str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """A not yet started server whose data lives under ``tmp``."""
    port = free_port()
    args = ["--port", str(port)]
    if data_dir is not None or cwd is None:
        args += ["--data-dir", str(data_dir if data_dir is not None else tmp / "data")]
    argv = [*(command or [sys.executable, "-m", "loom_core.cli.main", "serve"]), *args, *(extra_args or [])]
    return ServerProcess(argv=argv, env=server_env(token, env), cwd=cwd or tmp, port=port,
                         log_path=tmp / "server")


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on right now."""
    return free_port()


@pytest.fixture
def token() -> str:
    """The key the protected test servers are started with."""
    return TOKEN


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``spawn(**make_server kwargs)``: a not yet started server, stopped after the test."""
    made: list[ServerProcess] = []

    def factory(**kwargs: Any) -> ServerProcess:
        sub = tmp_path / f"server{len(made)}"
        sub.mkdir()
        server = make_server(sub, **kwargs)
        made.append(server)
        return server

    yield factory
    for server in made:
        server.stop()


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A key-protected server with a small body limit, shared by one test module."""
    tmp = tmp_path_factory.mktemp("api")
    config = tmp / "config.toml"
    config.write_text("[server]\nmax_body_bytes = 65536\n", encoding="utf-8")
    server = make_server(tmp, extra_args=["--config", str(config)]).start()
    yield server
    server.stop()


@pytest.fixture
def http(api_server: ServerProcess) -> Iterator[httpx.Client]:
    """An authenticated HTTP client for :func:`api_server`."""
    with httpx.Client(base_url=api_server.base_url, headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=30) as client:
        yield client
