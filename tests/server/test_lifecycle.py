"""Start-up and shutdown hooks and audit hooks, with an in-process plugin and uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from loom_core.audit import AuditEvent
from loom_core.config import LoomConfig
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.host import PluginHost
from loom_core.server.app import create_app

KEY = "lifecycle-" + "4d" * 30


class Recorder:
    """An in-process plugin that records the hooks the server calls."""

    def __init__(self, fail_startup: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail_startup = fail_startup

    @hookimpl
    def loom_startup(self, component: str, config: Any) -> None:
        self.calls.append(("startup", (component, config)))
        if self.fail_startup:
            raise LoomError(ErrorCode.PLUGIN_INVALID, "recorder refuses to start")

    @hookimpl
    def loom_shutdown(self, component: str) -> None:
        self.calls.append(("shutdown", component))

    @hookimpl
    def loom_audit_event(self, event: AuditEvent) -> None:
        self.calls.append(("audit", event))


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(app: Any) -> Iterator[tuple[str, uvicorn.Server]]:
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    def serve() -> None:
        try:
            server.run()
        except SystemExit:  # uvicorn exits 3 when start-up fails; the test checks server.started
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_startup_shutdown_and_audit_hooks_reach_plugins(tmp_path: Path) -> None:
    """loom_startup(component="server", config) runs before the first request, loom_audit_event sees
    auth failures and deletes (without the key), loom_shutdown runs when the server stops."""
    recorder = Recorder()
    host = PluginHost(environ={})
    host.register_plugin(recorder, "test-recorder")
    config = LoomConfig()
    app = create_app(config, host=host, data_dir=tmp_path / "data", environ={"LOOMEM_AUTH_TOKEN": KEY})
    with running(app) as (base, server):
        assert server.started
        assert recorder.calls[0] == ("startup", ("server", config))
        assert httpx.get(f"{base}/v1/streams", headers={"Authorization": "Bearer nope-nope"}).status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        chunk = httpx.post(f"{base}/v1/streams/s/chunks", json={"content": "hook test"}, headers=auth).json()
        assert httpx.delete(f"{base}/v1/chunks/{chunk['id']}", headers=auth).status_code == 200
    events = [e for kind, e in recorder.calls if kind == "audit"]
    assert [(e.action, e.outcome) for e in events] == [("auth.failure", "denied"), ("chunk.delete", "success")]
    assert events[1].resource == chunk["id"] and events[1].actor == "api-key"
    assert all((KEY in repr(e)) is False and ("nope-nope" in repr(e)) is False for e in events)
    assert recorder.calls[-1] == ("shutdown", "server")
    assert app.state.engine is None  # the engine the app opened was closed


def test_failing_startup_hook_aborts_start_and_still_shuts_down(tmp_path: Path) -> None:
    """A plugin that raises in loom_startup stops the server from serving; loom_shutdown still runs
    and the data directory is released (a new engine can open it)."""
    recorder = Recorder(fail_startup=True)
    host = PluginHost(environ={})
    host.register_plugin(recorder, "failing-recorder")
    data = tmp_path / "data"
    app = create_app(LoomConfig(), host=host, data_dir=data, environ={})
    with running(app) as (_base, server):
        assert not server.started
    assert [kind for kind, _ in recorder.calls] == ["startup", "shutdown"]
    assert app.state.engine is None
    from loom_core.server.runtime import open_engine

    engine = open_engine(LoomConfig(), PluginHost(environ={}), data)
    engine.close()

