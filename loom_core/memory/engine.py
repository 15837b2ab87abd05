"""The memory engine: chunks, history, entity graph, hybrid search, retention.

One :class:`MemoryEngine` owns a data directory: the storage backend under
``<data_dir>/storage``, the index backend under ``<data_dir>/index``, and an
in-memory vector store per stream loaded from the ``embeddings`` keyspace.
Writes follow the intent protocol: intents (operation + chunk ids, no
content) and the rows go to storage in one durable atomic batch, then the
index is updated and committed, then the intents are cleared. On open,
pending intents are replayed so the index matches storage again.
All public methods are thread-safe.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from ulid import ULID

from loom_core.contracts import BackendContext
from loom_core.contracts.index import ADD_NEW, IndexDocument, IndexQuery
from loom_core.contracts.storage import WriteBatch
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory import backends_record, overlap, rows, scoring
from loom_core.memory.graph import GraphStore
from loom_core.memory.groupcommit import CommitScheduler
from loom_core.memory.ids import is_id, new_ids
from loom_core.memory.models import (
    SEARCH_MODES,
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
from loom_core.memory.overlap import Overlap
from loom_core.memory.rowcodec import PlainRowCodec, RowCodec
from loom_core.memory.rows import KEYSPACES, Routing, check_stream
from loom_core.memory.vectors import VectorFilter, VectorStore

if TYPE_CHECKING:
    from loom_core.config import LoomConfig

_log = logging.getLogger("loom.memory")

MAX_LEVEL = rows.MAX_LEVEL
MAX_BATCH = 10_000
#: hook points a test may stop the process at (see ``fault_hook``)
FAULT_POINTS = ("after_storage_write", "after_index_commit")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause automatic garbage collection while one batch is written.

    A batch allocates several container objects per chunk (rows, documents,
    results) that live until it ends and are freed by reference counting.
    Meanwhile the collector's full passes rescan the whole, growing heap: they
    took about a tenth of ingest time. Collection resumes when the batch ends;
    it is left alone when something else already disabled it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _not_found(what: str, ident: str) -> LoomError:
    # ids are 26 characters; a longer "id" from a request is not echoed whole (a 100 kB one came back)
    shown = ident if len(ident) <= 64 else ident[:64] + "..."
    return LoomError(ErrorCode.NOT_FOUND, f"{what} {shown!r} does not exist", details={"id": shown})


def _invalid(field: str, why: str) -> LoomError:
    return LoomError(ErrorCode.VALIDATION_FAILED, f"{field}: {why}", details={"field": field})


def llm_context(config: LoomConfig, environ: Mapping[str, str], host: Any = None) -> BackendContext:
    """The context the configured LLM backend is built with.

    A backend reads its API key from the variable ``llm.api_key_env`` names. When the key is
    configured as a secret reference (``llm.api_key_ref``) instead, it is resolved here through the
    secrets providers (fail closed, like the server's other key settings) and handed to the backend
    under that same variable name, in the context's environment only. Both set is ``CONFIG_INVALID``.
    """
    options = dict(config.llm.options)
    if config.llm.backend == "hash":  # the built-in embedder takes its size from llm.embedding_dimension
        options.setdefault("dimension", config.llm.embedding_dimension)
    else:  # hosted backends get the [llm] keys as options; a key set in [llm.options] wins
        for setting in ("model", "embedding_model", "embedding_dimension", "base_url", "timeout_seconds"):
            options.setdefault(setting, getattr(config.llm, setting))
        options.setdefault("api_key_env", config.llm.api_key_env)
    env = dict(environ)
    ref, name = config.llm.api_key_ref, config.llm.api_key_env
    if ref:
        from loom_core.secrets.providers import resolve_key_setting

        key = resolve_key_setting(
            ref, ref_setting="llm.api_key_ref", env_name=name, env_setting="llm.api_key_env",
            what="LLM API key", environ=environ, host=host, timeout=config.secrets.resolve_timeout_seconds,
        )
        env[name] = key.reveal().decode("utf-8", "surrogateescape")
    return BackendContext(options=options, environ=env)


class MemoryEngine:
    """Loomem's engine. Build with :meth:`open`; use as a context manager."""

    def __init__(
        self,
        *,
        config: LoomConfig,
        storage: Any,
        index: Any,
        llm: Any,
        codec: RowCodec,
        data_dir: Path,
    ) -> None:
        self.config = config
        self.storage = storage
        self.index = index
        self.llm = llm
        self.codec = codec
        self.data_dir = data_dir
        self.dim = int(llm.embedding_dimension)
        self._lock = threading.RLock()
        self._routing: dict[str, Routing] = {}
        self._vectors: dict[str, VectorStore] = {}
        self._access: dict[str, tuple[int, int]] = {}
        self._access_dirty: set[str] = set()
        self._sorted_ids: dict[str, list[str]] = {}
        self._graph = GraphStore(storage, codec)
        self._overlap = Overlap(config.search.helper_threads)
        self._sweeper: threading.Thread | None = None
        self._on_expired: Callable[[int], None] | None = None  # hears deletes of expired chunks
        self._last_id: str | None = None  # the newest chunk id minted by this engine (ids ascend)
        self._sweeper_stop = threading.Event()
        self._closed = False
        # an index failure after a durable write left intents behind: the next
        # successful write replays them instead of waiting for a restart
        self._repair_pending = False
        # intents of writes whose index changes are queued but not committed yet (group commit)
        self._unpublished: list[bytes] = []
        self._committer = CommitScheduler(config.index.commit_delay_ms / 1000, self._publish_in_background)
        self._owns_llm = True  # False when the caller passed its own LLM backend to open()
        #: called with a FAULT_POINTS name during writes (crash tests)
        self.fault_hook: Callable[[str], None] | None = None

    # -- life cycle ----------------------------------------------------------
    @classmethod
    def open(
        cls,
        config: LoomConfig,
        host: Any,
        data_dir: Path,
        *,
        codec: RowCodec | None = None,
        environ: Mapping[str, str] | None = None,
        llm: Any = None,
    ) -> MemoryEngine:
        """Open (creating if needed) the memory in ``data_dir`` with the storage,
        index and LLM backends ``config`` selects, built through ``host``
        (a ``PluginHost``). Replays pending intents and rebuilds the index when
        it does not match storage. ``codec`` seals row values (default: plain).
        ``llm`` overrides the configured embedder (an already built backend)."""
        env: Mapping[str, str] = host.environ if environ is None else environ
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new one is private to this user
        backends_record.check_storage(data_dir, config.storage.backend)
        storage = host.create(
            "storage",
            config.storage.backend,
            BackendContext(
                options=dict(config.storage.options),
                environ=dict(env),
                data_dir=data_dir / backends_record.STORAGE_DIR,
                keyspaces=KEYSPACES,
            ),
        )
        try:
            backends_record.reset_index_if_changed(  # the index is rebuilt below
                data_dir, config.index.backend, storage_locks="multiprocess_lock" in storage.capabilities
            )
            index = host.create(
                "index",
                config.index.backend,
                BackendContext(
                    options=dict(config.index.options), environ=dict(env), data_dir=data_dir / backends_record.INDEX_DIR
                ),
            )
        except BaseException:
            storage.close()
            raise
        try:
            owns_llm = llm is None
            if llm is None:
                llm = host.create("llm", config.llm.backend, llm_context(config, env, host))
            engine = cls(
                config=config,
                storage=storage,
                index=index,
                llm=llm,
                codec=codec or PlainRowCodec(),
                data_dir=data_dir,
            )
            engine._owns_llm = owns_llm
            engine._check_schema()
            backends_record.record_backends(data_dir, config.storage.backend, config.index.backend)
            engine._load()
            engine.recover()
            if index.count() != len(engine._routing):
                engine.rebuild_index()
        except BaseException:
            index.close()
            storage.close()
            raise
        return engine

    def close(self) -> None:
        """Stop the sweeper, flush access statistics, close the backends; idempotent."""
        if self._closed:
            return
        self.stop_sweeper()
        self._committer.stop()
        self._overlap.close()
        with self._lock:
            self._flush_access()
            try:
                self._publish()
            except Exception:  # the intents stay in storage: the next open replays them
                _log.exception("committing the index at close failed; the next start catches up")
            self._closed = True
            try:
                self.index.close()
            finally:
                try:
                    close_llm = getattr(self.llm, "close", None) if self._owns_llm else None
                    if close_llm is not None:
                        close_llm()
                finally:
                    self.storage.close()

    def __enter__(self) -> MemoryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embedder(self) -> str:
        """Which vector space the configured backend embeds into: backend and embedding model
        (``hash:hash``, ``openai:text-embedding-3-small``). Vectors of two embedders cannot be
        compared even when their dimensions agree."""
        model = getattr(self.llm, "embedding_model", None) or getattr(self.llm, "name", "")
        return f"{self.config.llm.backend}:{model}"

    def _check_schema(self) -> None:
        stored = self.storage.get("meta", b"schema_version")
        if stored is None:
            self.storage.put("meta", b"schema_version", str(rows.SCHEMA_VERSION).encode())
            self.storage.put("meta", b"embedding_dimension", str(self.dim).encode())
            self.storage.put("meta", b"embedder", self.embedder.encode())
            return
        if int(stored) != rows.SCHEMA_VERSION:
            raise LoomError(
                ErrorCode.CONFIG_INVALID,
                f"data directory {self.data_dir} has memory schema version {int(stored)}, "
                f"this Loom reads version {rows.SCHEMA_VERSION}",
            )
        dim = self.storage.get("meta", b"embedding_dimension")
        if dim is not None and int(dim) != self.dim:
            raise LoomError(
                ErrorCode.CONFIG_INVALID,
                f"data directory {self.data_dir} holds {int(dim)}-dimensional embeddings but the "
                f"configured LLM backend gives {self.dim}; set llm.embedding_dimension = {int(dim)} "
                "or export/import the streams into a new data directory",
            )
        made_by = self.storage.get("meta", b"embedder")
        if made_by is None:  # written before the embedder was recorded: it is taken to be this one
            self.storage.put("meta", b"embedder", self.embedder.encode())
        elif bytes(made_by).decode() != self.embedder:
            raise LoomError(
                ErrorCode.CONFIG_INVALID,
                f"data directory {self.data_dir} holds embeddings made by {bytes(made_by).decode()!r}, but the "
                f"configuration embeds with {self.embedder!r}: their vectors cannot be compared and vector "
                "search would return noise. Set [llm] backend and embedding_model back, or export the "
                "streams and import them into a new data directory (import embeds them again)",
            )

    def _load(self) -> None:
        """Read routing, access statistics and vectors into memory."""
        for key, value in self.storage.iterate("routing"):
            record = Routing.from_bytes(value)
            self._routing[key.decode()] = record
        for key, value in self.storage.iterate("access"):
            self._access[key.decode()] = rows.decode_access(value)
        pending: dict[str, tuple[list[str], list[bytes]]] = {}
        for key, value in self.storage.iterate("embeddings"):
            chunk_id = key.decode()
            owner = self._routing.get(chunk_id)
            if owner is None:
                continue
            ids, blobs = pending.setdefault(owner.stream, ([], []))
            ids.append(chunk_id)
            blobs.append(value)
        # one stream at a time, its blobs released as soon as they are copied in: a copy of every
        # vector at once (join, then astype) took a 200k-chunk store to 1.5 GB at start for 0.96 steady
        for stream in list(pending):
            ids, blobs = pending.pop(stream)
            matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), self.dim)
            del blobs
            self._store(stream).add(
                ids,
                matrix,
                levels=[self._routing[i].level for i in ids],
                created=[self._routing[i].created_at for i in ids],
                expires=[self._routing[i].expires_at for i in ids],
                superseded=[self._routing[i].superseded_by is not None for i in ids],
            )

    def _store(self, stream: str) -> VectorStore:
        store = self._vectors.get(stream)
        if store is None:
            store = self._vectors[stream] = VectorStore(self.dim)
        return store

    def _ensure_open(self) -> None:
        if self._closed:
            raise LoomError(ErrorCode.STORAGE_CLOSED, f"the memory engine for {self.data_dir} is closed")

    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    # -- intents ---------------------------------------------------------------
    def _intent(self, batch: WriteBatch, op: str, **fields: Any) -> bytes:
        """Add an intent row (operation + ids/stream, never content) to ``batch``."""
        key = ULID().bytes
        batch.put("intents", key, rows.encode_json({"op": op, **fields}))
        return key

    def recover(self) -> int:
        """Replay pending intents so the index matches storage; the number of
        intents replayed. Called by :meth:`open`."""
        with self._lock:
            pending = list(self.storage.iterate("intents"))
            if not pending:
                return 0
            for _key, value in pending:
                intent = json.loads(value)
                if intent["op"] == "delete_stream":
                    # The graph rows went in the intent's own storage batch. The stream may hold
                    # chunks written since (a replay during a run, or after an index failure):
                    # clear its documents, then index what storage holds for it now.
                    stream = intent["stream"]
                    self.index.delete_stream(stream)
                    self._reconcile([r.id for r in self._routing.values() if r.stream == stream])
                else:
                    self._reconcile(intent.get("ids", []))
            self.index.commit()
            self._unpublished.clear()  # their intents are among those replayed
            batch = WriteBatch()
            for key, _value in pending:
                batch.delete("intents", key)
            self.storage.write(batch, durable=True)
            return len(pending)

    def _index_half(self, intent: bytes, steps: Callable[[], None], *, defer: bool = False) -> None:
        """The index part of a write whose storage part (rows + ``intent``) is durable.

        ``steps`` queues the index changes. With ``defer`` (new chunks) the commit is left to the
        group commit (:mod:`loom_core.memory.groupcommit`) when ``index.commit_delay_ms`` allows;
        otherwise everything queued is committed now. On failure the intent stays and the error
        goes to the caller (its rows are stored); the next write whose index part gets through
        replays every pending intent, so the index catches up without a restart (``open``
        replays them too).
        """
        try:
            steps()
        except BaseException:
            self._repair_pending = True
            raise
        self._unpublished.append(intent)
        if defer and self.config.index.commit_delay_ms > 0 and not self._repair_pending:
            self._committer.request()
        else:
            self._publish()

    def _publish(self) -> None:
        """Commit the queued index changes and retire their intents (lock held).

        After an index failure the queue itself may be gone (an index can roll back what it
        held), so the intents are then not retired on the strength of this commit: every pending
        intent is replayed from storage instead (:meth:`recover`), the queued ones included.
        """
        if not self._unpublished:
            return
        try:
            self.index.commit()
        except BaseException:
            self._repair_pending = True
            raise
        self._fault("after_index_commit")
        if not self._repair_pending:
            self._retire_unpublished()
            return
        try:
            self.recover()
            self._repair_pending = False
        except Exception:  # the intents stay; the next write, search or a restart retries
            _log.exception("replaying index intents after an earlier index failure failed")

    def _retire_unpublished(self) -> None:
        """Delete the intents of queued changes that a rebuild has just committed."""
        done, self._unpublished = self._unpublished, []
        if done:
            batch = WriteBatch()
            for intent in done:
                batch.delete("intents", intent)
            self.storage.write(batch)

    def _publish_in_background(self) -> None:
        with self._lock:
            if not self._closed:
                self._publish()

    def commit_index(self) -> None:
        """Make every acknowledged write visible to the index now (searches do this themselves)."""
        with self._lock:
            self._ensure_open()
            self._publish()

    def _reconcile(self, ids: Sequence[str]) -> None:
        """Make the index agree with storage for ``ids``."""
        present = [i for i in ids if i in self._routing]
        gone = [i for i in ids if i not in self._routing]
        if gone:
            self.index.delete(gone)
        if present:
            self.index.upsert([self._index_doc(self._routing[i]) for i in present])

    # -- chunk rows -------------------------------------------------------------
    def _seal_chunk(self, record: Routing, content: str, metadata: Mapping[str, Any]) -> bytes:
        key = rows.chunk_key(record.level, record.id)
        body = rows.encode_body(content, metadata)
        return self.codec.seal(record.stream, key, body)

    def _read_body(self, record: Routing) -> dict[str, Any]:
        key = rows.chunk_key(record.level, record.id)
        stored = self.storage.get("chunks", key)
        if stored is None:
            raise LoomError(
                ErrorCode.STORAGE_IO,
                f"chunk {record.id!r} has routing data but no content row in {self.data_dir}; restore from a backup",
            )
        body = rows.open_body(self.codec, record.stream, key, stored, f"chunk {record.id!r}")
        if not isinstance(body.get("content"), str):
            raise LoomError(
                ErrorCode.STORAGE_IO,
                f"chunk {record.id!r}: its stored row has no content (modified on disk); restore it from a backup",
                details={"id": record.id},
            )
        return body

    def _chunk(self, record: Routing, body: Mapping[str, Any] | None = None) -> Chunk:
        body = self._read_body(record) if body is None else body
        count, last = self._access.get(record.id, (0, 0))
        return Chunk(
            id=record.id,
            stream=record.stream,
            level=record.level,
            content=body["content"],
            metadata=dict(body.get("metadata") or {}),
            created_at=record.created_at,
            updated_at=record.updated_at,
            supersedes=record.supersedes,
            superseded_by=record.superseded_by,
            expires_at=record.expires_at,
            access_count=count,
            last_accessed_at=last or None,
        )

    def _index_doc(self, record: Routing, text: str | None = None) -> IndexDocument:
        if text is None:
            text = str(self._read_body(record)["content"])
        return IndexDocument(
            id=record.id,
            stream=record.stream,
            level=record.level,
            text=text,
            created_at=record.created_at,
            superseded=record.superseded_by is not None,
        )

    def _live(self, chunk_id: str, now: int | None = None) -> Routing:
        record = self._routing.get(chunk_id)
        if record is None or record.expired(now_ms() if now is None else now):
            raise _not_found("chunk", chunk_id)
        return record

    def _touch(self, ids: Sequence[str], now: int) -> None:
        """Count an access (for decay); persisted in the background."""
        for chunk_id in ids:
            count, _last = self._access.get(chunk_id, (0, 0))
            self._access[chunk_id] = (count + 1, now)
            self._access_dirty.add(chunk_id)
        if len(self._access_dirty) >= 512:
            self._flush_access()

    def _flush_access(self) -> None:
        with self._lock:
            if not self._access_dirty or self._closed:
                return
            batch = WriteBatch()
            for chunk_id in self._access_dirty:
                if chunk_id in self._routing and chunk_id in self._access:
                    batch.put("access", rows.id_key(chunk_id), rows.encode_access(*self._access[chunk_id]))
            self._access_dirty.clear()
            if len(batch):
                self.storage.write(batch)

    # -- chunks -------------------------------------------------------------
    @staticmethod
    def _item_field(i: int, single: bool) -> str:
        """How an error names an item's field: ``chunks[3].`` in a batch, nothing for one chunk."""
        return "" if single else f"chunks[{i}]."

    def _validate_input(self, i: int, item: ChunkInput, now: int, single: bool = False) -> None:
        where = self._item_field(i, single)
        if not isinstance(item.content, str) or not item.content.strip():
            raise _invalid(f"{where}content", "must be a non-empty string")
        if (problem := rows.level_problem(item.level)) is not None:
            raise _invalid(f"{where}level", problem)
        if not isinstance(item.metadata, Mapping):
            raise _invalid(f"{where}metadata", "must be an object")
        if item.metadata and (problem := rows.metadata_problem(dict(item.metadata))) is not None:
            raise _invalid(f"{where}metadata", problem)
        if item.expires_at is not None:
            if (problem := rows.time_problem(item.expires_at)) is not None:
                raise _invalid(f"{where}expires_at", problem)
            if item.expires_at <= now:
                raise _invalid(f"{where}expires_at", "must be a time in the future, in ms since the Unix epoch")

    def add_chunks(
        self,
        stream: str,
        items: Sequence[ChunkInput],
        *,
        consolidated_through: str | None = None,
        vectors: Any = None,
    ) -> list[Chunk]:
        """Write ``items`` to ``stream`` atomically (all or none) and index them.
        VALIDATION_FAILED for a bad stream name, level, expiry or empty content;
        NOT_FOUND when ``supersedes`` names no chunk; CONFLICT when it names a
        chunk that is already superseded (or twice in one batch).
        ``consolidated_through`` moves the stream's consolidation mark in the same
        atomic write (consolidation's memories and its progress land together).
        ``vectors`` (one row per item, already embedded) lets a caller embed before taking
        :meth:`locked`, so no provider call happens while every other request waits."""
        return self._add(stream, items, single=False, mark=consolidated_through, vectors=vectors)

    def locked(self) -> threading.RLock:
        """The engine's lock, for a caller that must check and write with nothing in between
        (consolidation: a stream deleted while the model answered must not come back). Engine
        calls made while holding it re-enter it; never make a slow call (a provider) inside."""
        return self._lock

    def consolidation_mark(self, stream: str) -> str | None:
        """The newest raw chunk id consolidation has taken from ``stream`` (None: none yet)."""
        check_stream(stream)
        with self._lock:
            self._ensure_open()
            value = self.storage.get("meta", rows.consolidation_key(stream))
        return None if value is None else bytes(value).decode()

    def set_consolidation_mark(self, stream: str, through: str) -> None:
        """Record that raw chunks up to ``through`` were consolidated without a memory to write."""
        check_stream(stream)
        if not is_id(through):
            raise _invalid("through", "must be a chunk id")
        with self._lock:
            self._ensure_open()
            self.storage.put("meta", rows.consolidation_key(stream), through.encode())

    def _add(
        self, stream: str, items: Sequence[ChunkInput], *, single: bool, mark: str | None = None,
        vectors: Any = None,
    ) -> list[Chunk]:
        check_stream(stream)
        if not items:
            raise _invalid("chunks", "must contain at least one chunk")
        if len(items) > MAX_BATCH:
            raise _invalid("chunks", f"at most {MAX_BATCH} chunks per batch")
        now = now_ms()
        for i, item in enumerate(items):
            self._validate_input(i, item, now, single)
        if vectors is None:
            vectors = self.llm.embed([item.content for item in items])
        elif np.shape(vectors) != (len(items), self.dim):
            raise _invalid("vectors", f"must hold {len(items)} rows of {self.dim} values, one per chunk")
        with self._lock, _collection_paused():
            self._ensure_open()
            # Ids and times are taken here, under the lock, so that they follow the order in which
            # writes commit (the embedding above may take long): a reader paging by id or polling
            # with `since` never misses a write that committed after its last page.
            now = max(now_ms(), now)
            for i, item in enumerate(items):
                if item.expires_at is not None and item.expires_at <= now:
                    raise _invalid(
                        f"{self._item_field(i, single)}expires_at",
                        "must be a time in the future, in ms since the Unix epoch (it passed while the "
                        "chunk was being embedded)",
                    )
            claimed: set[str] = set()
            for i, item in enumerate(items):
                if item.supersedes is None:
                    continue
                old = self._routing.get(item.supersedes)
                if old is None or old.expired(now):
                    raise _not_found("chunk", item.supersedes)
                if self._expire_successors(old, now):
                    old = self._routing[item.supersedes]
                if old.stream != stream:
                    raise _invalid(
                        f"{self._item_field(i, single)}supersedes",
                        f"chunk {item.supersedes!r} belongs to stream {old.stream!r}, not {stream!r}",
                    )
                if old.superseded_by is not None or item.supersedes in claimed:
                    raise LoomError(
                        ErrorCode.CONFLICT,
                        f"chunk {item.supersedes!r} is already superseded by "
                        f"{old.superseded_by or 'another chunk of this batch'!r}; supersede the newest "
                        "version of the chain instead",
                        details={"id": item.supersedes, "superseded_by": old.superseded_by},
                    )
                claimed.add(item.supersedes)
            fresh = new_ids(len(items), timestamp_ms=now, after=self._last_id)
            self._last_id = fresh[-1]
            now = max(now, ULID.from_str(fresh[-1]).milliseconds)
            created = [
                Routing(
                    id=chunk_id,
                    stream=stream,
                    level=item.level,
                    created_at=now,
                    updated_at=now,
                    supersedes=item.supersedes,
                    expires_at=item.expires_at,
                )
                for chunk_id, item in zip(fresh, items)
            ]
            bodies = [{"content": item.content, "metadata": dict(item.metadata)} for item in items]
            return self._write_new(
                stream, created, bodies, np.asarray(vectors, dtype=np.float32), now, fresh=True, mark=mark
            )

    def _write_new(
        self,
        stream: str,
        created: Sequence[Routing],
        bodies: Sequence[Mapping[str, Any]],
        vectors: np.ndarray[Any, np.dtype[np.float32]],
        now: int,
        *,
        link_old: bool = True,
        fresh: bool = False,
        mark: str | None = None,
    ) -> list[Chunk]:
        """Persist new chunks (and the supersede links they make) and index them.
        ``fresh``: the ids were just minted, so the index may skip its replace-by-id."""
        superseded: list[Routing] = []
        if link_old:
            for record in created:
                if record.supersedes is not None:
                    old = self._routing[record.supersedes]
                    superseded.append(
                        Routing(**{**rows.asdict_routing(old), "superseded_by": record.id, "updated_at": now})
                    )
        # The new documents go to the index first: it indexes them on its own
        # threads while the rows are encoded and written here. Nothing is
        # committed before the storage write returns, so crash safety is as
        # before; if encoding or the write fails they are withdrawn again.
        docs = [
            IndexDocument(r.id, r.stream, r.level, str(b["content"]), r.created_at, r.superseded_by is not None)
            for r, b in zip(created, bodies)
        ]
        index_error: Exception | None = None
        try:
            (self.index.add_new if fresh and ADD_NEW in self.index.capabilities else self.index.upsert)(docs)
        except Exception as exc:  # raised once memory matches storage, as when the index fails later
            index_error = exc
        try:
            batch = WriteBatch()
            intent = self._intent(batch, "upsert", ids=[r.id for r in created] + [o.id for o in superseded])
            put, seal, encode_body = batch.put, self.codec.seal, rows.encode_body
            raw = np.ascontiguousarray(vectors, dtype="<f4").reshape(len(created), -1)
            for record, body, vector in zip(created, bodies, raw):
                key = rows.chunk_key(record.level, record.id)
                put("chunks", key, seal(record.stream, key, encode_body(body["content"], body["metadata"])))
                put("routing", rows.id_key(record.id), record.to_bytes())
                put("embeddings", rows.id_key(record.id), vector.tobytes())
            for old in superseded:
                batch.put("routing", rows.id_key(old.id), old.to_bytes())
            if mark is not None:
                batch.put("meta", rows.consolidation_key(stream), mark.encode())
            self.storage.write(batch, durable=True)
        except BaseException:
            self._withdraw([r.id for r in created])
            raise
        # memory follows storage at once so a crash before the index commit
        # leaves only the index behind (repaired by the intent)
        for record in created:
            self._routing[record.id] = record
        for old in superseded:
            self._routing[old.id] = old
        store = self._store(stream)
        store.add(
            [r.id for r in created],
            vectors,
            levels=[r.level for r in created],
            created=[r.created_at for r in created],
            expires=[r.expires_at for r in created],
            superseded=[r.superseded_by is not None for r in created],
        )
        for old in superseded:
            store.set_superseded(old.id, True)
        listed = self._sorted_ids.get(stream)
        new_ids = sorted(r.id for r in created)
        if listed is not None and new_ids and (not listed or new_ids[0] > listed[-1]):
            listed.extend(new_ids)  # ids follow commit order: re-sorting a 200k stream per write cost ~12 ms
        else:
            self._sorted_ids.pop(stream, None)
        self._fault("after_storage_write")
        if index_error is not None:
            self._repair_pending = True  # the rows are stored; their intent stays until replayed
            raise index_error

        def index_superseded() -> None:
            if superseded:
                self.index.upsert([self._index_doc(o) for o in superseded])

        self._index_half(intent, index_superseded, defer=True)
        return [self._chunk(r, b) for r, b in zip(created, bodies)]

    def _withdraw(self, ids: Sequence[str]) -> None:
        """Drop queued, uncommitted index documents whose rows were not written,
        so no later commit publishes documents storage lacks."""
        try:
            self.index.delete(ids)
        except Exception:
            _log.exception("could not withdraw %d queued index documents after a failed write", len(ids))

    def add_chunk(self, stream: str, item: ChunkInput) -> Chunk:
        """One chunk; see :meth:`add_chunks`."""
        return self._add(stream, [item], single=True)[0]

    def get_chunk(self, chunk_id: str) -> Chunk:
        """The chunk (superseded ones too); NOT_FOUND when absent or expired.
        Counts as an access for decay."""
        with self._lock:
            self._ensure_open()
            now = now_ms()
            record = self._live(chunk_id, now)
            self._touch([chunk_id], now)
            return self._chunk(record)

    def history(self, chunk_id: str) -> list[Chunk]:
        """The whole supersede chain ``chunk_id`` belongs to, oldest first
        (expired versions left out)."""
        with self._lock:
            self._ensure_open()
            now = now_ms()
            self._live(chunk_id, now)
            first = self._routing[chunk_id]
            seen = {first.id}
            while first.supersedes is not None and first.supersedes in self._routing and first.supersedes not in seen:
                first = self._routing[first.supersedes]
                seen.add(first.id)
            chain: list[Routing] = [first]
            walked = {first.id}  # a set: "in chain" compared records field by field, quadratic in length
            while chain[-1].superseded_by is not None and chain[-1].superseded_by in self._routing:
                if chain[-1].superseded_by in walked:
                    break
                chain.append(self._routing[chain[-1].superseded_by])
                walked.add(chain[-1].id)
            return [self._chunk(r) for r in chain if not r.expired(now)]

    def delete_chunk(self, chunk_id: str) -> None:
        """Remove a chunk from storage, index and vectors; the chain around it
        is re-linked (its predecessor and successor point at each other)."""
        with self._lock:
            self._ensure_open()
            record = self._routing.get(chunk_id)
            if record is None:
                raise _not_found("chunk", chunk_id)
            self._shred_emptied(self._delete_records([record]))

    def _expire_successors(self, record: Routing, now: int) -> bool:
        """Delete the expired newer versions of ``record`` now instead of at the next sweep.

        An expired newest version still held its predecessor's ``superseded_by`` until the
        sweeper ran, so the chain could not be continued in between (CONFLICT on the old
        version, NOT_FOUND on the expired one). Called with the lock held; whether any went.
        """
        doomed: list[Routing] = []
        successor = self._routing.get(record.superseded_by) if record.superseded_by else None
        while successor is not None and successor.expired(now):
            doomed.append(successor)
            successor = self._routing.get(successor.superseded_by) if successor.superseded_by else None
        if doomed:
            self._shred_emptied(self._delete_records(doomed))
            if self._on_expired is not None:
                self._on_expired(len(doomed))
        return bool(doomed)

    def _delete_records(self, records: Sequence[Routing]) -> list[str]:
        """Delete chunks, splicing the supersede chains around them. Returns the streams that may
        have been emptied, for :meth:`_shred_emptied` (left to the caller, so that a sweep shreds once)."""
        doomed = {r.id for r in records}
        now = now_ms()
        relinked: dict[str, Routing] = {}

        def current(chunk_id: str) -> Routing:
            return relinked.get(chunk_id) or self._routing[chunk_id]

        for record in records:
            rec = current(record.id)
            pred = rec.supersedes if rec.supersedes in self._routing else None
            succ = rec.superseded_by if rec.superseded_by in self._routing else None
            if pred is not None and pred not in doomed:
                relinked[pred] = Routing(
                    **{**rows.asdict_routing(current(pred)), "superseded_by": succ, "updated_at": now}
                )
            if succ is not None and succ not in doomed:
                relinked[succ] = Routing(
                    **{**rows.asdict_routing(current(succ)), "supersedes": pred, "updated_at": now}
                )
            # later records of this call must see the splice
            if pred is not None and pred in doomed:
                relinked[pred] = Routing(**{**rows.asdict_routing(current(pred)), "superseded_by": succ})
            if succ is not None and succ in doomed:
                relinked[succ] = Routing(**{**rows.asdict_routing(current(succ)), "supersedes": pred})
        survivors = {k: v for k, v in relinked.items() if k not in doomed}
        batch = WriteBatch()
        intent = self._intent(batch, "upsert", ids=sorted(doomed) + sorted(survivors))
        for record in records:
            batch.delete("chunks", rows.chunk_key(record.level, record.id))
            batch.delete("routing", rows.id_key(record.id))
            batch.delete("embeddings", rows.id_key(record.id))
            batch.delete("access", rows.id_key(record.id))
        for survivor in survivors.values():
            batch.put("routing", rows.id_key(survivor.id), survivor.to_bytes())
        self.storage.write(batch, durable=True)
        by_stream: dict[str, list[str]] = {}
        for record in records:
            self._routing.pop(record.id, None)
            self._access.pop(record.id, None)
            self._access_dirty.discard(record.id)
            by_stream.setdefault(record.stream, []).append(record.id)
        for survivor in survivors.values():
            self._routing[survivor.id] = survivor
            self._store(survivor.stream).set_superseded(survivor.id, survivor.superseded_by is not None)
        for stream, ids in by_stream.items():
            self._store(stream).remove(ids)
            self._sorted_ids.pop(stream, None)
            if not len(self._vectors[stream]):
                del self._vectors[stream]
        self._fault("after_storage_write")

        def index_deletes() -> None:
            self.index.delete(sorted(doomed))
            if survivors:
                self.index.upsert([self._index_doc(s) for s in survivors.values()])

        emptied = [s for s in by_stream if s not in self._vectors]
        try:
            self._index_half(intent, index_deletes)
        except BaseException:
            self._shred_emptied(emptied)  # the rows are gone for good: an index failure must not keep keys
            raise
        return emptied

    def list_streams(self) -> list[StreamInfo]:
        """Every stream that holds a chunk or an entity, by name.

        Only the snapshot of the routing records is taken under the lock: counting them held it
        for ~180 ms at 100k chunks, and every read and write waited (records are immutable).
        """
        with self._lock:
            self._ensure_open()
            records = list(self._routing.values())
            entities = self._graph.entity_counts()
        now = now_ms()
        stats: dict[str, dict[str, Any]] = {}
        for record in records:
            if record.expired(now):
                continue
            entry = stats.setdefault(record.stream, {"count": 0, "current": 0, "levels": {}, "last": 0})
            entry["count"] += 1
            entry["current"] += record.superseded_by is None
            entry["levels"][record.level] = entry["levels"].get(record.level, 0) + 1
            entry["last"] = max(entry["last"], record.created_at)
        empty = {"count": 0, "current": 0, "levels": {}, "last": 0}
        return [
            StreamInfo(
                name=name,
                chunk_count=entry["count"],
                current_count=entry["current"],
                levels=dict(entry["levels"]),
                last_write_at=entry["last"] or None,
                entity_count=entities.get(name, 0),
            )
            for name, entry in sorted({**{n: empty for n in entities}, **stats}.items())
        ]

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
        check_stream(stream)
        if not 1 <= limit <= 1000:
            raise _invalid("limit", "must be from 1 to 1000")
        if cursor is not None and cursor != "" and not is_id(cursor):
            # a cursor is a chunk id; anything else silently gave an arbitrary (often empty) page
            raise _invalid("cursor", "is not a next_cursor this API returned (a chunk id)")
        with self._lock:
            self._ensure_open()
            ids = self._sorted_ids.get(stream)
            if ids is None:
                ids = self._sorted_ids[stream] = sorted(self._vectors[stream].ids()) if stream in self._vectors else []
            # ULIDs are case-insensitive: a lower-case cursor sorted after every id and gave an empty page
            start = bisect.bisect_right(ids, cursor.upper()) if cursor else 0
            now = now_ms()
            items: list[Chunk] = []
            position = start
            while position < len(ids) and len(items) < limit:
                record = self._routing.get(ids[position])
                position += 1
                if record is None or record.expired(now) or (level is not None and record.level != level):
                    continue
                items.append(self._chunk(record))
            more = False
            for chunk_id in ids[position:]:  # stops at the first chunk a next page would show
                nxt = self._routing.get(chunk_id)
                if nxt is not None and not nxt.expired(now) and (level is None or nxt.level == level):
                    more = True
                    break

            return Page(items=items, next_cursor=items[-1].id if items and more else None)

    def delete_stream(self, stream: str) -> int:
        """Remove every chunk, entity and relation of ``stream``; the number of
        chunks removed. NOT_FOUND when the stream holds nothing."""
        check_stream(stream)
        with self._lock:
            self._ensure_open()
            records = [r for r in self._routing.values() if r.stream == stream]
            has_graph = self._graph.has_stream(stream)
            if not records and not has_graph:
                raise LoomError(ErrorCode.NOT_FOUND, f"stream {stream!r} holds no chunks or entities")
            batch = WriteBatch()
            intent = self._intent(batch, "delete_stream", stream=stream)
            for record in records:
                batch.delete("chunks", rows.chunk_key(record.level, record.id))
                batch.delete("routing", rows.id_key(record.id))
                batch.delete("embeddings", rows.id_key(record.id))
                batch.delete("access", rows.id_key(record.id))
            self._graph.delete_stream_ops(stream, batch)
            batch.delete("meta", rows.consolidation_key(stream))  # a new stream of that name starts afresh
            self.storage.write(batch, durable=True)
            for record in records:
                self._routing.pop(record.id, None)
                self._access.pop(record.id, None)
                self._access_dirty.discard(record.id)
            self._vectors.pop(stream, None)
            self._sorted_ids.pop(stream, None)
            self._fault("after_storage_write")
            # the rows are gone for good: destroy the key now, so an index failure cannot keep it
            self.codec.forget_streams([stream])
            self._index_half(intent, lambda: self.index.delete_stream(stream))
            return len(records)

    # -- search -------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[SearchResult]:
        """Hybrid (BM25 + cosine, reciprocal-rank fused, recency weighted),
        ``bm25`` or ``vector`` search with exact filters; best first."""
        settings = self.config.search
        mode = request.mode or settings.default_mode
        if mode not in SEARCH_MODES:
            raise _invalid("mode", f"must be one of {', '.join(SEARCH_MODES)}")
        k = settings.default_k if request.k is None else request.k
        if isinstance(k, bool) or not 1 <= k <= 1000:
            raise _invalid("k", "must be from 1 to 1000")
        if not isinstance(request.query, str) or not request.query.strip():
            raise _invalid("query", "must be a non-empty string")
        streams: list[str] | None = None
        if request.stream is not None or request.streams is not None:
            streams = [
                check_stream(s) for s in ([request.stream] if request.stream else []) + list(request.streams or [])
            ]
            streams = sorted(set(streams))
        levels: list[int] | None = None
        if request.levels is not None:
            if isinstance(request.levels, (str, bytes)) or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_LEVEL for x in request.levels
            ):
                raise _invalid("levels", f"must be a list of integers from 0 to {MAX_LEVEL}")
            levels = sorted(set(request.levels))
        for field in ("since", "until"):
            value = getattr(request, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise _invalid(field, "must be a time in ms since the Unix epoch")
        if request.since is not None and request.until is not None and request.until <= request.since:
            raise _invalid("until", "must be later than since")
        now = now_ms()
        pool = max(3 * k, 30)
        bm25: list[tuple[str, float]] = []
        vector: list[tuple[str, float]] = []
        if mode in ("hybrid", "vector"):
            q = np.asarray(self.llm.embed([request.query]), dtype=np.float32)[0]
        self._ensure_open()
        if self._unpublished and mode != "vector":  # read your writes: commit what the group commit holds
            with self._lock:
                self._ensure_open()
                self._publish()

        def lexical() -> list[tuple[str, float]]:
            # When the asked streams hold every chunk, their filter keeps every
            # document, yet intersecting with its posting list was a third of the
            # index time at 100k chunks: it is left out of the index query and
            # each hit's stream is checked here instead, which stays exact.
            wanted = None if streams is None else set(streams)
            index_streams = streams
            if wanted is not None:
                held = [self._vectors.get(s) for s in wanted]
                if sum(len(store) for store in held if store is not None) >= len(self._routing):
                    index_streams = None
            # The index knows nothing of expiry: expired chunks the sweeper has not
            # removed yet are dropped here, and when they crowd out live hits the
            # index is asked again for more, until the pool is full or it runs out.
            limit = pool + 16
            while True:
                hits = self.index.search(
                    IndexQuery(
                        text=request.query,
                        streams=index_streams,
                        levels=levels,
                        since=request.since,
                        until=request.until,
                        include_superseded=request.include_superseded,
                        limit=limit,
                    )
                )
                found: list[tuple[str, float]] = []
                for hit in hits:
                    record = self._routing.get(hit.id)
                    if record is not None and not record.expired(now) and (wanted is None or record.stream in wanted):
                        found.append((hit.id, float(hit.score)))
                if len(found) >= pool or len(hits) < limit:
                    return found[:pool]
                limit *= 4

        # Both signals run without the engine lock (the index and each vector
        # store are safe for concurrent readers), so searches do not queue
        # behind each other or behind writes. In hybrid mode over many vectors
        # the index half runs on a free helper thread while this thread scans
        # the vectors; over fewer, handing the GIL back and forth between the
        # two threads costs more than the overlap saves (see overlap.MIN_ROWS).
        stores = dict(self._vectors)
        names = list(stores) if streams is None else [s for s in streams if s in stores]
        lexical_result: Callable[[], list[tuple[str, float]]] | None = None
        if mode == "hybrid" and sum(len(stores[name]) for name in names) >= overlap.MIN_ROWS:
            lexical_result = self._overlap.start(lexical)
        elif mode in ("hybrid", "bm25"):
            bm25 = lexical()
        try:
            if mode in ("hybrid", "vector"):
                flt = VectorFilter(
                    levels=levels,
                    since=request.since,
                    until=request.until,
                    include_superseded=request.include_superseded,
                    now=now,
                )
                for name in names:
                    # a cosine of 0 or less means nothing in common: not a match
                    hits = stores[name].search(q, pool, flt, overlap=self._overlap)
                    vector.extend(hit for hit in hits if hit[1] > 0.0)
                vector.sort(key=lambda pair: -pair[1])
                vector = vector[:pool]
        except BaseException:
            if lexical_result is not None:  # never leave the index half running unobserved
                with contextlib.suppress(Exception):
                    lexical_result()
            raise
        if lexical_result is not None:
            bm25 = lexical_result()
        with self._lock:
            self._ensure_open()
            # a chunk deleted meanwhile drops out here
            bm25 = [hit for hit in bm25 if hit[0] in self._routing]
            vector = [hit for hit in vector if hit[0] in self._routing]
            rankings = [[i for i, _ in ranking] for ranking in (bm25, vector) if mode == "hybrid" or ranking]
            if mode != "hybrid":
                rankings = [[i for i, _ in (bm25 if mode == "bm25" else vector)]]
            fusion = scoring.rrf(rankings, settings.rrf_k)
            bm25_score = dict(bm25)
            vector_score = dict(vector)
            scored: list[tuple[float, float, str]] = []
            for chunk_id, fused_rank in fusion.items():
                record = self._routing[chunk_id]
                _count, last = self._access.get(chunk_id, (0, 0))
                touch = max(record.updated_at, last)
                rec = scoring.recency(touch, now, settings.decay_half_life_days)
                scored.append((scoring.combine(fused_rank, rec, settings.recency_weight), rec, chunk_id))
            scored.sort(key=lambda item: (-item[0], item[2]))
            top = scored[:k]
            results = [
                SearchResult(
                    chunk=self._chunk(self._routing[chunk_id]),
                    score=fused,
                    scores=SignalScores(
                        bm25=bm25_score.get(chunk_id),
                        vector=vector_score.get(chunk_id),
                        recency=rec,
                        fused=fused,
                    ),
                )
                for fused, rec, chunk_id in top
            ]
            self._touch([chunk_id for _f, _r, chunk_id in top], now)
            return results

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
        check_stream(stream)
        with self._lock:
            self._ensure_open()
            return self._graph.add_entity(stream, type=type, name=name, aliases=aliases, metadata=metadata or {})

    def get_entity(self, entity_id: str) -> Entity:
        """NOT_FOUND when absent."""
        with self._lock:
            self._ensure_open()
            return self._graph.get_entity(entity_id)

    def list_entities(self, stream: str, *, type: str | None = None, name: str | None = None) -> list[Entity]:
        """Entities of ``stream``; ``name`` matches the name or an alias,
        case-insensitively."""
        check_stream(stream)
        with self._lock:
            self._ensure_open()
            return self._graph.list_entities(stream, type=type, name=name)

    def delete_entity(self, entity_id: str) -> None:
        """Remove the entity and every relation that mentions it."""
        with self._lock:
            self._ensure_open()
            stream = self._graph.delete_entity(entity_id)
            self._shred_emptied([stream])

    def empty_streams(self, streams: Iterable[str]) -> list[str]:
        """Those of ``streams`` that hold no chunk and no entity (routing and graph decide:
        a chunk whose vector is missing still counts). Lock held."""
        candidates = list(dict.fromkeys(streams))
        if not candidates:
            return []
        live = {record.stream for record in self._routing.values()}
        return [s for s in candidates if s not in live and not self._graph.has_stream(s)]

    def _shred_emptied(self, streams: Sequence[str]) -> None:
        """Destroy the data keys of streams whose last chunk or entity was just deleted, in one go.

        Deleting a stream's rows one by one left its key alive until the next start, and
        ``delete_stream`` on the empty stream was NOT_FOUND: nothing could shred it. A later
        write makes a new key. ``streams`` are candidates; only the empty ones are shredded.
        """
        empty = self.empty_streams(streams)
        if empty:
            self.codec.forget_streams(empty)

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
        check_stream(stream)
        with self._lock:
            self._ensure_open()
            for i, chunk_id in enumerate(source_chunks):
                record = self._routing.get(chunk_id)
                if record is None:
                    raise _not_found("chunk", chunk_id)
                if record.stream != stream:
                    raise _invalid(f"source_chunks[{i}]", f"chunk {chunk_id!r} belongs to another stream")
            return self._graph.add_relation(
                stream,
                subject=subject,
                predicate=predicate,
                object=object,
                valid_from=valid_from,
                valid_to=valid_to,
                source_chunks=list(source_chunks),
                metadata=metadata or {},
            )

    def get_relation(self, relation_id: str) -> Relation:
        """NOT_FOUND when absent."""
        with self._lock:
            self._ensure_open()
            return self._graph.get_relation(relation_id)

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
        check_stream(stream)
        with self._lock:
            self._ensure_open()
            return self._graph.list_relations(stream, entity=entity, predicate=predicate, at=at)

    def delete_relation(self, relation_id: str) -> None:
        """NOT_FOUND when absent."""
        with self._lock:
            self._ensure_open()
            self._graph.delete_relation(relation_id)

    # -- retention, recovery, maintenance -------------------------------------
    def sweep_expired(self, now: int | None = None) -> int:
        """Delete chunks whose ``expires_at <= now`` (ms); the number removed."""
        moment = now_ms() if now is None else now
        with self._lock:
            self._ensure_open()
            expired = [r.id for r in self._routing.values() if r.expired(moment)]
        removed = 0
        emptied: list[str] = []
        # The lock is taken per batch of 1,000, so other requests run between batches, and the
        # emptied streams' keys are destroyed together at the end (one flush and compaction), also
        # when a later batch fails: those streams have no expired chunk left for the next sweep.
        try:
            for start in range(0, len(expired), 1000):
                with self._lock:
                    self._ensure_open()
                    batch = [self._routing[i] for i in expired[start : start + 1000] if i in self._routing]
                    batch = [r for r in batch if r.expired(moment)]
                    if batch:
                        emptied += self._delete_records(batch)
                        removed += len(batch)
        finally:
            with self._lock:
                if not self._closed:  # closed: the next start destroys the keys of empty streams
                    self._shred_emptied(emptied)
        with self._lock:
            self._ensure_open()
            self._flush_access()
        return removed

    def start_sweeper(
        self, interval_seconds: float | None = None, on_swept: Callable[[int], None] | None = None
    ) -> None:
        """Run :meth:`sweep_expired` every ``interval_seconds`` (default
        ``retention.sweep_interval_seconds``) in a daemon thread; ``on_swept``
        hears how many chunks a round deleted (rounds that delete nothing are silent)."""
        interval = interval_seconds or self.config.retention.sweep_interval_seconds
        if self._sweeper is not None:
            return
        self._on_expired = on_swept  # expired versions deleted early by a supersede are reported too
        self._sweeper_stop.clear()

        def loop() -> None:
            while not self._sweeper_stop.wait(interval):
                if self._closed:
                    return
                try:
                    removed = self.sweep_expired()
                    if removed and self._on_expired is not None:
                        self._on_expired(removed)
                except Exception:  # keep sweeping; the next round retries
                    if self._closed:
                        return
                    _log.exception("retention sweep failed; retrying in %s s", interval)

        self._sweeper = threading.Thread(target=loop, name="loomem-sweeper", daemon=True)
        self._sweeper.start()

    def stop_sweeper(self) -> None:
        """Stop the sweeper thread (waits for a running sweep)."""
        thread = self._sweeper
        if thread is None:
            return
        self._sweeper_stop.set()
        thread.join()
        self._sweeper = None

    def rebuild_index(self) -> int:
        """Rebuild the whole index from storage; the number of documents."""
        with self._lock:
            self._ensure_open()

            def docs() -> Iterator[IndexDocument]:
                for record in list(self._routing.values()):
                    yield self._index_doc(record)

            # what the group commit holds goes first: a rebuild replaces the index's content, and
            # one that fails rolls back the queue with it
            self._publish()
            self.index.rebuild(docs())
            self.index.commit()
            return len(self._routing)

    def check_consistency(self) -> dict[str, Any]:
        """Compare storage, index and vectors, and open every content row: ``{"storage": n,
        "index": n, "vectors": n, "missing_in_index": [...], "extra_in_index": [...],
        "missing_vectors": [...], "unreadable_chunks": [...], ..., "consistent": bool}``.
        Reads every row, so it takes time in proportion to the data; opening the rows happens
        outside the engine lock (rows found unreadable are checked again under it)."""
        with self._lock:
            self._ensure_open()
            try:
                self._publish()  # what the group commit holds is not an inconsistency
            except Exception:  # reported below as missing documents and pending intents
                _log.exception("committing the index before the consistency check failed")
            stored = {key.decode() for key, _ in self.storage.iterate("routing")}
            content = {key.decode().rsplit(":", 1)[1] for key, _ in self.storage.iterate("chunks")}
            indexed = set(self.index.ids())
            vectors = {i for store in self._vectors.values() for i in store.ids()}
            report: dict[str, Any] = {
                "storage": len(stored),
                "content_rows": len(content),
                "index": len(indexed),
                "vectors": len(vectors),
                "missing_in_index": sorted(stored - indexed),
                "extra_in_index": sorted(indexed - stored),
                "missing_vectors": sorted(stored - vectors),
                "extra_vectors": sorted(vectors - stored),
                "routing_without_content": sorted(stored - content),
                "pending_intents": sum(1 for _ in self.storage.iterate("intents")),
            }
            records = [r for i, r in self._routing.items() if i in content]
        # rows that exist but cannot be opened: one of them fails every listing of its stream
        suspects = self._unreadable_chunks(records)
        graph_suspects = self._graph.unreadable()
        with self._lock:
            self._ensure_open()  # a row deleted or rewritten meanwhile is not reported
            report["unreadable_chunks"] = self._unreadable_chunks(
                [self._routing[i] for i in suspects if i in self._routing]
            )
            report["unreadable_graph"] = [k.decode(errors="replace") for k in self._graph.unreadable(graph_suspects)]
        # every layer agrees and nothing waits to be replayed
        report["consistent"] = not report["pending_intents"] and not any(
            report[key] for key in report if isinstance(report[key], list)
        )
        return report

    def _unreadable_chunks(self, records: Iterable[Routing]) -> list[str]:
        """Ids of the chunks whose content row does not open (tampered, damaged, key destroyed)."""
        bad: list[str] = []
        for record in records:
            try:
                self._read_body(record)
            except LoomError:
                bad.append(record.id)
        return sorted(bad)

    # -- transfer and backup -----------------------------------------------
    def export_stream(self, stream: str, fp: IO[str], *, embeddings: bool = True) -> dict[str, int]:
        """Write ``stream`` as JSONL (header, chunks with history, entities,
        relations); counts per record type."""
        from loom_core.memory.transfer import export_stream

        with self._lock:
            self._ensure_open()
            return export_stream(self, stream, fp, embeddings=embeddings)

    def import_stream(self, fp: IO[str], *, stream: str | None = None) -> dict[str, int]:
        """Read an export (into ``stream`` if given, else the exported name),
        keeping ids, timestamps and chains; CONFLICT if an id already exists."""
        from loom_core.memory.transfer import import_stream

        with self._lock:
            self._ensure_open()
            return import_stream(self, fp, stream=stream)

    def checkpoint(self, dest: Path) -> None:
        """Write a consistent backup of this memory into the new directory ``dest``
        (storage checkpoint + manifest; the index is rebuilt on restore)."""
        from loom_core.memory.backup import write_checkpoint

        with self._lock:
            self._ensure_open()
            self._flush_access()
            try:
                self._publish()
            except Exception:  # the backup holds no index: intents in it are replayed on restore
                _log.exception("committing the index before a checkpoint failed; the checkpoint goes on")
            write_checkpoint(self, Path(dest))

    # -- internal access for transfer ---------------------------------------------
    def _routing_of_stream(self, stream: str) -> list[Routing]:
        return sorted((r for r in self._routing.values() if r.stream == stream), key=lambda r: r.id)
