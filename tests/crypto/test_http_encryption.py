"""The encryption routes over real HTTP (uvicorn on 127.0.0.1) on a real engine."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from loom_core.config import LoomConfig
from loom_core.crypto.engine_glue import open_engine
from loom_core.hookspecs import hookimpl
from loom_core.memory.models import ChunkInput
from loom_core.plugins.host import PluginHost

from .helpers import ENV, new_key_b64

TOKEN = "crypto-http-" + "5b2e" * 12


class AuditCapture:
    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def loom_audit_event(self, event: Any) -> None:
        self.events.append(event)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from loom_core.server.app import ROUTER_MODULES, create_app, load_routers

    data = tmp_path_factory.mktemp("http-enc")
    plain = open_engine(LoomConfig(), PluginHost(environ={}), data, {})
    try:
        legacy = [c.id for c in plain.add_chunks("legacy", [ChunkInput(content=f"old {n}") for n in range(40)])]
    finally:
        plain.close()
    key = new_key_b64()
    env = {ENV: key, "LOOMEM_AUTH_TOKEN": TOKEN}
    host = PluginHost(environ=env)
    capture = AuditCapture()
    host.register_plugin(capture, "audit-capture")
    engine = open_engine(LoomConfig(), host, data, env)
    routers = load_routers((*ROUTER_MODULES, "loom_core.server.routes_encryption"))
    app = create_app(LoomConfig(), host=host, engine=engine, environ=env, routers=routers)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        yield {"client": client, "engine": engine, "legacy": legacy, "key": key, "audit": capture.events}
    finally:
        client.close()
        srv.should_exit = True
        thread.join(30)
        engine.close()


def test_status_requires_auth_and_reports_fingerprint(server: dict[str, Any]) -> None:
    """Proves GET /v1/encryption/status needs the Bearer key, reports encryption active with the
    master-key fingerprint, and never the key."""
    anonymous = httpx.get(str(server["client"].base_url) + "/v1/encryption/status")
    assert anonymous.status_code == 401
    response = server["client"].get("/v1/encryption/status")
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is True and body["cipher"] == "aes256gcm"
    assert body["fingerprint"] == server["engine"].codec.fingerprint
    assert (server["key"] in response.text) is False, "the master key was served"


def test_backfill_endpoint_encrypts_legacy_rows_and_is_audited(server: dict[str, Any]) -> None:
    """Proves POST /v1/admin/backfill/encrypt-at-rest starts the backfill (202), the status
    endpoint reports it done, legacy chunks still read correctly, a second POST changes
    nothing, and both admin routes are audit events."""
    client = server["client"]
    assert httpx.post(str(client.base_url) + "/v1/admin/backfill/encrypt-at-rest").status_code == 401
    started = client.post("/v1/admin/backfill/encrypt-at-rest")
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = client.get("/v1/admin/backfill/encrypt-at-rest/status").json()
        if status["state"] == "done" and not status["running"]:
            break
        time.sleep(0.1)
    assert status["state"] == "done" and status["encrypted"] == 40, status
    assert status["percent"] == 100.0
    chunk = client.get(f"/v1/chunks/{server['legacy'][7]}").json()
    assert chunk["content"] == "old 7"
    again = client.post("/v1/admin/backfill/encrypt-at-rest")
    assert again.status_code == 202
    deadline = time.monotonic() + 60
    while client.get("/v1/admin/backfill/encrypt-at-rest/status").json()["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get("/v1/admin/backfill/encrypt-at-rest/status").json()["encrypted"] == 0
    actions = [e.action for e in server["audit"]]
    assert "admin.backfill.encrypt_at_rest" in actions
    assert "admin.backfill.encrypt_at_rest.status" in actions
    assert all(server["key"] not in repr(e) for e in server["audit"]), "the master key reached an audit event"


def test_a_backfill_cut_short_by_shutdown_is_not_logged_as_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping the server during a backfill logged ERROR "backfill failed: STORAGE_CLOSED" although
    nothing failed (the next call resumes). It is an INFO line now; real failures stay errors."""
    from loom_core.server.routes_encryption import BackfillRunner

    env = {ENV: new_key_b64()}
    engine = open_engine(LoomConfig(), PluginHost(environ=env), tmp_path / "d", env)
    engine.add_chunk("s", ChunkInput("a row"))
    engine.close()  # what shutdown does while the backfill thread still runs
    runner = BackfillRunner()
    with caplog.at_level("INFO", logger="loom.crypto"):
        assert runner.start(engine) is True
        runner.join(timeout=60)
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "loom.crypto"]
    assert ("INFO", "encrypt-at-rest backfill stopped by shutdown; the next call resumes it") in records
    assert not [r for r in records if r[0] == "ERROR"]


def test_backfill_percent_stays_below_100_until_the_pass_is_done(tmp_path: Path) -> None:
    """Rows written during a pass made ``scanned`` exceed the ``total`` counted at its start, and the
    status showed over 100 % for a pass still running."""
    from loom_core.crypto import layout
    from loom_core.server.routes_encryption import BackfillRunner

    env = {ENV: new_key_b64()}
    engine = open_engine(LoomConfig(), PluginHost(environ=env), tmp_path / "d", env)
    try:
        record = {"state": "running", "family": 0, "after": None, "scanned": 130, "encrypted": 100, "total": 120}
        engine.storage.put(layout.META, layout.BACKFILL_RECORD, layout.dump_json(record))
        view = BackfillRunner().status(engine)
        assert view["scanned"] == 130 and view["total"] == 120 and view["percent"] == 99.9
        record |= {"state": "done"}
        engine.storage.put(layout.META, layout.BACKFILL_RECORD, layout.dump_json(record))
        assert BackfillRunner().status(engine)["percent"] == 100.0
    finally:
        engine.close()


def test_encryption_status_and_the_end_of_a_background_backfill_are_audit_events(server: dict[str, Any]) -> None:
    """``GET /v1/encryption/status`` was no audit event although admin endpoints are, and how a
    background backfill ended was only a log line. Both are audit events of the caller now."""
    client, events = server["client"], server["audit"]
    before = len(events)
    assert client.get("/v1/encryption/status").status_code == 200
    seen = [(e.outcome, e.actor) for e in events[before:] if e.action == "admin.encryption.status"]
    assert seen == [("success", "api-key")]
    assert client.post("/v1/admin/backfill/encrypt-at-rest").json()["started"] is True
    deadline = time.monotonic() + 60
    while client.get("/v1/admin/backfill/encrypt-at-rest/status").json()["running"]:
        assert time.monotonic() < deadline, "the backfill did not end"
        time.sleep(0.1)
    ended = [e for e in events[before:] if e.action == "admin.backfill.encrypt_at_rest.run"]
    assert [(e.outcome, e.actor, e.details["state"]) for e in ended] == [("success", "api-key", "done")]
    assert all(server["key"] not in repr(e) for e in events)
