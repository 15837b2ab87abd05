"""Consolidation: raw (L0) memories become L1 memories and entity-graph facts through the LLM.

One call takes the oldest raw chunks a stream has not consolidated yet (its *mark*, the last raw
id taken, lives in storage), shows the model the consolidated memories most related to them,
and asks for durable memories, entities and relations (:mod:`consolidation_prompt`). The answer
is checked against its schema and its references before anything is written; a model that
answers outside the contract gets ``LLM_BAD_RESPONSE`` and changes nothing.

Writes follow the engine's rules for history: a memory the model says updates or contradicts
an existing one *supersedes* it (the old one stays readable through its history). The graph is
written first and the memories last, in one atomic batch that also moves the mark, so a crash
in between repeats the call later: entities are matched by name and identical relations are
not added twice, so a repeat duplicates nothing but the model's cost.

The *dream* pass runs this over every stream with raw chunks waiting, in the background when
``[consolidation] enabled``. All text reaches the model through the :class:`ChatGate`, so the
PII filter sees it first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.consolidation_prompt import ANSWER_SCHEMA, INSTRUCTIONS, build_data
from loom_core.memory.llm_gate import ChatGate
from loom_core.memory.models import Chunk, ChunkInput, SearchRequest

log = logging.getLogger("loom.consolidation")
_VALIDATOR = Draft202012Validator(ANSWER_SCHEMA)
#: the longest name, type, alias or predicate the graph takes (as the API)
_NAME_MAX = 512
#: most batches one stream gets in one dream pass, so a large backlog cannot run up an unbounded bill
DREAM_BATCHES_PER_STREAM = 10
#: characters of raw text used to find the related consolidated memories
_RELATED_QUERY_CHARS = 2000


@dataclass
class ConsolidationReport:
    """What one consolidation call did (ids and counts, never content)."""

    stream: str
    raw_chunks: int = 0
    memories: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    entities_created: int = 0
    entities_matched: int = 0
    relations_created: int = 0
    relations_skipped: int = 0
    through: str | None = None
    pending: int = 0  # raw chunks still waiting after this call

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DreamPass:
    """One dream pass: the calls that wrote, and the streams whose call failed (with the code)."""

    reports: list[ConsolidationReport] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (stream, error code)

    def to_dict(self) -> dict[str, Any]:
        return {"reports": [r.to_dict() for r in self.reports],
                "failures": [{"stream": s, "code": c} for s, c in self.failures]}


@dataclass(frozen=True)
class _Memory:
    content: str
    sources: list[str]  # chunk ids
    replaces: str | None  # chunk id


def _bad(why: str) -> LoomError:
    return LoomError(
        ErrorCode.LLM_BAD_RESPONSE,
        f"the model's consolidation answer was not used: {why}; nothing was written (try again, or a stronger model)",
    )


def _clean(value: str) -> str:
    return " ".join(value.split())[:_NAME_MAX]


class Consolidator:
    """Consolidates streams of one engine, one call per stream at a time."""

    def __init__(
        self,
        engine: Any,
        gate: ChatGate,
        settings: Any,
        *,
        on_report: Callable[[ConsolidationReport], None] | None = None,
    ) -> None:
        """``on_report`` hears each call the background dream pass makes (API calls are audited
        by their route)."""
        self.engine = engine
        self.gate = gate
        self.settings = settings
        self._on_report = on_report
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what waits ---------------------------------------------------------
    def _pending(self, stream: str, limit: int, cursor: str | None) -> tuple[list[Chunk], str | None, int]:
        """Up to ``limit`` current raw chunks after the mark ``cursor``, the id to move the mark to,
        and how many current raw chunks wait in all."""
        taken: list[Chunk] = []
        through: str | None = None
        waiting = 0
        while True:
            page = self.engine.list_chunks(stream, level=0, cursor=cursor, limit=1000)
            for chunk in page.items:
                if chunk.superseded:
                    if len(taken) < limit:
                        through = chunk.id  # a replaced note is passed over, not sent
                    continue
                waiting += 1
                if len(taken) < limit:
                    taken.append(chunk)
                    through = chunk.id
            if page.next_cursor is None:
                return taken, through, waiting
            cursor = page.next_cursor

    def pending_count(self, stream: str) -> int:
        return self._pending(stream, 0, self.engine.consolidation_mark(stream))[2]

    @contextlib.contextmanager
    def _claim(self, stream: str) -> Iterator[None]:
        with self._busy_lock:
            if stream in self._busy:
                raise LoomError(
                    ErrorCode.CONFLICT,
                    f"stream {stream!r} is being consolidated already; try again when that call ends",
                )
            self._busy.add(stream)
        try:
            yield
        finally:
            with self._busy_lock:
                self._busy.discard(stream)

    # -- one call -----------------------------------------------------------
    def consolidate(self, stream: str) -> ConsolidationReport:
        """Consolidate the oldest waiting raw chunks of ``stream`` (at most ``batch_size``)."""
        with self._claim(stream):
            mark = self.engine.consolidation_mark(stream)
            raw, through, waiting = self._pending(stream, self.settings.batch_size, mark)
            report = ConsolidationReport(stream=stream, pending=waiting)
            if through is None:
                return report
            memories: list[_Memory] = []
            entities: list[dict[str, Any]] = []
            relations: list[dict[str, Any]] = []
            if raw:
                memories, entities, relations = self._ask(raw, self._related(stream, raw))
            # embedded before the lock is taken: no provider call while every other request waits
            vectors = self.engine.llm.embed([m.content for m in memories]) if memories else None
            with self.engine.locked():
                # the model took seconds; what it was shown must still be there, or a delete made
                # meanwhile would be undone by writing its content back
                self._check_unchanged(stream, mark, through)
                self._write_graph(stream, entities, relations, report)
                self._write_memories(stream, memories, vectors, through, report)
            report.raw_chunks, report.through = len(raw), through
            report.pending = waiting - len(raw)
        return report

    def _check_unchanged(self, stream: str, mark: str | None, through: str) -> None:
        """CONFLICT when the stream's mark moved or the batch's last chunk is gone (the stream, or
        that chunk, was deleted while the model answered). Engine lock held."""
        try:
            last = self.engine.get_chunk(through)
        except LoomError:
            last = None
        if last is None or last.stream != stream or self.engine.consolidation_mark(stream) != mark:
            raise LoomError(
                ErrorCode.CONFLICT,
                f"stream {stream!r} changed while the model was answering (chunks deleted or consolidated "
                "elsewhere); nothing was written, and what still waits is taken by the next call",
            )

    def _related(self, stream: str, raw: Sequence[Chunk]) -> list[Chunk]:
        """The level 1 memories most related to ``raw`` (consolidation writes level 1 only, so a
        higher level is never offered for replacement)."""
        if self.settings.related_k == 0:
            return []
        query = " ".join(c.content for c in raw)[:_RELATED_QUERY_CHARS]
        results = self.engine.search(SearchRequest(query=query, stream=stream, k=self.settings.related_k, levels=[1]))
        return [r.chunk for r in results]

    def _ask(
        self, raw: Sequence[Chunk], existing: Sequence[Chunk]
    ) -> tuple[list[_Memory], list[dict[str, Any]], list[dict[str, Any]]]:
        cut = self.settings.max_chunk_chars
        raw_refs = {f"S{i + 1}": c.id for i, c in enumerate(raw)}
        old_refs = {f"M{i + 1}": c.id for i, c in enumerate(existing)}
        # filtered before being cut: a cut can leave half an address or id the filter no longer knows
        text = self.gate.filter_text
        data = build_data(
            [(f"S{i + 1}", c.created_at, text(c.content)[:cut]) for i, c in enumerate(raw)],
            [(f"M{i + 1}", text(c.content)[:cut]) for i, c in enumerate(existing)],
        )
        completion = self.gate.complete_data(
            INSTRUCTIONS, data, json_schema=ANSWER_SCHEMA, max_tokens=self.settings.max_tokens
        )
        data = completion.data
        error = best_match(_VALIDATOR.iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the top level"
            raise _bad(f"it does not fit the answer schema at {where} ({error.validator})")
        memories: list[_Memory] = []
        replaced: set[str] = set()
        for i, item in enumerate(data["memories"]):
            content = item["content"].strip()
            if not content:
                continue
            unknown = [s for s in item["sources"] if s not in raw_refs]
            if unknown or not item["sources"]:
                raise _bad(f"memories/{i} cites {'no source' if not unknown else 'a reference it was not given'}")
            old = item["replaces"]
            if old is not None and old not in old_refs:
                raise _bad(f"memories/{i} replaces a reference it was not given")
            if old is not None and old in replaced:
                raise _bad(f"memories/{i} replaces a memory another one already replaces")
            if old is not None:
                replaced.add(old)
            memories.append(
                _Memory(content, list(dict.fromkeys(raw_refs[s] for s in item["sources"])),
                        None if old is None else old_refs[old])
            )
        for i, rel in enumerate(data["relations"]):
            if any(s not in raw_refs for s in rel["sources"]):
                raise _bad(f"relations/{i} cites a reference it was not given")
            rel["sources"] = list(dict.fromkeys(raw_refs[s] for s in rel["sources"]))
        return memories, list(data["entities"]), list(data["relations"])

    # -- writing ------------------------------------------------------------
    def _write_graph(
        self, stream: str, entities: Sequence[dict[str, Any]], relations: Sequence[dict[str, Any]],
        report: ConsolidationReport,
    ) -> None:
        by_name: dict[str, str] = {}
        for item in entities:
            name, kind = _clean(item["name"]), _clean(item["type"]).lower()
            if not name or not kind:
                continue
            aliases = [a for a in dict.fromkeys(_clean(a) for a in item["aliases"]) if a and a != name]
            found = [e for e in self.engine.list_entities(stream, name=name) if e.type.lower() == kind]
            if found:
                entity_id = found[0].id
                report.entities_matched += 1
            else:
                entity_id = self.engine.add_entity(
                    stream, type=kind, name=name, aliases=aliases, metadata={"source": "consolidation"}
                ).id
                report.entities_created += 1
            for label in (name, *aliases):
                by_name.setdefault(label.casefold(), entity_id)
        for rel in relations:
            subject = self._entity_id(stream, rel["subject"], by_name)
            obj = self._entity_id(stream, rel["object"], by_name)
            predicate = _clean(rel["predicate"])
            if subject is None or obj is None or not predicate or subject == obj:
                report.relations_skipped += 1
                continue
            known = self.engine.list_relations(stream, entity=subject, predicate=predicate)
            if any(r.subject == subject and r.object == obj and r.valid_to is None for r in known):
                report.relations_skipped += 1  # already known: a repeat after a crash adds nothing
                continue
            sources = [s for s in rel["sources"] if self._still_there(s)]
            if rel["sources"] and not sources:
                report.relations_skipped += 1  # learnt only from chunks deleted meanwhile
                continue
            self.engine.add_relation(
                stream, subject=subject, predicate=predicate, object=obj, source_chunks=sources,
                metadata={"source": "consolidation"},
            )
            report.relations_created += 1

    def _entity_id(self, stream: str, name: str, by_name: dict[str, str]) -> str | None:
        label = _clean(name)
        if not label:
            return None
        if label.casefold() in by_name:
            return by_name[label.casefold()]
        found = self.engine.list_entities(stream, name=label)
        return found[0].id if len(found) == 1 else None  # two entities of that name: ambiguous, skipped

    def _still_there(self, chunk_id: str) -> bool:
        try:
            self.engine.get_chunk(chunk_id)
        except LoomError:
            return False  # deleted while the model was thinking
        return True

    def _write_memories(
        self, stream: str, memories: Sequence[_Memory], vectors: Any, through: str, report: ConsolidationReport
    ) -> None:
        items: list[ChunkInput] = []
        kept: list[int] = []
        for i, memory in enumerate(memories):
            sources = [s for s in memory.sources if self._still_there(s)]
            if not sources:
                continue  # every note it condensed was deleted meanwhile: its content must not return
            supersedes = memory.replaces
            if supersedes is not None and not self._current(supersedes):
                supersedes = None  # replaced or deleted meanwhile: the new memory stands on its own
            items.append(ChunkInput(content=memory.content, level=1,
                                    metadata={"consolidated_from": sources}, supersedes=supersedes))
            kept.append(i)
        if not items:
            self.engine.set_consolidation_mark(stream, through)
            return
        written = self.engine.add_chunks(stream, items, consolidated_through=through, vectors=vectors[kept])
        report.memories = [c.id for c in written]
        report.superseded = [c.supersedes for c in written if c.supersedes is not None]

    def _current(self, chunk_id: str) -> bool:
        try:
            return not self.engine.get_chunk(chunk_id).superseded
        except LoomError:
            return False

    # -- the dream pass -----------------------------------------------------
    def dream(self, on_report: Callable[[ConsolidationReport], None] | None = None) -> DreamPass:
        """Consolidate every stream with raw chunks waiting (up to ``DREAM_BATCHES_PER_STREAM`` calls
        each). A stream whose call fails is recorded and passed over: one bad batch must not keep
        every later stream waiting. ``on_report`` hears each call as it is made. Stops between
        calls once :meth:`stop` was asked."""
        result = DreamPass()
        for info in self.engine.list_streams():
            for _ in range(DREAM_BATCHES_PER_STREAM):
                if self._stop.is_set() or self.pending_count(info.name) == 0:
                    break
                try:
                    report = self.consolidate(info.name)
                except LoomError as exc:
                    if exc.code is not ErrorCode.CONFLICT:  # CONFLICT: another call holds it; in hand
                        log.warning("dream: consolidating stream %r failed: %s", info.name, exc.code)
                        result.failures.append((info.name, exc.code.value))
                    break
                result.reports.append(report)
                if on_report is not None:
                    on_report(report)
                if report.through is None:
                    break
            if self._stop.is_set():
                break
        return result

    def start(self, interval_seconds: float) -> None:
        """Run :meth:`dream` every ``interval_seconds`` on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.dream(self._on_report)  # each call heard as it is made: the audit trail
                except LoomError as exc:  # the provider is down or refuses: try again next time
                    log.warning("dream pass stopped: %s", exc.code)
                except Exception as exc:
                    log.error("dream pass failed: %s", type(exc).__name__)

        self._thread = threading.Thread(target=loop, name="loom-dream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
