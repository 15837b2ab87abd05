"""`loom serve` / `loomem-server` as a real process: defaults, restart, a second server, SIGKILL mid-ingest."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from loom_core.client import LoomemClient
from loom_core.errors import ErrorCode, LoomError


def test_defaults_add_search_restart_find_again(spawn: Callable[..., Any], tmp_path: Path) -> None:
    """With only a port given, the server uses ./loom-data, RocksDB, Tantivy and the hash embedder;
    a chunk added and searched survives a restart (the second run through `loomem-server`)."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    server = spawn(token=None, cwd=workdir).start()
    assert "--data-dir" not in server.argv
    with LoomemClient(server.base_url) as client:
        chunk = client.add_chunk("notes", "the heron nests by the northern lake")
        hits = client.search("heron lake", stream="notes")
        assert hits and hits[0]["chunk"]["id"] == chunk["id"]
    assert (workdir / "loom-data").is_dir()
    assert server.stop() in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "memory engine closed" in server.logs()  # the engine is closed although uvicorn re-raises SIGTERM
    assert "loomem server stopped" in server.logs()
    server.argv = [str(Path(sys.executable).with_name("loomem-server")), *server.argv[4:]]
    server.start()
    with LoomemClient(server.base_url) as client:
        assert client.get_chunk(chunk["id"])["content"] == "the heron nests by the northern lake"
        for mode in ("hybrid", "bm25", "vector"):
            hits = client.search("heron lake", stream="notes", mode=mode)
            assert hits and hits[0]["chunk"]["id"] == chunk["id"], mode
    logs = server.logs()
    assert f"loomem serving http://127.0.0.1:{server.port} (data directory loom-data)" in logs
    assert "loomem server stopped" in logs  # the graceful shutdown ran on SIGTERM


def test_second_server_on_the_same_data_dir_fails_with_a_code(
    spawn: Callable[..., Any], tmp_path: Path, unused_port: int
) -> None:
    """Only one server per data directory: the second exits 1 with STORAGE_LOCKED naming the directory."""
    data = tmp_path / "shared-data"
    first = spawn(token=None, data_dir=data).start()
    second = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(data), "--port", str(unused_port)],
        env=first.env, capture_output=True, text=True, timeout=120,
    )
    assert second.returncode == 1, second.stderr
    error = json.loads(second.stderr.strip().splitlines()[-1])["error"]  # the spawned servers log JSON
    assert error["code"] == "STORAGE_LOCKED" and str(data) in error["message"]
    assert "Traceback" not in second.stderr
    assert httpx.get(f"{first.base_url}/health").status_code == 200


def test_sigkill_during_batch_ingest_loses_no_acknowledged_chunk(
    spawn: Callable[..., Any], token: str
) -> None:
    """SIGKILL while a client streams batches: after restart every chunk acknowledged with 201 is
    readable and searchable, batches are all-or-nothing, and the index matches storage."""
    server = spawn().start()
    batch_size = 40
    acknowledged: dict[str, list[str]] = {}  # batch tag -> chunk ids
    sent: list[str] = []
    killed, writer_done = threading.Event(), threading.Event()

    def killer() -> None:
        while len(acknowledged) < 12:
            if writer_done.is_set() or server.proc.poll() is not None:
                return
            writer_done.wait(0.01)
        server.kill()
        killed.set()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with LoomemClient(server.base_url, token=token, timeout=30) as client:
            for n in range(10_000):
                tag = f"batchtag{n:05d}"
                items = [{"content": f"{tag} item {i} alpha bravo charlie", "metadata": {"n": i}}
                         for i in range(batch_size)]
                sent.append(tag)
                try:
                    chunks = client.add_chunks("crash", items)
                except LoomError as exc:
                    assert exc.code is ErrorCode.SERVER_UNAVAILABLE, exc  # only the kill may stop the writer
                    break
                acknowledged[tag] = [c["id"] for c in chunks]
    finally:
        writer_done.set()
        thread.join()
    assert killed.is_set(), "the server was not killed during the ingest"
    assert len(acknowledged) >= 12

    server.start()
    with LoomemClient(server.base_url, token=token, timeout=60) as client:
        stored = {c["id"]: c for c in client.iter_chunks("crash", page_size=1000)}
        for tag, ids in acknowledged.items():
            missing = [i for i in ids if i not in stored]
            assert not missing, f"{len(missing)} acknowledged chunks of {tag} are gone"
            hits = client.search(tag, stream="crash", mode="bm25", k=batch_size)
            assert {h["chunk"]["id"] for h in hits} == set(ids), f"{tag} not fully searchable"
        for tag in sent[len(acknowledged):]:  # in flight when killed: all or nothing
            present = [c for c in stored.values() if c["content"].startswith(f"{tag} ")]
            assert len(present) in (0, batch_size), f"batch {tag} was half written"
        report = client.consistency()
    assert report["missing_in_index"] == [] and report["extra_in_index"] == []
    assert report["storage"] == report["index"] == report["vectors"] == len(stored)


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_an_out_of_range_port_is_config_invalid(tmp_path: Path, port: str) -> None:
    """``--port 99999`` printed a pydantic traceback; it is CONFIG_INVALID naming the setting."""
    result = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(tmp_path / "d"), "--port", port],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "error[CONFIG_INVALID]" in result.stderr and "port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["a-file", "inside-a-file"])
def test_a_data_dir_that_cannot_be_a_directory_fails_with_a_code(tmp_path: Path, unused_port: int, where: str) -> None:
    """``--data-dir`` naming a file, or a path under a file: CONFIG_INVALID naming the setting,
    not a Python traceback."""
    (tmp_path / "plain-file").write_text("not a directory")
    data_dir = tmp_path / "plain-file" if where == "a-file" else tmp_path / "plain-file" / "data"
    result = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(data_dir),
         "--port", str(unused_port)],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "error[CONFIG_INVALID]: server.data_dir" in result.stderr and "Traceback" not in result.stderr


def test_expected_encryption_without_a_master_key_refuses_to_start(tmp_path: Path, unused_port: int) -> None:
    """LOOMEM_AT_REST_EXPECT_ENABLED=1 and no master key: `loom serve` exits 1 with ENCRYPTION_KEY_MISSING."""
    env = {"PATH": "/usr/bin:/bin", "LOOMEM_AT_REST_EXPECT_ENABLED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(tmp_path / "d"),
         "--port", str(unused_port)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "error[ENCRYPTION_KEY_MISSING]" in result.stderr
    assert not (tmp_path / "d").exists(), "the refused start left an empty data directory behind"


def test_a_refused_start_keeps_a_data_directory_that_existed(tmp_path: Path, unused_port: int) -> None:
    (tmp_path / "d").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(tmp_path / "d"),
         "--port", str(unused_port)],
        env={"PATH": "/usr/bin:/bin", "LOOMEM_AT_REST_EXPECT_ENABLED": "1"}, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 1 and (tmp_path / "d").is_dir()


@pytest.mark.parametrize("how", ["environment", "config file"])
def test_with_json_logs_a_refusal_to_start_is_a_json_line(tmp_path: Path, unused_port: int, how: str) -> None:
    """With LOOMEM_LOG_FORMAT=json (or server.log_format = "json") every server line is JSON, but a
    refusal to start came out as plain `error[CODE]: ...` unless --format json was also given,
    breaking log pipelines that parse lines."""
    env = {"PATH": "/usr/bin:/bin", "LOOMEM_AT_REST_EXPECT_ENABLED": "1"}
    config = tmp_path / "loom.toml"
    config.write_text('[server]\nlog_format = "json"\n' if how == "config file" else "")
    if how == "environment":
        env["LOOMEM_LOG_FORMAT"] = "json"
    result = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--config", str(config), "--data-dir",
         str(tmp_path / "d"), "--port", str(unused_port)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    last = json.loads(result.stderr.strip().splitlines()[-1])
    assert last["error"]["code"] == "ENCRYPTION_KEY_MISSING"


def test_server_with_a_master_key_seals_rows_and_reads_them_back(spawn: Callable[..., Any], tmp_path: Path) -> None:
    """With LOOMEM_AT_REST_MASTER_KEY set, chunks round-trip over HTTP across a restart, and the
    content is not in the storage files in plain form."""
    import base64
    import os

    key = base64.b64encode(os.urandom(32)).decode()
    data = tmp_path / "sealed"
    server = spawn(token=None, data_dir=data, env={"LOOMEM_AT_REST_MASTER_KEY": key}).start()
    canary = "sealed-canary-" + os.urandom(8).hex()
    with LoomemClient(server.base_url) as client:
        chunk = client.add_chunk("vault", f"{canary} lives here")
    server.restart()
    with LoomemClient(server.base_url) as client:
        assert client.get_chunk(chunk["id"])["content"] == f"{canary} lives here"
    server.stop()
    storage_bytes = b"".join(p.read_bytes() for p in (data / "storage").rglob("*") if p.is_file())
    assert (canary.encode() in storage_bytes) is False, "chunk content stored in plain form"
    assert (key in server.logs()) is False, "master key leaked into the log"


def test_busy_port_fails_with_a_code_before_touching_data(tmp_path: Path, unused_port: int) -> None:
    """A port already in use: exit 1 with SERVER_BIND_FAILED naming it, and no data directory created."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", unused_port))
        holder.listen()
        data = tmp_path / "never-created"
        result = subprocess.run(
            [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(data), "--port",
             str(unused_port)],
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1, result.stderr
    assert "error[SERVER_BIND_FAILED]" in result.stderr and f"127.0.0.1:{unused_port}" in result.stderr
    assert not data.exists()


def test_the_retention_sweeper_deletes_expired_chunks_as_an_audit_event(
    spawn: Callable[..., Any], tmp_path: Path, token: str
) -> None:
    """A running server's sweeper deletes a chunk past expires_at and logs one target=audit event
    ``chunk.expire`` (actor ``retention``, the count) for that round, without the content."""
    import json
    import time

    config = tmp_path / "sweep.toml"
    config.write_text("[retention]\nsweep_interval_seconds = 0.2\n", encoding="utf-8")
    server = spawn(extra_args=["--config", str(config)]).start()
    content = "expiring-canary-" + "5" * 20
    with LoomemClient(server.base_url, token=token) as client:
        client.add_chunk("s", content, expires_at=int(time.time() * 1000) + 1500)
        kept = client.add_chunk("s", "kept for good")
        deadline = time.monotonic() + 60
        swept: list[dict[str, Any]] = []
        while not swept and time.monotonic() < deadline:
            time.sleep(0.2)
            lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
            swept = [e["fields"] for e in lines if e["target"] == "audit" and e["fields"]["action"] == "chunk.expire"]
        assert swept, "no chunk.expire audit event within 60 s"
        assert swept[0]["actor"] == "retention" and swept[0]["details"]["count"] == 1
        assert [c["id"] for c in client.list_chunks("s")["chunks"]] == [kept["id"]]
    assert (content in server.logs()) is False


def test_a_running_server_backs_up_online_and_the_backup_restores(
    spawn: Callable[..., Any], tmp_path: Path, token: str
) -> None:
    """POST /v1/admin/backups checkpoints the live server into server.backup_dir (201 with the path
    and manifest, one audit event); `loom backup restore` makes a working data directory of it. The
    offline `loom backup create` on the live directory fails with STORAGE_LOCKED pointing there."""
    import json

    data = tmp_path / "live"
    backups = tmp_path / "backups"
    config = tmp_path / "backup.toml"
    config.write_text(f'[server]\nbackup_dir = "{backups}"\n', encoding="utf-8")
    server = spawn(data_dir=data, extra_args=["--config", str(config)]).start()
    with LoomemClient(server.base_url, token=token) as client:
        ids = [c["id"] for c in client.add_chunks("s", [{"content": f"heron sighting {i}"} for i in range(12)])]
        made = client.create_backup()
        client.add_chunk("s", "heron written after the backup")
    path = Path(made["path"])
    assert path.parent == backups and path.is_dir()
    assert backups.stat().st_mode & 0o777 == 0o700  # the folder the server created lists no one's backups
    assert made["manifest"]["chunks"] == 12 and made["manifest"]["format"] == "loomem-backup"
    audit = [json.loads(line)["fields"] for line in server.logs().splitlines() if line.startswith("{")]
    events = [e for e in audit if e.get("action") == "admin.backup.create"]
    assert [(e["outcome"], e["resource"]) for e in events] == [("success", str(path))]

    offline = subprocess.run([sys.executable, "-m", "loom_core.cli.main", "backup", "create", str(tmp_path / "x"),
                              "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
    assert offline.returncode == 1 and "STORAGE_LOCKED" in offline.stderr
    assert "/v1/admin/backups" in offline.stderr

    restored = tmp_path / "restored"
    done = subprocess.run([sys.executable, "-m", "loom_core.cli.main", "backup", "restore", str(path),
                           "--data-dir", str(restored)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    other = spawn(data_dir=restored).start()
    with LoomemClient(other.base_url, token=token) as client:
        found = client.search("heron", stream="s", k=20)
        assert sorted(r["chunk"]["id"] for r in found) == sorted(ids)  # not the one added later
