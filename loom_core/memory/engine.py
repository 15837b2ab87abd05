"""The memory engine: chunks, history, entity graph, hybrid search, retention.

One :class:`MemoryEngine` owns a data directory: the storage backend under
``<data_dir>/storage``, the index backend under ``<data_dir>/index``, and an
in-memory vector store per stream loaded from the ``embeddings`` keyspace.
All methods are thread-safe (one engine lock for writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from loom_core.memory.models import (
    Chunk,
    ChunkInput,
    Entity,
    Page,
    Relation,
    SearchRequest,
    SearchResult,
    StreamInfo,
)
from loom_core.memory.rowcodec import RowCodec


class MemoryEngine:
    """Loomem's engine. Build with :meth:`open`; use as a context manager."""

    @classmethod
    def open(
        cls,
        config: Any,
        host: Any,
        data_dir: Path,
        *,
        codec: RowCodec | None = None,
        environ: Any = None,
        llm: Any = None,
    ) -> MemoryEngine:
        """Open (creating if needed) the memory in ``data_dir`` with the storage,
        index and LLM backends ``config`` selects, built through ``host``
        (a ``PluginHost``). Replays pending intents and rebuilds the index when
        it does not match storage. ``codec`` seals row values (default: plain).
        ``llm`` overrides the configured embedder (an already built backend)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the sweeper, flush access statistics, close the backends; idempotent."""
        raise NotImplementedError

    def __enter__(self) -> MemoryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- chunks -------------------------------------------------------------
    def add_chunks(self, stream: str, items: Sequence[ChunkInput]) -> list[Chunk]:
        """Write ``items`` to ``stream`` atomically (all or none) and index them.
        VALIDATION_FAILED for a bad stream name, level, expiry or empty content;
        NOT_FOUND when ``supersedes`` names no chunk; CONFLICT when it names a
        chunk that is already superseded (or twice in one batch)."""
        raise NotImplementedError

    def add_chunk(self, stream: str, item: ChunkInput) -> Chunk:
        """One chunk; see :meth:`add_chunks`."""
        raise NotImplementedError

    def get_chunk(self, chunk_id: str) -> Chunk:
        """The chunk (superseded ones too); NOT_FOUND when absent or expired.
        Counts as an access for decay."""
        raise NotImplementedError

    def history(self, chunk_id: str) -> list[Chunk]:
        """The whole supersede chain ``chunk_id`` belongs to, oldest first."""
        raise NotImplementedError

    def delete_chunk(self, chunk_id: str) -> None:
        """Remove a chunk from storage, index and vectors; the chain around it
        is re-linked (its predecessor and successor point at each other)."""
        raise NotImplementedError

    def list_streams(self) -> list[StreamInfo]:
        """Every stream that holds at least one chunk, by name."""
        raise NotImplementedError

    def list_chunks(
        self,
        stream: str,
        *,
        level: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """Chunks of ``stream`` in id (= creation) order, superseded ones included,
        expired ones not. ``cursor`` is the previous page's ``next_cursor``."""
        raise NotImplementedError

    def delete_stream(self, stream: str) -> int:
        """Remove every chunk, entity and relation of ``stream``; the number of
        chunks removed. NOT_FOUND when the stream holds nothing."""
        raise NotImplementedError

    # -- search -------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[SearchResult]:
        """Hybrid (BM25 + cosine, reciprocal-rank fused, recency weighted),
        ``bm25`` or ``vector`` search with exact filters; best first."""
        raise NotImplementedError

    # -- entity graph -------------------------------------------------------
    def add_entity(
        self,
        stream: str,
        *,
        type: str,
        name: str,
        aliases: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Entity:
        """Create an entity in ``stream``."""
        raise NotImplementedError

    def get_entity(self, entity_id: str) -> Entity:
        """NOT_FOUND when absent."""
        raise NotImplementedError

    def list_entities(
        self, stream: str, *, type: str | None = None, name: str | None = None
    ) -> list[Entity]:
        """Entities of ``stream``; ``name`` matches the name or an alias,
        case-insensitively."""
        raise NotImplementedError

    def delete_entity(self, entity_id: str) -> None:
        """Remove the entity and every relation that mentions it."""
        raise NotImplementedError

    def add_relation(
        self,
        stream: str,
        *,
        subject: str,
        predicate: str,
        object: str,
        valid_from: int | None = None,
        valid_to: int | None = None,
        source_chunks: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Relation:
        """Relate two entity ids of ``stream``; NOT_FOUND for an unknown entity
        or source chunk, VALIDATION_FAILED for ``valid_to <= valid_from``."""
        raise NotImplementedError

    def get_relation(self, relation_id: str) -> Relation:
        raise NotImplementedError

    def list_relations(
        self,
        stream: str,
        *,
        entity: str | None = None,
        predicate: str | None = None,
        at: int | None = None,
    ) -> list[Relation]:
        """Relations of ``stream``; ``entity`` as subject or object, ``at`` (ms)
        keeps those valid at that instant."""
        raise NotImplementedError

    def delete_relation(self, relation_id: str) -> None:
        raise NotImplementedError

    # -- retention, recovery, maintenance -------------------------------------
    def sweep_expired(self, now: int | None = None) -> int:
        """Delete chunks whose ``expires_at <= now`` (ms); the number removed."""
        raise NotImplementedError

    def start_sweeper(self, interval_seconds: float | None = None) -> None:
        """Run :meth:`sweep_expired` every ``interval_seconds`` (default
        ``retention.sweep_interval_seconds``) in a daemon thread."""
        raise NotImplementedError

    def stop_sweeper(self) -> None:
        raise NotImplementedError

    def recover(self) -> int:
        """Replay pending intents so the index matches storage; the number of
        intents replayed. Called by :meth:`open`."""
        raise NotImplementedError

    def rebuild_index(self) -> int:
        """Rebuild the whole index from storage; the number of documents."""
        raise NotImplementedError

    def check_consistency(self) -> dict[str, Any]:
        """Compare storage, index and vectors: ``{"storage": n, "index": n,
        "vectors": n, "missing_in_index": [...], "extra_in_index": [...]}``."""
        raise NotImplementedError

    # -- transfer and backup -----------------------------------------------
    def export_stream(self, stream: str, fp: IO[str], *, embeddings: bool = True) -> dict[str, int]:
        """Write ``stream`` as JSONL (header, chunks with history, entities,
        relations); counts per record type."""
        raise NotImplementedError

    def import_stream(self, fp: IO[str], *, stream: str | None = None) -> dict[str, int]:
        """Read an export (into ``stream`` if given, else the exported name),
        keeping ids, timestamps and chains; CONFLICT if an id already exists."""
        raise NotImplementedError

    def checkpoint(self, dest: Path) -> None:
        """Write a consistent backup of this memory into the new directory ``dest``."""
        raise NotImplementedError
