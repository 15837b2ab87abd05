"""Index contract: full-text (BM25-style) search over chunk text with filters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Capability name of the optional ``add_new`` method (see :class:`Index`).
ADD_NEW = "add_new"


@dataclass(frozen=True)
class IndexDocument:
    """What the index stores for one chunk: text plus routing metadata."""

    id: str
    stream: str
    level: int
    text: str
    created_at: int  # milliseconds since the Unix epoch
    superseded: bool = False


@dataclass(frozen=True)
class IndexQuery:
    """A ranked full-text query with filters; ``None`` means "no filter"."""

    text: str
    streams: Sequence[str] | None = None
    levels: Sequence[int] | None = None
    since: int | None = None  # inclusive, ms
    until: int | None = None  # exclusive, ms
    include_superseded: bool = False
    limit: int = 10


@dataclass(frozen=True)
class IndexHit:
    id: str
    score: float


@runtime_checkable
class Index(Protocol):
    """Guarantees every backend gives:

    * :meth:`upsert` replaces any document with the same id (no duplicates).
    * Changes are visible to :meth:`search` after :meth:`commit`, and survive
      closing and reopening the same directory.
    * Filters are exact: no hit outside the requested streams, levels or time
      range; superseded documents only when asked for.
    * Hits are ordered by descending score; scores are comparable within one
      query only.
    * A malformed query raises ``INDEX_QUERY_INVALID``, never an empty result
      that hides the error. Plain user text with quotes or operators is safe.
    * :meth:`rebuild` replaces the whole content with the given documents.

    Optional capability ``add_new`` (declared in ``capabilities``; not part of
    the protocol, so callers check for it and fall back to :meth:`upsert`):
    ``add_new(docs: Sequence[IndexDocument]) -> None`` queues documents whose
    ids the caller guarantees are in neither the index nor the uncommitted
    queue (freshly minted ids), so the backend may skip the replace-by-id
    step. Everything else is as for :meth:`upsert`: visible after
    :meth:`commit`, removable by :meth:`delete` (also before the commit),
    replaceable by a later :meth:`upsert`.
    """

    capabilities: frozenset[str]

    def upsert(self, docs: Sequence[IndexDocument]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def delete_stream(self, stream: str) -> None: ...

    def search(self, query: IndexQuery) -> list[IndexHit]: ...

    def commit(self) -> None: ...

    def count(self) -> int:
        """Number of committed documents."""
        ...

    def ids(self) -> set[str]:
        """Ids of all committed documents (for consistency checks)."""
        ...

    def rebuild(self, docs: Iterable[IndexDocument]) -> None: ...

    def close(self) -> None: ...
