"""Plain data the memory engine takes and returns.

These are the shapes the REST API serialises (``to_dict``); they carry no
behaviour beyond validation-free conversion, so the API layer can validate
input with its own models and hand the engine these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SearchMode = Literal["hybrid", "bm25", "vector"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "bm25", "vector")


@dataclass(frozen=True)
class ChunkInput:
    """One memory to write. ``supersedes`` names the chunk this one replaces."""

    content: str
    level: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    supersedes: str | None = None
    expires_at: int | None = None  # ms since the Unix epoch; None keeps it forever


@dataclass(slots=True)
class Chunk:
    """A stored memory with its routing data, supersede chain and access statistics."""

    id: str
    stream: str
    level: int
    content: str
    metadata: dict[str, Any]
    created_at: int  # ms
    updated_at: int  # ms
    supersedes: str | None = None
    superseded_by: str | None = None
    expires_at: int | None = None  # ms
    access_count: int = 0
    last_accessed_at: int | None = None  # ms

    @property
    def superseded(self) -> bool:
        return self.superseded_by is not None

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["metadata"] = dict(self.metadata)
        return body


@dataclass(frozen=True)
class StreamInfo:
    """A stream (one agent's or user's memory namespace) and its live counts."""

    name: str
    chunk_count: int
    current_count: int  # chunks not superseded
    levels: dict[int, int]  # level -> chunk count
    last_write_at: int | None  # ms of the newest chunk's creation
    entity_count: int = 0  # entities of the stream's graph

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "chunk_count": self.chunk_count,
            "current_count": self.current_count,
            "levels": {str(k): v for k, v in sorted(self.levels.items())},
            "last_write_at": self.last_write_at,
            "entity_count": self.entity_count,
        }


@dataclass(frozen=True)
class Entity:
    """A node of a stream's entity graph: a person, project, place, ..."""

    id: str
    stream: str
    type: str
    name: str
    aliases: list[str]
    metadata: dict[str, Any]
    created_at: int
    updated_at: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Relation:
    """``subject --predicate--> object`` between two entity ids of one stream,
    valid in ``[valid_from, valid_to)`` (ms, None = open), with the chunk ids it
    was learnt from."""

    id: str
    stream: str
    subject: str
    predicate: str
    object: str
    valid_from: int | None
    valid_to: int | None
    source_chunks: list[str]
    metadata: dict[str, Any]
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchRequest:
    """A search. ``stream`` and ``streams`` may be combined; neither = all streams.
    ``mode``/``k`` default to the ``[search]`` configuration when None.
    ``since`` is inclusive, ``until`` exclusive (ms, on ``created_at``)."""

    query: str
    stream: str | None = None
    streams: Sequence[str] | None = None
    k: int | None = None
    levels: Sequence[int] | None = None
    mode: SearchMode | None = None
    include_superseded: bool = False
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True)
class SignalScores:
    """Per-signal scores of one result; a signal that did not rank it is None.

    ``bm25`` is the raw index score, ``vector`` the cosine similarity,
    ``recency`` the decay weight in (0, 1], ``fused`` the final score.
    """

    bm25: float | None
    vector: float | None
    recency: float
    fused: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    chunk: Chunk
    score: float  # equal to scores.fused
    scores: SignalScores

    def to_dict(self) -> dict[str, Any]:
        return {"chunk": self.chunk.to_dict(), "score": self.score, "scores": self.scores.to_dict()}


@dataclass(frozen=True)
class Page:
    """One page of a listing; pass ``next_cursor`` back to get the next page
    (None when this is the last page)."""

    items: list[Chunk]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [c.to_dict() for c in self.items], "next_cursor": self.next_cursor}


__all__ = [
    "SEARCH_MODES",
    "Chunk",
    "ChunkInput",
    "Entity",
    "Page",
    "Relation",
    "SearchMode",
    "SearchRequest",
    "SearchResult",
    "SignalScores",
    "StreamInfo",
]
