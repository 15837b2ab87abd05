"""``loom serve`` as a real process: encrypted round trip, then start-up refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .helpers import ENV, free_port, new_key_b64, raw_files_containing, serve_env, wait_ready

TOKEN = "crypto-serve-" + "9c1f" * 12


def _serve(data: Path, port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(data), "--port", str(port)]
    return subprocess.Popen(argv, env=serve_env(TOKEN, extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_serve_encrypts_and_refuses_wrong_missing_or_malformed_key(tmp_path: Path) -> None:
    """Proves a server started with a master key stores a chunk without its plaintext on disk and
    reports the fingerprint; after it stops, `loom serve` exits with ENCRYPTION_KEY_MISMATCH
    (naming the fingerprint) for another key, ENCRYPTION_KEY_MISSING without a key and
    ENCRYPTION_KEY_INVALID for a malformed one, never printing a key."""
    key, data, port = new_key_b64(), tmp_path / "data", free_port()
    marker = f"SERVE-MARKER-{os.urandom(8).hex()}"
    proc = _serve(data, port, {ENV: key})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(proc, base)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(f"{base}/v1/streams/s/chunks", json={"content": marker}, headers=auth)
        assert created.status_code == 201, created.text
        status = httpx.get(f"{base}/v1/encryption/status", headers=auth).json()
        assert status["enabled"] is True
        fingerprint = status["fingerprint"]
        assert httpx.get(f"{base}/v1/chunks/{created.json()['id']}", headers=auth).json()["content"] == marker
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert (key in output) is False, "the master key reached the server log"
    assert raw_files_containing(data / "storage", marker.encode()) == [], "chunk plaintext in storage files"
    for extra, code in (
        ({ENV: new_key_b64()}, "ENCRYPTION_KEY_MISMATCH"),
        ({}, "ENCRYPTION_KEY_MISSING"),
        ({ENV: "bm90LWEta2V5"}, "ENCRYPTION_KEY_INVALID"),
    ):
        refused = subprocess.run(
            [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(data), "--port", str(free_port())],
            env=serve_env(TOKEN, extra), capture_output=True, text=True, timeout=120,
        )
        assert refused.returncode == 1, f"{code}: server started anyway"
        assert f"error[{code}]" in refused.stderr, refused.stderr[-2000:]
        assert fingerprint in refused.stderr or code == "ENCRYPTION_KEY_INVALID"
        assert all((v in refused.stderr + refused.stdout) is False for v in extra.values()), "key printed"
