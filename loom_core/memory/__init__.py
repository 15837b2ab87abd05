"""Loomem: streams of chunks with history, an entity graph and hybrid search."""

from loom_core.memory.models import (
    Chunk,
    ChunkInput,
    Entity,
    Page,
    Relation,
    SearchRequest,
    SearchResult,
    SignalScores,
    StreamInfo,
)
from loom_core.memory.rowcodec import PlainRowCodec, RowCodec

__all__ = [
    "Chunk",
    "ChunkInput",
    "Entity",
    "Page",
    "PlainRowCodec",
    "Relation",
    "RowCodec",
    "SearchRequest",
    "SearchResult",
    "SignalScores",
    "StreamInfo",
]
