"""The RowCodec seam: every content, metadata and graph value passes through it,
bound to its stream and exact storage key; deleting a stream tells the codec."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest


class BindingCodec:
    """A real (toy) codec: XOR with a keystream derived from (stream, key), so a
    value opened under another stream or key does not decode; records every call."""

    MAGIC = b"TEST1"

    def __init__(self) -> None:
        self.sealed: list[tuple[str, bytes]] = []
        self.forgotten: list[str] = []

    @staticmethod
    def _pad(stream: str, key: bytes, size: int) -> bytes:
        import hashlib

        out = b""
        counter = 0
        while len(out) < size:
            out += hashlib.sha256(stream.encode() + b"\0" + key + counter.to_bytes(4, "big")).digest()
            counter += 1
        return out[:size]

    def seal(self, stream: str, record_key: bytes, plaintext: bytes) -> bytes:
        self.sealed.append((stream, record_key))
        digest = self._pad(stream, record_key + b"#check", 8)
        body = plaintext + digest
        return self.MAGIC + bytes(a ^ b for a, b in zip(body, self._pad(stream, record_key, len(body))))

    def open(self, stream: str, record_key: bytes, stored: bytes) -> bytes:
        if not stored.startswith(self.MAGIC):
            raise LoomError(ErrorCode.CIPHER_DECRYPT_FAILED, "not sealed")
        raw = stored[len(self.MAGIC) :]
        body = bytes(a ^ b for a, b in zip(raw, self._pad(stream, record_key, len(raw))))
        if body[-8:] != self._pad(stream, record_key + b"#check", 8):
            raise LoomError(ErrorCode.CIPHER_DECRYPT_FAILED, "value does not belong to this row")
        return body[:-8]

    def forget_streams(self, streams: Sequence[str]) -> None:
        self.forgotten.extend(streams)


def test_values_go_through_the_codec_with_their_storage_key(open_engine: Callable[..., MemoryEngine]) -> None:
    """Chunk and graph values are stored sealed (no marker in the raw values), the
    codec sees the exact storage keys, and everything reads back through the engine."""
    codec = BindingCodec()
    engine = open_engine(codec=codec)
    chunk = engine.add_chunk("s", ChunkInput("secret-marker-alpha", metadata={"m": "secret-marker-beta"}))
    ent = engine.add_entity("s", type="person", name="secret-marker-gamma", aliases=["secret-marker-delta"])
    engine.add_relation("s", subject=ent.id, predicate="secret-marker-eps", object=ent.id)
    keys = {key for _stream, key in codec.sealed}
    assert f"chunk:L0:{chunk.id}".encode() in keys and f"ent:{ent.id}".encode() in keys
    for space in ("chunks", "graph"):
        for key, value in engine.storage.iterate(space):
            assert (b"secret-marker" in value) is False, f"plaintext in {space}"
            if space == "chunks" or key.startswith((b"ent:", b"rel:")):
                assert (key in keys) is True
    assert engine.get_chunk(chunk.id).metadata == {"m": "secret-marker-beta"}
    assert engine.get_entity(ent.id).aliases == ["secret-marker-delta"]
    assert engine.search(SearchRequest("secret-marker-alpha", mode="bm25"))[0].chunk.id == chunk.id


def test_a_row_copied_onto_another_key_fails_to_open(open_engine: Callable[..., MemoryEngine]) -> None:
    """Because the codec is bound to the storage key, swapping two rows' values is detected."""
    engine = open_engine(codec=BindingCodec())
    a = engine.add_chunk("s", ChunkInput("first"))
    b = engine.add_chunk("s", ChunkInput("second"))
    key_a, key_b = f"chunk:L0:{a.id}".encode(), f"chunk:L0:{b.id}".encode()
    engine.storage.put("chunks", key_a, engine.storage.get("chunks", key_b))
    with pytest.raises(LoomError) as err:
        engine.get_chunk(a.id)
    assert err.value.code is ErrorCode.CIPHER_DECRYPT_FAILED


def test_delete_stream_tells_the_codec(open_engine: Callable[..., MemoryEngine]) -> None:
    """forget_streams is called with the deleted stream (key destruction hook)."""
    codec = BindingCodec()
    engine = open_engine(codec=codec)
    engine.add_chunk("gone", ChunkInput("x"))
    engine.delete_stream("gone")
    assert codec.forgotten == ["gone"]


def test_plain_codec_stores_values_readably(open_engine: Callable[..., MemoryEngine], tmp_path: Path) -> None:
    """Without a codec the marker is in the stored value (so the sealed test above can fail)."""
    engine = open_engine()
    engine.add_chunk("s", ChunkInput("plain-marker"))
    assert any(b"plain-marker" in value for _key, value in engine.storage.iterate("chunks"))
    assert all(b"plain-marker" not in value for _key, value in engine.storage.iterate("intents"))


def test_intents_hold_the_operation_and_ids_never_content(open_engine: Callable[..., MemoryEngine]) -> None:
    """Every intent row written (add, supersede, delete, stream delete) holds the operation and ids
    (a stream delete: the stream's name, which its replay needs), never content or metadata. Rows are
    captured as they are written: the engine removes an intent once its write is complete."""
    import json

    engine = open_engine()
    written: list[dict[str, object]] = []
    write = engine.storage.write

    def capture(batch: Any, durable: bool = False) -> None:
        written.extend(json.loads(op.value) for op in batch.ops if op.keyspace == "intents" and op.value)
        write(batch, durable=durable)

    engine.storage.write = capture  # type: ignore[method-assign]
    marker = "intent-canary-" + "9" * 12
    first = engine.add_chunk("s", ChunkInput(marker, metadata={"note": marker}))
    second = engine.add_chunk("s", ChunkInput(marker + " again", supersedes=first.id))
    engine.delete_chunk(second.id)
    engine.add_chunk("doomed", ChunkInput(marker))
    engine.delete_stream("doomed")
    assert {i["op"] for i in written} == {"upsert", "delete_stream"}
    assert all(set(i) <= {"op", "ids", "stream"} for i in written), written
    assert {first.id, second.id} <= {x for i in written for x in i.get("ids", [])}  # type: ignore[attr-defined]
    assert all(marker not in json.dumps(i) for i in written)
    assert list(engine.storage.iterate("intents")) == []
