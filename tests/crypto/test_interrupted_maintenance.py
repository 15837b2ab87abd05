"""Encryption maintenance cut short at its last step: the final compaction of a backfill and of a
rotation, a server stopped mid-compaction, a damaged key record, and how a background run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from loom_core.config import LoomConfig
from loom_core.crypto import backfill, layout
from loom_core.crypto.engine_glue import open_engine
from loom_core.crypto.masterkey import parse_master_key
from loom_core.crypto.offline import describe
from loom_core.crypto.rotation import rotate
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.memory.models import ChunkInput
from loom_core.plugins.host import PluginHost

from .helpers import ENV, codec_for, free_port, new_key_b64, open_storage, raw_files_containing, serve_env, wait_ready

CONFIG = LoomConfig.model_validate({"storage": {"options": {"compression": "none"}}})
NO_COMPRESSION = {"compression": "none"}
TOKEN = "crypto-maint-" + "7d3a" * 12
RUN_ACTION = "admin.backfill.encrypt_at_rest.run"  # the audit event of how a background backfill ended

#: Runs ``rest`` of argv after making ``RocksStorage.compact`` of ``keyspace`` SIGKILL the process:
#: a crash exactly between the durable write that ends a step and the compaction that follows it.
KILL_AT_COMPACT = textwrap.dedent(
    """
    import os, signal, sys
    from loom_storage_rocksdb.storage import RocksStorage

    keyspace, script = sys.argv[1], sys.argv[2]

    def compact(self, name=None):
        if name == keyspace:
            os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError(f"unexpected compaction of {name!r}")

    RocksStorage.compact = compact
    sys.argv = sys.argv[2:]
    exec(compile(script, "<child>", "exec"))
    """
)

ENGINE_BACKFILL = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from loom_core.config import LoomConfig
    from loom_core.crypto import backfill
    from loom_core.crypto.engine_glue import engine_codec, engine_lock, engine_storage, open_engine, sealed_families
    from loom_core.plugins.host import PluginHost

    environ = {"LOOMEM_AT_REST_MASTER_KEY": sys.argv[2]}
    config = LoomConfig.model_validate({"storage": {"options": {"compression": "none"}}})
    engine = open_engine(config, PluginHost(environ=environ), Path(sys.argv[1]), environ)
    backfill.run(engine_storage(engine), engine_codec(engine), sealed_families(engine), lock=engine_lock(engine))
    print("not killed", flush=True)
    """
)

STORAGE_ROTATE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from loom_core.contracts import BackendContext
    from loom_core.crypto.masterkey import parse_master_key
    from loom_core.crypto.rotation import rotate
    from loom_core.plugins.host import PluginHost

    path, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
    host = PluginHost(environ={})
    ctx = BackendContext(data_dir=Path(path), keyspaces=("chunks", "graph", "keys", "meta"),
                         options={"compression": "none"})
    storage = host.create("storage", "rocksdb", ctx)
    rotate(storage, host.create("cipher", "aes256gcm"), parse_master_key(old, "old"), parse_master_key(new, "new"))
    print("not killed", flush=True)
    """
)

#: ``loom serve`` whose compaction of ``chunks`` never ends (it signals entering it through a file):
#: the server can then be stopped while a backfill is in its final compaction.
SERVE_STUCK_IN_COMPACTION = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from loom_storage_rocksdb.storage import RocksStorage

    flag = Path(sys.argv[1])
    original = RocksStorage.compact

    def compact(self, keyspace=None):
        if keyspace == "chunks":
            flag.write_text("compacting")
            threading.Event().wait()
        return original(self, keyspace)

    RocksStorage.compact = compact
    from loom_core.cli.main import main
    sys.argv = ["loom", *sys.argv[2:]]
    sys.exit(main())
    """
)


def _kill_at_compact(keyspace: str, script: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_COMPACT, keyspace, script, *args], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == -signal.SIGKILL, f"child was not killed: rc={proc.returncode} {proc.stderr[-2000:]}"


def _legacy_data_dir(data: Path, rows: int = 60) -> list[bytes]:
    """Chunks written before encryption was on; returns their plaintext markers."""
    engine = open_engine(CONFIG, PluginHost(environ={}), data, {})
    try:
        markers = [f"LEGACY-{n:03d}-{os.urandom(6).hex()}" for n in range(rows)]
        engine.add_chunks("legacy", [ChunkInput(content=m) for m in markers])
    finally:
        engine.close()
    return [m.encode() for m in markers]


def _left(data: Path, markers: list[bytes]) -> int:
    """How many markers some storage file still holds (the full-text index is plaintext by design)."""
    return sum(1 for m in markers if raw_files_containing(data / "storage", m))


def _backfill_state(data: Path) -> dict[str, Any]:
    storage = open_storage(data / "storage")
    try:
        return backfill.status(storage)
    finally:
        storage.close()


def test_a_backfill_killed_before_its_final_compaction_is_not_done_and_the_next_start_compacts(
    tmp_path: Path,
) -> None:
    """The backfill recorded ``done`` and only then compacted: killed in between, it reported done
    for good while the replaced plaintext stayed in live table files. It records ``compacting``
    until the compaction ran now, and the next start of the engine finishes it."""
    data, key = tmp_path / "data", new_key_b64()
    markers = _legacy_data_dir(data)
    _kill_at_compact("chunks", ENGINE_BACKFILL, str(data), key)
    state = _backfill_state(data)
    assert state["state"] == "compacting" and state["encrypted"] == len(markers), state
    assert _left(data, markers) == len(markers), "precondition: the plaintext versions are still in the files"
    engine = open_engine(CONFIG, PluginHost(environ={ENV: key}), data, {ENV: key})
    try:
        assert backfill.status(engine.storage)["state"] == "done"
        assert sorted(c.content.encode() for c in engine.list_chunks("legacy", limit=1000).items) == sorted(markers)
    finally:
        engine.close()
    assert _left(data, markers) == 0, "plaintext versions survived the start that should have compacted them"


def test_the_next_backfill_run_finishes_an_interrupted_final_compaction(tmp_path: Path) -> None:
    """A ``compacting`` pass is finished by the next run (``loom encryption backfill``, the endpoint)
    without walking the rows again: the pass's counts stay, the plaintext leaves the files."""
    data, key = tmp_path / "data", new_key_b64()
    markers = _legacy_data_dir(data)
    _kill_at_compact("chunks", ENGINE_BACKFILL, str(data), key)
    storage = open_storage(data / "storage", NO_COMPRESSION)
    try:
        codec = codec_for(storage, {ENV: key})
        seen: list[dict[str, Any]] = []
        families = [backfill.SealedFamily("chunks", lambda k, v: "legacy", b"chunk:")]
        result = backfill.run(storage, codec, families, progress=seen.append)
        assert [s["state"] for s in seen] == ["compacting", "done"]
        assert result["state"] == "done" and result["encrypted"] == len(markers)
    finally:
        storage.close()
    assert _left(data, markers) == 0


def _old_wrapped_records(path: Path, key: str) -> list[bytes]:
    """The wrapped data-key records of three streams, as written under ``key``."""
    storage = open_storage(path, NO_COMPRESSION)
    try:
        codec = codec_for(storage, {ENV: key})
        for stream in ("s0", "s1", "s2"):
            rkey = f"chunk:L0:{stream}".encode()
            storage.put("chunks", rkey, codec.seal(stream, rkey, f"content of {stream}".encode()))
        return [v for _, v in storage.iterate("keys", prefix=layout.DEK_PREFIX)]
    finally:
        storage.close()


@pytest.mark.parametrize("finisher", ["start", "rotate-again"])
def test_a_rotation_killed_before_its_keys_compaction_leaves_no_old_wrapping_behind(
    tmp_path: Path, finisher: str
) -> None:
    """Rotation swapped the new wrappings in, then compacted ``keys``; killed in between, data keys
    wrapped under the retired master key stayed in a table file for good (the old key still
    decrypted everything), rerunning rotate said already done, and starts never compacted. The swap
    records the pending compaction now, and the next start or rotate finishes it."""
    old, new = new_key_b64(), new_key_b64()
    records = _old_wrapped_records(tmp_path, old)
    _kill_at_compact("keys", STORAGE_ROTATE, str(tmp_path), old, new)
    assert all(raw_files_containing(tmp_path, r) for r in records), "precondition: old wrappings in a file"
    storage = open_storage(tmp_path, NO_COMPRESSION)
    try:
        pending_before = describe(storage).get("keys_compaction_pending")
        if finisher == "start":
            codec_for(storage, {ENV: new})
        else:
            cipher = PluginHost(environ={}).create("cipher", "aes256gcm")
            assert rotate(storage, cipher, parse_master_key(old, "o"), parse_master_key(new, "n")).already_done
        pending_after = describe(storage).get("keys_compaction_pending")
    finally:
        storage.close()
    left = sum(1 for r in records if raw_files_containing(tmp_path, r))
    assert left == 0, f"{left} data keys wrapped under the retired master key are still in a file"
    assert (pending_before, pending_after) == (True, False), "the status did not show the pending compaction"
    storage = open_storage(tmp_path)
    try:
        codec = codec_for(storage, {ENV: new})
        assert codec.open("s1", b"chunk:L0:s1", storage.get("chunks", b"chunk:L0:s1")) == b"content of s1"
    finally:
        storage.close()


def _stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0].decode(errors="replace")


def test_a_server_stopped_during_the_final_compaction_leaves_it_for_the_next_start(tmp_path: Path) -> None:
    """A real ``loom serve`` stopped (SIGTERM) while its backfill compacts: the status said ``done``
    beside ``running: true`` during the compaction and the plaintext stayed after the stop. It says
    ``compacting`` (below 100 %) now, and the next start compacts and reports ``done``."""
    data, key, flag = tmp_path / "data", new_key_b64(), tmp_path / "in-compaction"
    markers = _legacy_data_dir(data)
    port = free_port()
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    argv = ["serve", "--data-dir", str(data), "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_STUCK_IN_COMPACTION, str(flag), *argv],
        env=serve_env(TOKEN, {ENV: key}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(proc, base)
        assert httpx.post(f"{base}/v1/admin/backfill/encrypt-at-rest", headers=auth).status_code == 202
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the backfill never reached its compaction"
            time.sleep(0.05)
        status = httpx.get(f"{base}/v1/admin/backfill/encrypt-at-rest/status", headers=auth).json()
        assert (status["state"], status["running"]) == ("compacting", True), status
        assert status["percent"] < 100
        assert httpx.get(f"{base}/v1/encryption/status", headers=auth).json()["backfill"]["state"] == "compacting"
    finally:
        _stop(proc)
    assert _backfill_state(data)["state"] == "compacting"
    assert _left(data, markers) == len(markers), "precondition: the compaction did not run"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(data), "--port", str(port)],
        env=serve_env(TOKEN, {ENV: key}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(proc, base)
        status = httpx.get(f"{base}/v1/admin/backfill/encrypt-at-rest/status", headers=auth).json()
        assert (status["state"], status["running"], status["percent"]) == ("done", False, 100.0), status
    finally:
        _stop(proc)
    assert _left(data, markers) == 0, "the plaintext versions survived the next start"


@pytest.mark.parametrize("damage", ["swapped", "flipped"])
def test_a_damaged_data_key_record_refuses_start_naming_its_stream(tmp_path: Path, damage: str) -> None:
    """One data-key record that does not open (copied from another stream's entry, or a flipped
    byte) refused ``loom serve`` with a bare "authentication failed"; the refusal names the stream
    and says to restore from a backup now, still without any key bytes."""
    data, key = tmp_path / "data", new_key_b64()
    engine = open_engine(CONFIG, PluginHost(environ={ENV: key}), data, {ENV: key})
    try:
        engine.add_chunk("alpha", ChunkInput("a"))
        engine.add_chunk("beta", ChunkInput("b"))
    finally:
        engine.close()
    storage = open_storage(data / "storage")
    try:
        beta = storage.get("keys", b"dek:beta")
        alpha = storage.get("keys", b"dek:alpha")
        damaged = beta if damage == "swapped" else alpha[:-1] + bytes([alpha[-1] ^ 1])
        storage.put("keys", b"dek:alpha", damaged)
    finally:
        storage.close()
    refused = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(data), "--port", str(free_port())],
        env=serve_env(TOKEN, {ENV: key}), capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode == 1, "the server started over a damaged data key"
    assert "error[CIPHER_DECRYPT_FAILED]" in refused.stderr, refused.stderr[-2000:]
    assert "stream 'alpha'" in refused.stderr and "backup" in refused.stderr, refused.stderr[-2000:]
    output = refused.stderr + refused.stdout
    assert (key in output) is False, "the master key was printed"
    for record in (alpha, beta):
        assert all(chunk not in output for chunk in (record.hex(), layout.b64(record), layout.b64(record[9:]))), (
            "wrapped key bytes were printed"
        )


class _Audit:
    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def loom_audit_event(self, event: Any) -> None:
        self.events.append(event)


def _encrypted_engine_over_legacy(data: Path, key: str) -> tuple[Any, list[bytes]]:
    markers = _legacy_data_dir(data, rows=40)
    return open_engine(CONFIG, PluginHost(environ={ENV: key}), data, {ENV: key}), markers


def test_a_new_pass_never_reports_the_previous_pass_as_done_while_it_runs(tmp_path: Path) -> None:
    """Right after a new pass started, and during its final compaction, the status showed the
    previous pass's ``done`` / 100 % beside ``running: true``, so a client waiting for ``done``
    stopped too early. ``done`` now only shows once the pass really finished."""
    from loom_core.server.routes_encryption import BackfillRunner

    engine, _ = _encrypted_engine_over_legacy(tmp_path / "d", new_key_b64())
    try:
        runner = BackfillRunner()
        assert runner.start(engine) is True
        runner.join(timeout=120)
        assert runner.status(engine)["state"] == "done"
        entered, release = threading.Event(), threading.Event()
        original = engine.storage.compact

        def slow_compact(keyspace: str | None = None) -> None:
            entered.set()
            release.wait(120)
            original(keyspace)

        engine.storage.compact = slow_compact
        assert runner.start(engine) is True
        first = runner.status(engine)
        # the new pass walks (or, its rows all sealed, already compacts); never the last pass's done
        assert first["state"] in ("running", "compacting") and first["running"] is True, first
        assert first["percent"] < 100 and first["encrypted"] == 0, first
        assert entered.wait(120)
        compacting = runner.status(engine)
        assert (compacting["state"], compacting["running"]) == ("compacting", True), compacting
        assert compacting["percent"] < 100
        release.set()
        runner.join(timeout=120)
        final = runner.status(engine)
        assert (final["state"], final["running"], final["percent"]) == ("done", False, 100.0), final
    finally:
        engine.close()


def test_how_a_background_backfill_ends_is_an_audit_event_and_its_error_is_generic(tmp_path: Path) -> None:
    """The background run's end was only a ``loom.crypto`` log line, and the status served the raw
    exception message. A finished and a failed run are audit events now (counts or a code, no
    content, no key), and the status error is a code with a generic message."""
    from loom_core.server.routes_encryption import BackfillRunner

    key = new_key_b64()
    engine, markers = _encrypted_engine_over_legacy(tmp_path / "d", key)
    audit = _Audit()
    try:
        runner = BackfillRunner()
        assert runner.start(engine, actor="operator", hook=audit) is True
        runner.join(timeout=120)
        ended = [e for e in audit.events if e.action == RUN_ACTION]
        assert [(e.outcome, e.actor) for e in ended] == [("success", "operator")]
        assert ended[0].details["state"] == "done" and ended[0].details["encrypted"] == len(markers)

        secret = f"/private/{os.urandom(6).hex()}"
        original = engine.storage.write
        calls = {"n": 0}

        def failing_write(batch: Any, *, durable: bool = False) -> None:
            calls["n"] += 1
            if calls["n"] > 1:  # the pass's record is written; its first batch fails
                raise LoomError(ErrorCode.STORAGE_IO, f"write failed in {secret}: disk full")
            original(batch, durable=durable)

        engine.storage.write = failing_write
        assert runner.start(engine, actor="operator", hook=audit) is True
        runner.join(timeout=120)
        engine.storage.write = original
        status = runner.status(engine)
        assert status["error"]["code"] == "STORAGE_IO"
        assert secret not in status["error"]["message"] and status["error"]["message"]
        failed = [e for e in audit.events if e.action == RUN_ACTION and e.outcome == "failure"]
        assert len(failed) == 1 and failed[0].details["code"] == "STORAGE_IO"
        assert all(secret not in repr(e) and key not in repr(e) for e in audit.events)
        assert all(m.decode() not in repr(e) for e in audit.events for m in markers), "content in an audit event"
    finally:
        engine.close()
