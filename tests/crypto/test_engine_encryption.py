"""Encryption at rest through the real memory engine (RocksDB + Tantivy + hash embedder)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from loom_core.config import LoomConfig
from loom_core.crypto import backfill, layout
from loom_core.crypto.engine_glue import engine_lock, open_engine, sealed_families
from loom_core.crypto.rowcodec import is_sealed
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory import rows
from loom_core.memory.engine import now_ms
from loom_core.memory.models import ChunkInput
from loom_core.plugins.host import PluginHost

from .helpers import ENV, new_key_b64, raw_files_containing

CONFIG = LoomConfig.model_validate({"storage": {"options": {"compression": "none"}}})


def _engine(data_dir: Path, environ: dict[str, str]) -> Any:
    return open_engine(CONFIG, PluginHost(environ=environ), data_dir, environ)


def _marker(label: str) -> str:
    return f"{label}-{os.urandom(10).hex()}"


def _write_everything(engine: Any, markers: dict[str, str]) -> None:
    engine.add_chunks("alpha", [
        ChunkInput(content=f"meeting notes {markers['content']}", metadata={"topic": markers["metadata"]}),
        ChunkInput(content=f"second chunk {markers['batch']}", level=1),
    ])
    alice = engine.add_entity("alpha", type=markers["type"], name=markers["entity"], aliases=[markers["alias"]],
                              metadata={"note": markers["entity_meta"]})
    bob = engine.add_entity("alpha", type="person", name="bob")
    engine.add_relation("alpha", subject=alice.id, predicate=markers["predicate"], object=bob.id,
                        metadata={"how": markers["relation"]})


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plaintext-control"])
def test_no_marker_in_storage_files(tmp_path: Path, encrypted: bool) -> None:
    """Proves that with encryption on, after flush and compaction no file under the storage
    directory (SST, WAL, MANIFEST, logs) holds any marker written in chunk content, metadata,
    entity names, types, aliases, relation predicates or relation data, and that the very same markers are on disk when
    encryption is off (so the scan can fail). The full-text index is plaintext by design and
    lives outside the storage directory."""
    markers = {k: _marker(k.upper()) for k in
               ("content", "metadata", "batch", "entity", "alias", "entity_meta", "type", "predicate", "relation")}
    engine = _engine(tmp_path, {ENV: new_key_b64()} if encrypted else {})
    try:
        _write_everything(engine, markers)
        engine.storage.flush()
        engine.storage.compact()
        found = engine.list_entities("alpha", name=markers["alias"])
        assert [e.name for e in found] == [markers["entity"]], "reads still work through the codec"
    finally:
        engine.close()
    on_disk = {k for k, m in markers.items() if raw_files_containing(tmp_path / "storage", m.encode())}
    if encrypted:
        assert not on_disk, f"plaintext of {sorted(on_disk)} found in storage files with encryption on"
    else:
        assert on_disk == set(markers), f"control: only {sorted(on_disk)} found without encryption"


@pytest.fixture
def encrypted_dir(tmp_path: Path) -> tuple[Path, str, list[str]]:
    key = new_key_b64()
    engine = _engine(tmp_path, {ENV: key})
    try:
        ids = [c.id for c in engine.add_chunks("alpha", [ChunkInput(content=f"alpha {n}") for n in range(3)])]
    finally:
        engine.close()
    return tmp_path, key, ids


def test_engine_refuses_wrong_or_missing_key(encrypted_dir: tuple[Path, str, list[str]]) -> None:
    """Proves the engine does not open over encrypted data with another key (MISMATCH), without
    a key (MISSING), or without a key while the expect flag is set (MISSING)."""
    path, key, _ = encrypted_dir
    for environ, code in (
        ({ENV: new_key_b64()}, ErrorCode.ENCRYPTION_KEY_MISMATCH),
        ({}, ErrorCode.ENCRYPTION_KEY_MISSING),
        ({"LOOMEM_AT_REST_EXPECT_ENABLED": "1"}, ErrorCode.ENCRYPTION_KEY_MISSING),
    ):
        with pytest.raises(LoomError) as info:
            _engine(path, environ)
        assert info.value.code == code
    _engine(path, {ENV: key}).close()  # and nothing was left locked


def _refused(engine: Any, chunk_ids: list[str]) -> None:
    """Reading each of ``chunk_ids`` fails with CIPHER_DECRYPT_FAILED (no bytes returned)."""
    for chunk_id in chunk_ids:
        with pytest.raises(LoomError) as info:
            engine.get_chunk(chunk_id)
        assert info.value.code == ErrorCode.CIPHER_DECRYPT_FAILED, chunk_id


def test_tampered_and_swapped_rows_fail_closed(encrypted_dir: tuple[Path, str, list[str]]) -> None:
    """Proves a modified chunk row and a row copied onto another chunk's key are refused with
    CIPHER_DECRYPT_FAILED instead of returning (wrong) content."""
    path, key, ids = encrypted_dir
    engine = _engine(path, {ENV: key})
    try:
        k0, k1, k2 = (f"chunk:L0:{i}".encode() for i in ids)
        row0 = engine.storage.get("chunks", k0)
        engine.storage.put("chunks", k1, row0)  # swap: chunk 0's row under chunk 1's key
        tampered = engine.storage.get("chunks", k2)
        engine.storage.put("chunks", k2, tampered[:-3] + bytes([tampered[-3] ^ 1]) + tampered[-2:])
        _refused(engine, ids[1:])
        assert engine.get_chunk(ids[0]).content == "alpha 0"
    finally:
        engine.close()


def test_legacy_rows_then_backfill(tmp_path: Path) -> None:
    """Proves chunks and entities written before encryption was on stay readable once it is on,
    new ones are sealed, and the backfill (interrupted after one batch, then resumed) seals every
    legacy row without changing what the engine returns."""
    engine = _engine(tmp_path, {})
    try:
        old = [c.id for c in engine.add_chunks("alpha", [ChunkInput(content=f"legacy {n}") for n in range(30)])]
        ent = engine.add_entity("alpha", type="topic", name="legacy entity", aliases=["old"])
    finally:
        engine.close()
    key = new_key_b64()
    engine = _engine(tmp_path, {ENV: key})
    try:
        new = engine.add_chunk("alpha", ChunkInput(content="fresh")).id
        assert is_sealed(engine.storage.get("chunks", f"chunk:L0:{new}".encode()))
        assert not is_sealed(engine.storage.get("chunks", f"chunk:L0:{old[0]}".encode()))
        assert engine.get_chunk(old[0]).content == "legacy 0"
        families = sealed_families(engine)

        class Interrupt(Exception):
            pass

        def stop(view: dict[str, Any]) -> None:
            raise Interrupt

        with pytest.raises(Interrupt):
            backfill.run(engine.storage, engine.codec, families, batch_size=10, progress=stop,
                         lock=engine_lock(engine))
        assert backfill.status(engine.storage)["state"] == "running"
        result = backfill.run(engine.storage, engine.codec, families, batch_size=10, lock=engine_lock(engine))
        assert result["state"] == "done" and result["encrypted"] == 31  # 30 chunks + 1 entity
        for chunk_id in old:
            assert is_sealed(engine.storage.get("chunks", f"chunk:L0:{chunk_id}".encode()))
        assert [engine.get_chunk(i).content for i in old] == [f"legacy {n}" for n in range(30)]
        assert engine.get_entity(ent.id).aliases == ["old"]
    finally:
        engine.close()


def test_deleted_stream_is_crypto_shredded(tmp_path: Path) -> None:
    """Proves deleting a stream through the engine destroys its data key at once: a copy of the
    data directory taken right after the deletion (data families not compacted) still holds the
    stream's sealed rows but not its wrapped key, and those rows open only to
    ENCRYPTION_KEY_DESTROYED; other streams are untouched."""
    key = new_key_b64()
    engine = _engine(tmp_path / "live", {ENV: key})
    try:
        doomed = engine.add_chunks("doomed", [ChunkInput(content=f"doomed {n}") for n in range(5)])
        engine.add_chunks("kept", [ChunkInput(content="kept 0")])
        engine.storage.flush()
        rkey = f"chunk:L0:{doomed[0].id}".encode()
        sealed = engine.storage.get("chunks", rkey)
        wrapped = layout.decode_dek_record(engine.storage.get("keys", b"dek:doomed"))[1]
        engine.delete_stream("doomed")
        shutil.copytree(tmp_path / "live", tmp_path / "copy", ignore=shutil.ignore_patterns("LOCK"))
    finally:
        engine.close()
    assert raw_files_containing(tmp_path / "copy" / "storage", sealed), "precondition: rows still on disk"
    assert raw_files_containing(tmp_path / "copy", wrapped) == [], "the wrapped key survived deletion"
    engine = _engine(tmp_path / "copy", {ENV: key})
    try:
        with pytest.raises(LoomError) as info:
            engine.codec.open("doomed", rkey, sealed)
        assert info.value.code == ErrorCode.ENCRYPTION_KEY_DESTROYED
        assert [c.content for c in engine.list_chunks("kept").items] == ["kept 0"]
    finally:
        engine.close()


@pytest.mark.parametrize("how", ["chunks one by one", "expiry", "last entity"])
def test_a_stream_emptied_row_by_row_is_shredded_at_once(tmp_path: Path, how: str) -> None:
    """Deleting a stream's last chunk (by id, or by the sweeper) or last entity left its data key alive
    until the next start, and delete_stream on the now empty stream was NOT_FOUND, so nothing could
    shred it. The key is destroyed with the last row now; writing to the stream again makes a new one."""
    key = new_key_b64()
    engine = _engine(tmp_path / "live", {ENV: key})
    try:
        if how == "last entity":
            entity = engine.add_entity("s", type="person", name="Zoe")
        else:
            expiry = now_ms() + 60_000 if how == "expiry" else None
            chunks = engine.add_chunks("s", [ChunkInput(content=f"row {n}", expires_at=expiry) for n in range(2)])
        old_key = engine.storage.get("keys", b"dek:s")
        assert old_key is not None
        if how == "chunks one by one":
            for chunk in chunks:
                engine.delete_chunk(chunk.id)
        elif how == "expiry":
            assert engine.sweep_expired(now=now_ms() + 120_000) == 2
        else:
            engine.delete_entity(entity.id)
        assert engine.storage.get("keys", b"dek:s") is None
        assert engine.codec.status()["enabled"] is True
        engine.add_chunk("s", ChunkInput(content="a new life"))
        new_key = engine.storage.get("keys", b"dek:s")
        assert new_key is not None and new_key != old_key
        assert [c.content for c in engine.list_chunks("s").items] == ["a new life"]
    finally:
        engine.close()


def test_a_chunk_whose_vector_is_missing_still_keeps_its_streams_key(tmp_path: Path) -> None:
    """Emptiness was judged from the in-memory vectors: with one chunk's embedding row missing (a state
    the consistency check reports as repairable), deleting the stream's other chunk destroyed the key
    and made the remaining chunk unreadable for good. Routing and graph decide now."""
    key = new_key_b64()
    engine = _engine(tmp_path / "d", {ENV: key})
    try:
        kept, other = engine.add_chunks("s", [ChunkInput("keep me"), ChunkInput("delete me")])
        engine.storage.delete("embeddings", rows.id_key(kept.id))
    finally:
        engine.close()
    engine = _engine(tmp_path / "d", {ENV: key})
    try:
        assert engine.check_consistency()["missing_vectors"] == [kept.id]
        engine.delete_chunk(other.id)
        assert engine.storage.get("keys", b"dek:s") is not None
        assert engine.get_chunk(kept.id).content == "keep me"
    finally:
        engine.close()


def test_a_sweep_emptying_many_streams_shreds_their_keys_in_one_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each emptied stream's key was destroyed with its own durable write, flush and compaction under
    the engine lock: a sweep over 2,000 one-chunk streams held it for 16 s. One of each now, for the
    whole sweep (it had been one per batch of 1,000 chunks: 50 at 50k expired chunks)."""
    engine = _engine(tmp_path / "d", {ENV: new_key_b64()})
    try:
        expiry = now_ms() + 60_000
        for n in range(40):  # 1,200 expired chunks: the sweep deletes them in two batches
            engine.add_chunks(f"user-{n}", [ChunkInput(f"note {n}.{i}", expires_at=expiry) for i in range(30)])
        engine.add_chunk("kept", ChunkInput("stays"))
        compactions: list[object] = []
        storage_type = type(engine.storage)
        real = storage_type.compact
        monkeypatch.setattr(storage_type, "compact", lambda self, ks=None: (compactions.append(ks), real(self, ks)))
        assert engine.sweep_expired(now=expiry + 1) == 1200
        assert compactions == ["keys"]
        assert [k for k, _ in engine.storage.iterate("keys", prefix=b"dek:")] == [b"dek:kept"]
    finally:
        engine.close()


@pytest.mark.parametrize("how", ["delete_chunk", "sweep"])
def test_an_index_failure_does_not_keep_an_emptied_streams_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The rows are gone once storage has them deleted; an index that then fails to commit left the
    emptied stream's key alive (and a sweep failing in a later batch lost every earlier batch's
    shredding, with no expired chunk left to retry on)."""
    engine = _engine(tmp_path / "d", {ENV: new_key_b64()})
    try:
        expiry = now_ms() + 60_000 if how == "sweep" else None
        solo = engine.add_chunk("solo", ChunkInput("alone", expires_at=expiry))
        if how == "sweep":  # "solo" empties in the first batch of 1,000; the second batch fails
            engine.add_chunks("filler", [ChunkInput(f"f{i}", expires_at=expiry) for i in range(1100)])
        commits: list[int] = []
        real_commit = engine.index.commit

        def failing_commit() -> None:
            commits.append(1)
            if how == "delete_chunk" or len(commits) > 1:
                raise LoomError(ErrorCode.INDEX_IO, "the index disk is full")
            real_commit()

        monkeypatch.setattr(engine.index, "commit", failing_commit)
        with pytest.raises(LoomError):
            if how == "sweep":
                engine.sweep_expired(now=expiry + 1)
            else:
                engine.delete_chunk(solo.id)
        assert engine.storage.get("keys", b"dek:solo") is None
    finally:
        monkeypatch.undo()
        engine.close()


def test_the_consistency_check_names_rows_that_do_not_open(tmp_path: Path) -> None:
    """One tampered row makes every listing of its stream fail with CIPHER_DECRYPT_FAILED, yet the
    consistency check said consistent: operators had no tool to find the row. It lists them now."""
    engine = _engine(tmp_path / "d", {ENV: new_key_b64()})
    try:
        good, bad = engine.add_chunks("s", [ChunkInput("fine"), ChunkInput("to be damaged")])
        entity = engine.add_entity("s", type="person", name="Zoe")
        assert engine.check_consistency()["consistent"] is True
        rkey = f"chunk:L0:{bad.id}".encode()
        row = engine.storage.get("chunks", rkey)
        engine.storage.put("chunks", rkey, row[:-1] + bytes([row[-1] ^ 1]))
        gkey = f"ent:{entity.id}".encode()
        graph_row = engine.storage.get("graph", gkey)
        engine.storage.put("graph", gkey, graph_row[:-1] + bytes([graph_row[-1] ^ 1]))
        report = engine.check_consistency()
        assert report["unreadable_chunks"] == [bad.id]
        assert report["unreadable_graph"] == [f"ent:{entity.id}"]
        assert report["consistent"] is False
        assert engine.get_chunk(good.id).content == "fine"
    finally:
        engine.close()


def test_a_graph_row_under_a_damaged_key_is_reported(tmp_path: Path) -> None:
    """Suspect keys were decoded for the second pass, so a key that is not UTF-8 named no row and
    the damaged row dropped out of the report."""
    engine = _engine(tmp_path / "d", {ENV: new_key_b64()})
    try:
        engine.add_entity("s", type="person", name="Zoe")
        engine.storage.put("graph", b"ent:\xff\xfegarbage", b"\x00\x00\x00\x02{}not a sealed body")
        report = engine.check_consistency()
        assert report["unreadable_graph"] == ["ent:\ufffd\ufffdgarbage"] and report["consistent"] is False
    finally:
        engine.close()


def test_backfill_reads_routing_rows_older_versions_wrote_with_a_raw_newline(tmp_path: Path) -> None:
    """Routing rows of a stream named "x\n" (accepted by earlier versions) load again, but the
    backfill still read them strictly and could never finish."""
    plain = _engine(tmp_path / "d", {})
    chunk = plain.add_chunk("x", ChunkInput("legacy row"))
    raw = plain.storage.get("routing", rows.id_key(chunk.id))
    plain.storage.put("routing", rows.id_key(chunk.id), raw.replace(b'"stream":"x"', b'"stream":"x\n"'))
    plain.close()
    engine = _engine(tmp_path / "d", {ENV: new_key_b64()})
    try:
        result = backfill.run(engine.storage, engine.codec, sealed_families(engine), lock=engine_lock(engine))
        assert result["state"] == "done" and result["encrypted"] == 1
        assert engine.get_chunk(chunk.id).content == "legacy row"
    finally:
        engine.close()


def test_encryption_status_shape(encrypted_dir: tuple[Path, str, list[str]]) -> None:
    """Proves the status the API serves names the fingerprint and the stream count, never a key."""
    from loom_core.crypto.offline import describe

    path, key, _ = encrypted_dir
    engine = _engine(path, {ENV: key})
    try:
        info = describe(engine.storage, engine.codec)
    finally:
        engine.close()
    assert info["enabled"] is True and info["streams_with_keys"] == 1
    assert info["fingerprint"] == info["expected_fingerprint"]
    assert (key in json.dumps(info)) is False


def test_interrupted_stream_deletion_is_shredded_at_next_start(tmp_path: Path) -> None:
    """Proves that when the process dies after a stream's rows were deleted but before its data
    key was destroyed, the next start destroys the orphaned key (and keeps every live stream's)."""
    key = new_key_b64()
    engine = _engine(tmp_path, {ENV: key})
    try:
        engine.add_chunks("doomed", [ChunkInput(content="doomed")])
        engine.add_chunks("kept", [ChunkInput(content="kept")])
        engine.add_entity("graph-only", type="topic", name="only in the graph")
        engine.codec.forget_streams = lambda streams: None  # the crash: the key is never destroyed
        engine.delete_stream("doomed")
        assert engine.storage.get("keys", b"dek:doomed") is not None
    finally:
        engine.close()
    engine = _engine(tmp_path, {ENV: key})
    try:
        assert engine.storage.get("keys", b"dek:doomed") is None, "orphaned key survived the restart"
        assert engine.storage.get("keys", b"dek:kept") is not None
        assert engine.storage.get("keys", b"dek:graph-only") is not None
        assert [c.content for c in engine.list_chunks("kept").items] == ["kept"]
    finally:
        engine.close()


def test_a_crash_before_the_keys_compaction_is_finished_at_next_start(tmp_path: Path) -> None:
    """Proves that when the process dies after a stream's key was deleted but before the ``keys``
    keyspace was compacted (the wrapped key still sits in a table file), the next start compacts it:
    afterwards no file under the data directory holds the wrapped key."""
    key = new_key_b64()
    engine = _engine(tmp_path, {ENV: key})
    try:
        engine.add_chunks("doomed", [ChunkInput(content="doomed")])
        engine.add_chunks("kept", [ChunkInput(content="kept")])
        engine.storage.flush()  # the wrapped key is in a table file now
        wrapped = layout.decode_dek_record(engine.storage.get("keys", b"dek:doomed"))[1]
        engine.storage.compact = lambda keyspace: None  # type: ignore[method-assign]  # the crash
        engine.delete_stream("doomed")
        assert engine.storage.get("keys", b"dek:doomed") is None
    finally:
        engine.close()
    assert raw_files_containing(tmp_path, wrapped), "precondition: the deleted key is still in a file"
    engine = _engine(tmp_path, {ENV: key})
    try:
        assert [c.content for c in engine.list_chunks("kept").items] == ["kept"]
    finally:
        engine.close()
    assert raw_files_containing(tmp_path, wrapped) == [], "the wrapped key survived the restart"


def test_a_checkpoint_of_an_encrypted_store_holds_ciphertext_only(tmp_path: Path) -> None:
    """Proves the seed's backup claim: the files of a checkpoint (a backup) taken with encryption on
    hold no chunk content, metadata or entity name in the clear (a plaintext control finds them), and
    its manifest names the master key's fingerprint (safe to keep beside backups)."""
    marker = "checkpoint-canary-" + "3" * 12
    fingerprints = {}
    for name, environ in (("plain", {}), ("sealed", {ENV: new_key_b64()})):
        engine = _engine(tmp_path / name, environ)
        try:
            engine.add_chunks("s", [ChunkInput(content=f"{marker} content", metadata={"m": marker})])
            engine.add_entity("s", type="person", name=f"{marker} person")
            engine.checkpoint(tmp_path / f"{name}-backup")
            fingerprints[name] = getattr(engine.codec, "fingerprint", None)
        finally:
            engine.close()
    assert raw_files_containing(tmp_path / "plain-backup", marker.encode()), "control: plaintext is visible"
    assert raw_files_containing(tmp_path / "sealed-backup", marker.encode()) == []
    manifests = {n: json.loads((tmp_path / f"{n}-backup" / "manifest.json").read_text()) for n in ("plain", "sealed")}
    assert manifests["plain"]["master_key_fingerprint"] is None
    assert fingerprints["sealed"] and manifests["sealed"]["master_key_fingerprint"] == fingerprints["sealed"]


def test_an_altered_row_header_fails_with_a_code(tmp_path: Path) -> None:
    """Proves a sealed row whose magic header byte was flipped, or that was cut short, is refused
    with CIPHER_DECRYPT_FAILED (it would otherwise read as a damaged legacy plaintext row and fail
    with an internal error), and no bytes of it are returned."""
    engine = _engine(tmp_path, {ENV: new_key_b64()})
    try:
        ids = [c.id for c in engine.add_chunks("s", [ChunkInput(content=f"header {n}") for n in range(3)])]
        k0, k1 = (f"chunk:L0:{i}".encode() for i in ids[:2])
        row0, row1 = engine.storage.get("chunks", k0), engine.storage.get("chunks", k1)
        engine.storage.put("chunks", k0, bytes([row0[0] ^ 0x20]) + row0[1:])
        engine.storage.put("chunks", k1, row1[:10])
        _refused(engine, ids[:2])
        assert engine.get_chunk(ids[2]).content == "header 2"
        entity = engine.add_entity("s", type="person", name="header person")
        ekey = rows.entity_key(entity.id)
        envelope = engine.storage.get("graph", ekey)
        header, sealed = rows.split_graph_envelope(envelope)
        engine.storage.put("graph", ekey, rows.graph_envelope(header, bytes([sealed[0] ^ 0x20]) + sealed[1:]))
        with pytest.raises(LoomError) as info:
            engine.get_entity(entity.id)
        assert info.value.code == ErrorCode.CIPHER_DECRYPT_FAILED
    finally:
        engine.close()


def test_a_plaintext_row_that_is_not_a_chunk_body_fails_with_a_code(tmp_path: Path) -> None:
    """Proves a chunk row replaced on disk by bytes that decode but are not a chunk body (not JSON,
    a JSON list, an object without content) is STORAGE_IO without encryption, never a crash."""
    engine = _engine(tmp_path, {})
    try:
        ids = [c.id for c in engine.add_chunks("s", [ChunkInput(content=f"plain {n}") for n in range(3)])]
        for chunk_id, junk in zip(ids, (b"\xff\xfe not json", b"[1, 2]", b'{"metadata": {}}')):
            engine.storage.put("chunks", f"chunk:L0:{chunk_id}".encode(), junk)
            with pytest.raises(LoomError) as info:
                engine.get_chunk(chunk_id)
            assert info.value.code == ErrorCode.STORAGE_IO, junk
    finally:
        engine.close()
