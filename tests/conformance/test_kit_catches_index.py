"""The index kit's ordering and concurrency checks can fail: a small in-memory index passes them,
and the same index with one bug each (queued deletes applied last; search unguarded while commit
mutates) fails exactly the check aimed at it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from loom_core.contracts.index import IndexDocument, IndexHit, IndexQuery
from loom_core.testing.index import IndexSuite


class MemoryIndex:
    """Correct: changes queue in call order and apply at commit under a lock search also takes."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._docs: dict[str, IndexDocument] = {}
        self._queue: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def upsert(self, docs: Sequence[IndexDocument]) -> None:
        self._queue.extend(("upsert", d) for d in docs)

    def delete(self, ids: Sequence[str]) -> None:
        self._queue.extend(("delete", i) for i in ids)

    def delete_stream(self, stream: str) -> None:
        self._queue.append(("stream", stream))

    def _apply(self, ops: Iterable[tuple[str, Any]]) -> None:
        for op, arg in ops:
            if op == "upsert":
                self._docs[arg.id] = arg
            elif op == "delete":
                self._docs.pop(arg, None)
            else:
                for key in [k for k, d in self._docs.items() if d.stream == arg]:
                    del self._docs[key]

    def commit(self) -> None:
        with self._lock:
            self._apply(self._queue)
            self._queue = []

    def _matching(self, query: IndexQuery) -> list[IndexHit]:
        words = query.text.lower().split()
        hits = []
        for d in self._docs.values():
            score = sum(d.text.lower().split().count(w) for w in words)
            if score and (query.streams is None or d.stream in query.streams):
                hits.append(IndexHit(d.id, float(score)))
        return sorted(hits, key=lambda h: -h.score)[: query.limit]

    def search(self, query: IndexQuery) -> list[IndexHit]:
        with self._lock:
            return self._matching(query)

    def count(self) -> int:
        return len(self._docs)

    def ids(self) -> set[str]:
        return set(self._docs)

    def rebuild(self, docs: Iterable[IndexDocument]) -> None:
        with self._lock:
            self._docs = {d.id: d for d in docs}

    def close(self) -> None:
        return None


class DeletesLast(MemoryIndex):
    """Applies the queued upserts first and the deletes after them, whatever the call order."""

    def commit(self) -> None:
        with self._lock:
            self._apply([q for q in self._queue if q[0] == "upsert"])
            self._apply([q for q in self._queue if q[0] != "upsert"])
            self._queue = []


class Unguarded(MemoryIndex):
    """Searches without the lock while commit mutates the same dict (yielding the GIL as it reads)."""

    def _matching(self, query: IndexQuery) -> list[IndexHit]:
        hits = []
        for d in self._docs.values():
            time.sleep(0)  # let the writer in mid-iteration, as a larger corpus would
            if query.text.split()[0] in d.text:
                hits.append(IndexHit(d.id, 1.0))
        return hits[: query.limit]

    def search(self, query: IndexQuery) -> list[IndexHit]:
        return self._matching(query)


CASES: list[tuple[str, Callable[[], MemoryIndex], str]] = [
    ("deletes applied last", DeletesLast, "test_queued_changes_apply_in_call_order"),
    ("search unguarded", Unguarded, "test_searches_while_another_thread_commits"),
]


@pytest.mark.parametrize(("label", "broken", "test_name"), CASES, ids=[c[0] for c in CASES])
def test_index_kit_fails_the_broken_index(label: str, broken: Callable[[], MemoryIndex], test_name: str) -> None:
    check = getattr(IndexSuite(), test_name)
    check(MemoryIndex())  # the correct index passes
    with pytest.raises(AssertionError):
        check(broken())
