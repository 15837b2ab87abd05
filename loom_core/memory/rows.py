"""Row format: keyspaces, keys and the plaintext routing record.

=============  =====================================  =============================
keyspace       key                                    value
=============  =====================================  =============================
chunks         ``chunk:L{level}:{id}``                sealed JSON {content, metadata}
routing        ``{id}``                               plaintext JSON :class:`Routing`
embeddings     ``{id}``                               float32 little-endian vector
access         ``{id}``                               two uint64: count, last access ms
graph          ``ent:{id}`` / ``rel:{id}``            graph envelope (plaintext header
                                                      {stream, ...} + sealed JSON body)
graph          ``sent:{stream}\\0{id}``,               empty (stream membership; ids
               ``srel:{stream}\\0{id}``                only, never names)
intents        ``{ulid}``                             JSON {op, ids | stream}, no content
keys           reserved for wrapped data keys         (encryption at rest)
meta           ``schema_version``, ...                plaintext
meta           ``consolidated:{stream}``              the last raw chunk id consolidation
                                                      has taken (an id, no content)
=============  =====================================  =============================

Sealed values pass through the engine's RowCodec with the exact storage key as
``record_key``.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from json.encoder import encode_basestring as _encode_string
from typing import Any

from loom_core.errors import ErrorCode, LoomError

SCHEMA_VERSION = 1
KEYSPACES: tuple[str, ...] = (
    "chunks",
    "routing",
    "embeddings",
    "access",
    "graph",
    "intents",
    "keys",
    "meta",
)

STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")
_SAFE = re.compile(r"^[A-Za-z0-9._:@-]+\Z")  # needs no JSON escaping
_ACCESS = struct.Struct("<QQ")
_HEADER_LEN = struct.Struct(">I")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

#: The latest time a record may carry: 9999-12-31T23:59:59.999Z in ms. Times live in int64
#: columns and print as ISO-8601, so larger values would be stored and then break every open.
MAX_TIME_MS = 253_402_300_799_999
#: The highest chunk level (0 = raw, 1+ = consolidated).
MAX_LEVEL = 16
#: How deeply metadata may nest. Deeper values were stored and then failed every read.
MAX_METADATA_DEPTH = 32


def check_stream(stream: str) -> str:
    """Refuse stream names that would not round-trip through keys and URLs."""
    if not isinstance(stream, str) or not STREAM_NAME.match(stream):
        raise LoomError(
            ErrorCode.VALIDATION_FAILED,
            f"stream name {stream!r} is invalid: use 1-128 characters from letters, digits "
            "and . _ : @ -, starting with a letter or digit",
            details={"field": "stream"},
        )
    return stream


def chunk_key(level: int, chunk_id: str) -> bytes:
    return f"chunk:L{level}:{chunk_id}".encode()


def id_key(chunk_id: str) -> bytes:
    return chunk_id.encode()


def consolidation_key(stream: str) -> bytes:
    return f"consolidated:{stream}".encode()


def entity_key(entity_id: str) -> bytes:
    return f"ent:{entity_id}".encode()


def relation_key(relation_id: str) -> bytes:
    return f"rel:{relation_id}".encode()


def stream_entity_key(stream: str, entity_id: str) -> bytes:
    return f"sent:{stream}\0{entity_id}".encode()


def stream_relation_key(stream: str, relation_id: str) -> bytes:
    return f"srel:{stream}\0{relation_id}".encode()


def stream_of_member_key(kind: str, key: bytes) -> str:
    """The stream a ``stream_entity_key`` / ``stream_relation_key`` (``kind`` sent or srel) names."""
    return key[len(kind) + 1 :].split(b"\0", 1)[0].decode()


def stream_member_prefix(kind: str, stream: str) -> bytes:
    """``kind`` is ``sent`` or ``srel``."""
    return f"{kind}:{stream}\0".encode()


@dataclass(slots=True)
class Routing:
    """The plaintext routing record of one chunk (filtering, retention, chains)."""

    id: str
    stream: str
    level: int
    created_at: int
    updated_at: int
    supersedes: str | None = None
    superseded_by: str | None = None
    expires_at: int | None = None

    def to_bytes(self) -> bytes:
        """Compact JSON. Formatted directly (a visible share of ingest time
        otherwise): ids are ULIDs and stream names are checked against
        :data:`STREAM_NAME`, so no field needs escaping; anything else falls
        back to the JSON encoder."""
        if not _SAFE.match(f"{self.id}{self.stream}{self.supersedes or ''}{self.superseded_by or ''}"):
            return _ENCODER.encode(asdict(self)).encode()
        return (
            f'{{"id":"{self.id}","stream":"{self.stream}","level":{int(self.level)},'
            f'"created_at":{int(self.created_at)},"updated_at":{int(self.updated_at)},'
            f'"supersedes":{_ref(self.supersedes)},"superseded_by":{_ref(self.superseded_by)},'
            f'"expires_at":{"null" if self.expires_at is None else int(self.expires_at)}}}'
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Routing:
        # strict=False: versions that matched names with "$" stored "x\n" unescaped, and a strict
        # reader then refused every start of that data directory
        return cls(**json.loads(raw, strict=False))

    def expired(self, now: int) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def _ref(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def encode_access(count: int, last: int) -> bytes:
    return _ACCESS.pack(count, last)


def decode_access(raw: bytes) -> tuple[int, int]:
    count, last = _ACCESS.unpack(raw)
    return int(count), int(last)


def encode_body(content: str, metadata: Mapping[str, Any]) -> bytes:
    """The chunk value before sealing: ``{"content": ..., "metadata": {...}}``."""
    meta = _ENCODER.encode(dict(metadata)) if metadata else "{}"
    return f'{{"content":{_encode_string(content)},"metadata":{meta}}}'.encode()


def open_body(codec: Any, stream: str, key: bytes, stored: bytes, what: str) -> dict[str, Any]:
    """The JSON object the row stored under ``key`` holds, opened by the row ``codec``.

    A row that does not decode to an object was altered on disk: with encryption on, a
    sealed row whose header was changed or cut short reads as a (damaged) legacy
    plaintext row. Either way it is a coded error naming ``what``, never a crash.
    """
    try:
        body = json.loads(codec.open(stream, key, stored))
    except ValueError:  # not JSON, bad UTF-8 included
        body = None
    if not isinstance(body, dict):
        encrypted = bool(getattr(codec, "encrypting", False))
        raise LoomError(
            ErrorCode.CIPHER_DECRYPT_FAILED if encrypted else ErrorCode.STORAGE_IO,
            f"{what}: its stored row does not decode; it was modified on disk"
            + (" (an encrypted row whose header was altered reads as a damaged plaintext row)" if encrypted else "")
            + "; restore it from a backup",
            details={"stream": stream},
        )
    return body


def metadata_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as metadata (never quoting it), or None.

    What is stored must read back as standard JSON: no NaN or infinity (which the
    JSON module would write and every later response would refuse), no lone
    surrogates, no nesting beyond :data:`MAX_METADATA_DEPTH`.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > MAX_METADATA_DEPTH:
                return f"nests deeper than {MAX_METADATA_DEPTH} levels"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    try:
        _STRICT.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return "holds a string that is not valid Unicode (a lone surrogate)"
    except ValueError:
        return "holds a number JSON cannot represent (NaN or infinity)"
    except TypeError as exc:
        return f"must be JSON-serialisable ({exc})"
    return None


#: longest entity type, name, alias or relation predicate (characters)
MAX_NAME = 512


def text_problem(value: Any, max_chars: int | None = None) -> str | None:
    """Why ``value`` is not a storable non-blank text field (never quoting it), or None."""
    if not isinstance(value, str) or not value.strip() or (max_chars is not None and len(value) > max_chars):
        return "must be a non-empty string" + (f" of at most {max_chars} characters" if max_chars else "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def level_problem(value: Any) -> str | None:
    """Why ``value`` is not a chunk level, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LEVEL:
        return f"must be an integer from 0 to {MAX_LEVEL}"
    return None


def time_problem(value: Any) -> str | None:
    """Why ``value`` is not a storable time in ms since the Unix epoch, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a time in ms since the Unix epoch"
    if not 0 <= value <= MAX_TIME_MS:
        return "must be a time from 1970 to the year 9999, in ms since the Unix epoch"
    return None


def encode_json(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def graph_envelope(header: dict[str, Any], sealed_body: bytes) -> bytes:
    """A graph value: length-prefixed plaintext header (stream and timestamps
    only) followed by the sealed body."""
    head = encode_json(header)
    return _HEADER_LEN.pack(len(head)) + head + sealed_body


def split_graph_envelope(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = _HEADER_LEN.unpack_from(raw)
    header = json.loads(raw[4 : 4 + size])
    return header, raw[4 + size :]


def asdict_routing(record: Routing) -> dict[str, Any]:
    return asdict(record)
