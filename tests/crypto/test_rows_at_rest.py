"""Row sealing over real RocksDB: no plaintext on disk, binding, tampering, legacy rows, shredding."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from loom_core.contracts.storage import WriteBatch
from loom_core.crypto import layout
from loom_core.errors import ErrorCode, LoomError

from .helpers import ENV, codec_for, new_key_b64, open_storage, raw_files_containing

NO_COMPRESSION = {"compression": "none"}  # so compression cannot hide a marker in the control run


def _write_marked_rows(storage: Any, codec: Any, markers: dict[str, bytes]) -> None:
    batch = WriteBatch()
    for n, (label, marker) in enumerate(markers.items()):
        stream = f"stream-{n % 3}"
        chunk = json.dumps({"content": f"note {marker.decode()} end", "metadata": {"tag": label}}).encode()
        key = f"chunk:L0:{n:04d}".encode()
        batch.put("chunks", key, codec.seal(stream, key, chunk))
        entity = json.dumps({"name": marker.decode(), "aliases": [marker.decode() + "-alias"]}).encode()
        ekey = f"entity:{n:04d}".encode()
        batch.put("graph", ekey, codec.seal(stream, ekey, entity))
    storage.write(batch, durable=True)
    storage.flush()
    storage.compact()


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plaintext-control"])
def test_no_marker_in_any_file_when_encrypted(tmp_path: Path, encrypted: bool) -> None:
    """Proves that with encryption on, no file under the storage directory (SST, WAL, logs)
    holds any marker written in chunk content, metadata or entity names, while the same
    rows written without encryption put every marker on disk (the check can fail)."""
    markers = {f"m{i}": f"MARKER-{os.urandom(12).hex()}".encode() for i in range(12)}
    environ = {ENV: new_key_b64()} if encrypted else {}
    storage = open_storage(tmp_path / "db", NO_COMPRESSION)
    try:
        codec = codec_for(storage, environ)
        assert codec.encrypting is encrypted
        _write_marked_rows(storage, codec, markers)
        # the rows still read back through the codec
        stored = storage.get("chunks", b"chunk:L0:0000")
        assert markers["m0"] in codec.open("stream-0", b"chunk:L0:0000", stored)
    finally:
        storage.close()
    leaked = {label for label, marker in markers.items() if raw_files_containing(tmp_path / "db", marker)}
    if encrypted:
        assert not leaked, f"plaintext markers {sorted(leaked)} found on disk with encryption on"
    else:
        assert leaked == set(markers), "control: markers must be on disk without encryption"


@pytest.fixture
def sealed_db(tmp_path: Path) -> Any:
    storage = open_storage(tmp_path / "db")
    codec = codec_for(storage, {ENV: new_key_b64()})
    yield storage, codec
    storage.close()


def test_tampered_ciphertext_is_refused(sealed_db: Any) -> None:
    """Proves a row with any changed byte fails with CIPHER_DECRYPT_FAILED instead of returning data."""
    storage, codec = sealed_db
    key = b"chunk:L0:0001"
    storage.put("chunks", key, codec.seal("alpha", key, b'{"content": "pay 10 EUR"}'))
    stored = storage.get("chunks", key)
    for i in (len(stored) // 2, len(stored) - 1, 20):
        storage.put("chunks", key, stored[:i] + bytes([stored[i] ^ 0x04]) + stored[i + 1 :])
        with pytest.raises(LoomError) as info:
            codec.open("alpha", key, storage.get("chunks", key))
        assert info.value.code == ErrorCode.CIPHER_DECRYPT_FAILED


def test_row_swapped_between_keys_is_refused(sealed_db: Any) -> None:
    """Proves a row copied onto another record's key (same stream) or into another stream
    fails to open rather than returning the wrong memory."""
    storage, codec = sealed_db
    a, b = b"chunk:L0:000A", b"chunk:L0:000B"
    storage.put("chunks", a, codec.seal("alpha", a, b"memory A"))
    storage.put("chunks", b, codec.seal("alpha", b, b"memory B"))
    codec.seal("beta", b"chunk:L0:000C", b"memory C")  # beta has its own key
    storage.put("chunks", b, storage.get("chunks", a))  # copy A's bytes onto B's key
    with pytest.raises(LoomError) as info:
        codec.open("alpha", b, storage.get("chunks", b))
    assert info.value.code == ErrorCode.CIPHER_DECRYPT_FAILED
    for stream in ("beta", "gamma"):  # another stream, with and without a key of its own
        with pytest.raises(LoomError) as info:
            codec.open(stream, a, storage.get("chunks", a))
        assert info.value.code == ErrorCode.CIPHER_DECRYPT_FAILED
    assert codec.open("alpha", a, storage.get("chunks", a)) == b"memory A"


def test_legacy_plaintext_rows_stay_readable(tmp_path: Path) -> None:
    """Proves rows written before encryption was turned on still read after it is on,
    next to new encrypted rows."""
    storage = open_storage(tmp_path / "db")
    try:
        plain = codec_for(storage, {})
        storage.put("chunks", b"chunk:L0:old", plain.seal("alpha", b"chunk:L0:old", b'{"content": "legacy"}'))
        codec = codec_for(storage, {ENV: new_key_b64()})
        storage.put("chunks", b"chunk:L0:new", codec.seal("alpha", b"chunk:L0:new", b'{"content": "new"}'))
        assert codec.open("alpha", b"chunk:L0:old", storage.get("chunks", b"chunk:L0:old")) == b'{"content": "legacy"}'
        assert codec.open("alpha", b"chunk:L0:new", storage.get("chunks", b"chunk:L0:new")) == b'{"content": "new"}'
        assert storage.get("chunks", b"chunk:L0:new").startswith(layout.ROW_MAGIC)
    finally:
        storage.close()


def test_data_key_generated_lazily_and_stored_wrapped(sealed_db: Any) -> None:
    """Proves a stream gets a data key only on its first encrypted write, stored wrapped
    (the raw key is not in the keys family) and bound to the stream."""
    storage, codec = sealed_db
    assert list(storage.iterate("keys", prefix=layout.DEK_PREFIX)) == []
    codec.seal("alpha", b"k", b"v")
    entries = dict(storage.iterate("keys", prefix=layout.DEK_PREFIX))
    assert list(entries) == [b"dek:alpha"]
    raw_key = codec.keyring.current("alpha").reveal()
    assert (raw_key in entries[b"dek:alpha"]) is False, "data key stored unwrapped"
    # moving alpha's wrapped key to another stream does not open
    storage.put("keys", b"dek:beta", entries[b"dek:alpha"])
    codec.keyring.forget_cache()
    with pytest.raises(LoomError) as info:
        codec.keyring.current("beta")
    assert info.value.code == ErrorCode.CIPHER_DECRYPT_FAILED


def _shred_setup(root: Path, *, shred: bool) -> tuple[Path, str, bytes, bytes, bytes]:
    """Write two streams, flush to SST files, delete stream ``doomed`` (shredding its key
    when ``shred``), copy the directory right away; returns the copy and what to look for."""
    key = new_key_b64()
    db = root / "db"
    storage = open_storage(db, NO_COMPRESSION)
    try:
        codec = codec_for(storage, {ENV: key})
        rows = {}
        for stream in ("doomed", "kept"):
            for n in range(20):
                rkey = f"chunk:L0:{stream}-{n:03d}".encode()
                rows[(stream, rkey)] = codec.seal(stream, rkey, f"{stream} secret {n}".encode())
                storage.put("chunks", rkey, rows[(stream, rkey)])
        storage.flush()  # rows and keys now live in SST files
        wrapped = layout.decode_dek_record(storage.get("keys", b"dek:doomed"))[1]
        target = b"chunk:L0:doomed-007"
        sealed = rows[("doomed", target)]
        batch = WriteBatch()
        for stream, rkey in rows:
            if stream == "doomed":
                batch.delete("chunks", rkey)
        storage.write(batch, durable=True)
        if shred:
            codec.forget_streams(["doomed"])
        copy = root / "copy"
        shutil.copytree(db, copy, ignore=shutil.ignore_patterns("LOCK"))
    finally:
        storage.close()
    return copy, key, wrapped, target, sealed


def test_crypto_shredded_stream_unreadable_from_copy(tmp_path: Path) -> None:
    """Proves deleting a stream destroys its data key at once: no file of a copy of the data
    directory taken right after the deletion (WAL included) holds the wrapped key, the
    stream's ciphertext is still physically there (data families not compacted yet) but
    opens only to ENCRYPTION_KEY_DESTROYED, and other streams are unaffected."""
    copy, key, wrapped, target, sealed = _shred_setup(tmp_path, shred=True)
    assert raw_files_containing(copy, wrapped) == [], "the wrapped key survived the shredding"
    assert raw_files_containing(copy, sealed), "precondition: the deleted rows are still on disk"
    storage = open_storage(copy)
    try:
        codec = codec_for(storage, {ENV: key})
        with pytest.raises(LoomError) as info:
            codec.open("doomed", target, sealed)
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_DESTROYED
        kept = b"chunk:L0:kept-003"
        assert codec.open("kept", kept, storage.get("chunks", kept)) == b"kept secret 3"
        # a new stream of the same name gets a new key; old rows stay destroyed
        codec.seal("doomed", b"chunk:L0:fresh", b"new life")
        with pytest.raises(LoomError) as info:
            codec.open("doomed", target, sealed)
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_DESTROYED
    finally:
        storage.close()


def test_without_shredding_the_copy_still_opens(tmp_path: Path) -> None:
    """Control for the shredding test: without destroying the key, the wrapped key is on
    disk in the copy and the deleted rows decrypt (so the shredding test can fail)."""
    copy, key, wrapped, target, sealed = _shred_setup(tmp_path, shred=False)
    assert raw_files_containing(copy, wrapped), "control: the wrapped key should be on disk"
    storage = open_storage(copy)
    try:
        assert codec_for(storage, {ENV: key}).open("doomed", target, sealed) == b"doomed secret 7"
    finally:
        storage.close()
