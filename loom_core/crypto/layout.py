"""Where encryption keeps its records, and how associated data is built.

Everything encryption persists lives in two keyspaces: ``keys`` (wrapped data
keys, small and compacted on every crypto-shred) and ``meta`` (the master-key
check record, a pending rotation, a pending ``keys`` compaction, backfill progress). Associated data is
length-prefixed so no two different (stream, record) pairs can collide.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

KEYS = "keys"
META = "meta"

DEK_PREFIX = b"dek:"
STAGED_PREFIX = b"next:"
#: ``gone:<key_id>``: a destroyed key generation (no stream name, no key bytes).
DESTROYED_PREFIX = b"gone:"
MASTER_RECORD = b"encryption.master"
ROTATION_RECORD = b"encryption.rotation"
BACKFILL_RECORD = b"encryption.backfill"
#: present while the ``keys`` keyspace still has to be compacted (copies wrapped under a retired master key)
KEYS_COMPACTION_RECORD = b"encryption.keys_compaction"

#: Prefix of every encrypted row: ``ROW_MAGIC | key_id (8) | cipher output``.
ROW_MAGIC = b"LMR\x01"
KEY_ID_SIZE = 8
DEK_RECORD_VERSION = b"\x01"
CANARY_PLAINTEXT = b"loom master key check v1"
CANARY_AAD = b"loom.master.canary.v1"


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def dek_key(stream: str, *, staged: bool = False) -> bytes:
    """The ``keys`` entry holding ``stream``'s wrapped data key."""
    return (STAGED_PREFIX if staged else DEK_PREFIX) + stream.encode("utf-8")


def stream_of_dek_key(key: bytes) -> str:
    prefix = STAGED_PREFIX if key.startswith(STAGED_PREFIX) else DEK_PREFIX
    return key[len(prefix) :].decode("utf-8")


def dek_aad(stream: str, key_id: bytes) -> bytes:
    """Binds a wrapped data key to its stream and its generation."""
    return b"loom.dek.v1" + _lp(stream.encode("utf-8")) + key_id


def row_aad_prefix(stream: str, key_id: bytes) -> bytes:
    """The part of a row's associated data fixed per stream and data key."""
    return b"loom.row.v1" + key_id + _lp(stream.encode("utf-8"))


def row_aad(stream: str, record_key: bytes, key_id: bytes) -> bytes:
    """Binds an encrypted row to its stream, its storage key and its data key.

    The stream is length-prefixed and the key id fixed-size, so the record
    key, last, needs no prefix for the encoding to stay unambiguous.
    """
    return row_aad_prefix(stream, key_id) + bytes(record_key)


def encode_dek_record(key_id: bytes, wrapped: bytes) -> bytes:
    return DEK_RECORD_VERSION + key_id + wrapped


def decode_dek_record(value: bytes) -> tuple[bytes, bytes]:
    """``(key_id, wrapped)``; raises ``ValueError`` on a foreign layout."""
    if len(value) <= 1 + KEY_ID_SIZE or value[:1] != DEK_RECORD_VERSION:
        raise ValueError("unknown data-key record layout")
    return value[1 : 1 + KEY_ID_SIZE], value[1 + KEY_ID_SIZE :]


def dump_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")


def load_json(value: bytes) -> dict[str, Any]:
    loaded = json.loads(value.decode("utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError("record is not a JSON object")
    return loaded


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
