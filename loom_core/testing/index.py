"""Conformance suite for full-text index backends.

Fixture contract
----------------
A plugin's test class subclasses :class:`IndexSuite`, sets ``capabilities``
to what its backend declares and ``backend_name`` to the name it registers
(its ``loom.index`` entry point), and provides one fixture, ``make_index``:
a callable ``(path: Path) -> Index`` that opens (creating if needed) the
backend in the directory ``path`` as production would (through
``PluginHost().create("index", NAME, ctx)`` when possible).

The suite closes every index it opens. With capability
``multiprocess_lock`` a second process opens the same directory through the
plugin host (``backend_name``, default options) and must get
``INDEX_LOCKED``.

Documents use plain English words; the suite relies on lowercasing but not
on stemming, so tokenizer choices stay the backend's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar

import pytest

from loom_core.contracts.index import Index, IndexDocument, IndexHit, IndexQuery
from loom_core.errors import ErrorCode, LoomError
from loom_core.testing.base import ConformanceSuite, core, requires
from loom_core.testing.leaks import changed_paths, snapshot_tree

MakeIndex = Callable[[Path], Index]

#: User text that must search without raising: query-language syntax is just text.
HOSTILE_QUERIES: tuple[str, ...] = (
    'say "hello',
    '"quoted phrase"',
    "stream:other OR level:1",
    "id:doc-1",
    "(unbalanced",
    "balanced (group) here)",
    "AND",
    "OR NOT AND",
    "- + ! ~ * ? ^ : \\",
    "hello^2 world~3",
    "title:[a TO z] {x TO y}",
    "C++ & C# || e-mail",
    "'; DROP TABLE chunks; --",
    "naïve Zürich café ✓ 🚀",
    "tab\there\nnewline\r\n",
    "/regex.*/",
    "\x00nul",
    "word " * 2000,
)

_CHILD_OPEN = """
import json, sys
from pathlib import Path
from loom_core.contracts import BackendContext
from loom_core.errors import LoomError
from loom_core.plugins.host import PluginHost
name, path = sys.argv[1], sys.argv[2]
try:
    index = PluginHost().create("index", name, BackendContext(data_dir=Path(path)))
except LoomError as exc:
    print(json.dumps({"code": str(exc.code), "message": exc.message}))
else:
    index.close()
    print(json.dumps({"code": None, "message": ""}))
"""


def doc(
    id: str,
    text: str,
    *,
    stream: str = "main",
    level: int = 0,
    created_at: int = 1_700_000_000_000,
    superseded: bool = False,
) -> IndexDocument:
    """An :class:`IndexDocument` with defaults for what a test does not care about."""
    return IndexDocument(id, stream, level, text, created_at, superseded)


def hit_ids(hits: Sequence[IndexHit]) -> list[str]:
    return [h.id for h in hits]


def _filter_corpus() -> list[IndexDocument]:
    streams = ("s1", "s2", "team a:b")
    return [
        IndexDocument(
            f"f{i:03d}",
            streams[i % 3],
            i % 4,
            f"common token{i % 7}",
            1000 + 10 * i,
            superseded=(i % 5 == 0),
        )
        for i in range(120)
    ]


def _matches(d: IndexDocument, q: IndexQuery) -> bool:
    return (
        (q.streams is None or d.stream in q.streams)
        and (q.levels is None or d.level in q.levels)
        and (q.since is None or d.created_at >= q.since)
        and (q.until is None or d.created_at < q.until)
        and (q.include_superseded or not d.superseded)
    )


class IndexSuite(ConformanceSuite):
    """Guarantees of :class:`loom_core.contracts.index.Index`.

    See the module docstring for the ``make_index`` fixture contract.
    """

    backend_name: ClassVar[str | None] = None

    # -- fixtures -------------------------------------------------------------

    @pytest.fixture
    def open_index(self, make_index: MakeIndex) -> Iterator[MakeIndex]:
        """``make_index`` that closes everything it opened at teardown."""
        opened: list[Index] = []

        def open_(path: Path) -> Index:
            index = make_index(path)
            opened.append(index)
            return index

        yield open_
        for index in opened:
            with suppress(Exception):
                index.close()

    @pytest.fixture
    def index(self, open_index: MakeIndex, tmp_path: Path) -> Index:
        """A fresh, empty index in ``tmp_path / "index"``."""
        return open_index(tmp_path / "index")

    # -- shape ----------------------------------------------------------------

    @core
    def test_index_satisfies_contract(self, index: Index) -> None:
        """Proves the backend has every protocol method, declares the suite's capabilities and
        starts empty.

        Fix: implement every method of ``Index``; set ``capabilities`` equal to the test
        class's ``capabilities``; a new directory holds no documents.
        """
        assert isinstance(index, Index), "backend lacks methods of the Index protocol"
        assert frozenset(index.capabilities) == type(self).capabilities, (
            f"backend declares {sorted(index.capabilities)} but the test class says "
            f"{sorted(type(self).capabilities)}"
        )
        assert index.count() == 0
        assert index.ids() == set()
        assert index.search(IndexQuery("anything")) == []

    # -- writes ---------------------------------------------------------------

    @core
    def test_commit_makes_documents_searchable(self, index: Index) -> None:
        """Proves committed documents are found by their words (case-insensitively), counted and
        listed, and that non-ASCII words are searchable.

        Fix: analyze document text and query text the same way (at least lowercasing); make
        ``commit`` visible to the next ``search`` (reload the reader).
        """
        index.upsert([doc("d1", "The Quick brown fox"), doc("d2", "a lazy dog in Zürich")])
        index.commit()
        assert hit_ids(index.search(IndexQuery("quick"))) == ["d1"]
        assert hit_ids(index.search(IndexQuery("DOG"))) == ["d2"]
        assert hit_ids(index.search(IndexQuery("zürich"))) == ["d2"]
        assert index.count() == 2
        assert index.ids() == {"d1", "d2"}
        assert all(isinstance(h.score, float) for h in index.search(IndexQuery("quick dog")))

    @core
    def test_upsert_replaces_by_id(self, index: Index) -> None:
        """Proves upserting an existing id replaces the document (old words no longer match, no
        duplicate), including when the id repeats within one call (the last one wins) or across
        commits.

        Fix: delete by the id term before adding, in the same writer, so the delete applies to
        older documents only.
        """
        index.upsert([doc("d1", "original words"), doc("d2", "other")])
        index.commit()
        index.upsert([doc("d1", "replacement text")])
        index.commit()
        assert index.search(IndexQuery("original")) == [], "the replaced document is still found"
        assert hit_ids(index.search(IndexQuery("replacement"))) == ["d1"]
        index.upsert([doc("d3", "first version"), doc("d3", "second version")])
        index.commit()
        assert hit_ids(index.search(IndexQuery("version"))) == ["d3"], "duplicate ids within one upsert"
        assert hit_ids(index.search(IndexQuery("second"))) == ["d3"]
        assert index.search(IndexQuery("first")) == []
        assert index.count() == 3
        assert index.ids() == {"d1", "d2", "d3"}

    @core
    @requires("add_new")
    def test_add_new_queues_fresh_documents(self, index: Index) -> None:
        """Proves ``add_new`` (capability ``add_new``) adds documents visible after commit, that
        ``delete`` before the commit cancels them, and that a later ``upsert`` of the same id
        still replaces the document without a duplicate.

        Fix: queue the documents like ``upsert`` but without the delete-by-id; keep ``delete``
        and ``upsert`` applying to documents queued earlier in the same writer.
        """
        add_new = getattr(index, "add_new", None)
        assert callable(add_new), "the backend declares add_new but has no add_new method"
        add_new([doc("n1", "fresh alpha"), doc("n2", "fresh beta"), doc("n3", "fresh gamma")])
        assert index.search(IndexQuery("fresh")) == [], "add_new is visible before commit"
        index.delete(["n3"])
        index.commit()
        assert sorted(hit_ids(index.search(IndexQuery("fresh")))) == ["n1", "n2"]
        assert index.ids() == {"n1", "n2"}, "a document deleted before the commit survived it"
        index.upsert([doc("n1", "replaced delta", superseded=True)])
        index.commit()
        assert index.search(IndexQuery("alpha", include_superseded=True)) == [], "upsert left the old version"
        assert hit_ids(index.search(IndexQuery("delta", include_superseded=True))) == ["n1"]
        assert index.count() == 2

    @core
    def test_upsert_can_change_filters(self, index: Index) -> None:
        """Proves an upsert that marks a document superseded (or moves its level) updates the
        filters too, as the engine does when a chunk is superseded.

        Fix: index filter fields from the new document on every upsert, not only the text.
        """
        index.upsert([doc("d1", "memory about tea", level=0)])
        index.commit()
        index.upsert([doc("d1", "memory about tea", level=1, superseded=True)])
        index.commit()
        assert index.search(IndexQuery("tea")) == []
        assert hit_ids(index.search(IndexQuery("tea", include_superseded=True, levels=[1]))) == ["d1"]
        assert index.search(IndexQuery("tea", include_superseded=True, levels=[0])) == []

    @core
    def test_delete_by_id(self, index: Index) -> None:
        """Proves ``delete`` removes exactly the given ids after commit (absent ids are ignored),
        from search, ``count`` and ``ids``.

        Fix: delete by the exact id term (an untokenized field), so ``doc-1`` does not also hit
        ``doc-10``.
        """
        index.upsert([doc("doc-1", "shared word"), doc("doc-10", "shared word"), doc("doc 2", "shared word")])
        index.commit()
        index.delete(["doc-1", "doc 2", "never-added"])
        index.commit()
        assert hit_ids(index.search(IndexQuery("shared"))) == ["doc-10"]
        assert index.count() == 1
        assert index.ids() == {"doc-10"}

    @core
    def test_delete_stream(self, index: Index) -> None:
        """Proves ``delete_stream`` removes every document of that stream and nothing of streams
        whose names share a prefix or contain spaces and colons.

        Fix: delete by the exact stream term (an untokenized field).
        """
        index.upsert(
            [
                doc("a1", "shared", stream="agent"),
                doc("a2", "shared", stream="agent"),
                doc("b1", "shared", stream="agent-b"),
                doc("c1", "shared", stream="agent b:c"),
            ]
        )
        index.commit()
        index.delete_stream("agent")
        index.delete_stream("no-such-stream")
        index.commit()
        assert index.ids() == {"b1", "c1"}
        index.delete_stream("agent b:c")
        index.commit()
        assert index.ids() == {"b1"}

    @core
    def test_queued_changes_apply_in_call_order(self, index: Index) -> None:
        """Proves changes queued before one ``commit`` take effect in the order they were made:
        a document upserted after its stream (or its id) was deleted is present, one deleted
        after its upsert is absent.

        Recovery relies on this: it deletes a stream, re-adds the stream's current chunks and
        commits once. Fix: apply queued deletes and upserts in call order (or let a later
        upsert cancel an earlier delete of the same id or stream), never "upserts first".
        """
        index.upsert([doc("old", "heron", stream="s"), doc("keep", "heron", stream="other")])
        index.commit()
        index.delete_stream("s")
        index.upsert([doc("new", "heron", stream="s")])
        index.delete(["keep"])
        index.upsert([doc("keep", "heron again", stream="other")])
        index.upsert([doc("gone", "heron", stream="s")])
        index.delete(["gone"])
        index.commit()
        assert index.ids() == {"new", "keep"}, (
            f"after delete_stream + upsert, delete + upsert, upsert + delete in one commit: ids "
            f"{sorted(index.ids())}, want ['keep', 'new']"
        )
        assert sorted(hit_ids(index.search(IndexQuery("heron", limit=10)))) == ["keep", "new"]

    @core
    def test_searches_while_another_thread_commits(self, index: Index) -> None:
        """Proves searches running in three threads while a fourth upserts and commits neither
        raise nor return an id that was never added.

        The memory server searches without its write lock (only writes hold it), so readers
        overlap commits. Fix: guard whatever ``commit`` swaps or mutates that ``search`` reads
        (a lock, or a new immutable snapshot published at commit).
        """
        index.upsert([doc(f"base-{i}", "heron base") for i in range(50)])
        index.commit()
        known = {f"base-{i}" for i in range(50)} | {f"w-{r}-{i}" for r in range(8) for i in range(20)}
        problems: list[str] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set() and not problems:
                try:
                    found = set(hit_ids(index.search(IndexQuery("heron", limit=300))))
                except Exception as exc:  # reported, not raised: the thread must not die silently
                    problems.append(f"search raised {type(exc).__name__}: {exc}")
                    return
                if found - known:
                    problems.append(f"search returned ids never added: {sorted(found - known)[:3]}")

        readers = [threading.Thread(target=read, daemon=True) for _ in range(3)]
        for reader in readers:
            reader.start()
        try:
            for r in range(8):
                index.upsert([doc(f"w-{r}-{i}", f"heron written {r}") for i in range(20)])
                index.commit()
        finally:
            stop.set()
            for reader in readers:
                reader.join(timeout=60)
        assert not problems, f"concurrent search and commit: {problems[0]}"
        assert index.count() == len(known)

    @core
    def test_rebuild_replaces_everything(self, index: Index) -> None:
        """Proves ``rebuild`` replaces the whole content with the given documents (taken from any
        iterable), so old documents vanish and new ones are searchable.

        Fix: delete all documents and add the new ones in one commit.
        """
        index.upsert([doc("old1", "stale words"), doc("old2", "stale words")])
        index.commit()
        index.rebuild(doc(f"new{i}", f"fresh words {i}") for i in range(50))
        assert index.search(IndexQuery("stale")) == []
        assert index.count() == 50
        assert index.ids() == {f"new{i}" for i in range(50)}
        assert len(index.search(IndexQuery("fresh", limit=100))) == 50
        index.rebuild([])
        assert index.count() == 0

    @core
    def test_persists_across_reopen(self, open_index: MakeIndex, tmp_path: Path) -> None:
        """Proves committed documents, replacements and deletions survive closing and reopening
        the same directory, and ``close`` is idempotent.

        Fix: keep the index in the given directory (not in memory) and release the writer in
        ``close`` so the next open can write.
        """
        path = tmp_path / "index"
        first = open_index(path)
        first.upsert([doc("d1", "kept words"), doc("d2", "removed words"), doc("d3", "old text")])
        first.commit()
        first.delete(["d2"])
        first.upsert([doc("d3", "new text")])
        first.commit()
        first.close()
        first.close()
        second = open_index(path)
        assert second.ids() == {"d1", "d3"}
        assert hit_ids(second.search(IndexQuery("new"))) == ["d3"]
        assert second.search(IndexQuery("old")) == []
        second.upsert([doc("d4", "added after reopen")])
        second.commit()
        assert second.count() == 3

    # -- search -----------------------------------------------------------------

    @core
    def test_hits_ordered_by_score(self, index: Index) -> None:
        """Proves hits come in descending score order and a document with more occurrences of a
        rare query word ranks above one with fewer; ``limit`` caps the number of hits.

        Fix: sort by the BM25 score the engine returns; do not re-sort by id or time.
        """
        index.upsert(
            [
                doc("few", "zebra common filler filler filler filler"),
                doc("many", "zebra zebra zebra common"),
                doc("none", "common filler filler filler"),
            ]
            + [doc(f"pad{i}", f"common padding {i}") for i in range(20)]
        )
        index.commit()
        hits = index.search(IndexQuery("zebra"))
        assert hit_ids(hits) == ["many", "few"]
        assert hits[0].score > hits[1].score
        mixed = index.search(IndexQuery("zebra common filler", limit=50))
        scores = [h.score for h in mixed]
        assert scores == sorted(scores, reverse=True), "hits are not in descending score order"
        assert set(hit_ids(mixed)) >= {"many", "few", "none"}
        assert len(index.search(IndexQuery("common", limit=5))) == 5

    @core
    def test_filters_are_exact(self, index: Index) -> None:
        """Proves stream, level, time range (since inclusive, until exclusive) and superseded
        filters return exactly the matching documents, for 160 combinations checked against a
        model; empty stream or level lists match nothing.

        Fix: translate each filter into a query clause (term / term-set / range / must-not) of
        the same query; ``until`` is exclusive; superseded documents only with
        ``include_superseded``.
        """
        corpus = _filter_corpus()
        index.upsert(corpus)
        index.commit()
        stream_sets: list[Sequence[str] | None] = [None, ["s1"], ["s1", "team a:b"], []]
        level_sets: list[Sequence[int] | None] = [None, [0], [1, 3], []]
        windows = [(None, None), (1200, None), (None, 1500), (1200, 1500), (1500, 1500)]
        failures: list[str] = []
        for streams in stream_sets:
            for levels in level_sets:
                for since, until in windows:
                    for include_superseded in (False, True):
                        q = IndexQuery("common", streams=streams, levels=levels, since=since, until=until,
                                       include_superseded=include_superseded, limit=1000)
                        want = {d.id for d in corpus if _matches(d, q)}
                        got = hit_ids(index.search(q))
                        if set(got) != want or len(got) != len(want):
                            failures.append(
                                f"streams={streams} levels={levels} since={since} until={until} "
                                f"superseded={include_superseded}: {len(set(got) - want)} extra, "
                                f"{len(want - set(got))} missing"
                            )
        assert not failures, f"{len(failures)} filter combinations wrong, e.g.:\n  " + "\n  ".join(failures[:8])

    @core
    def test_filters_apply_before_limit(self, index: Index) -> None:
        """Proves filters are applied inside the search, not to the top ``limit`` hits afterwards:
        low-scoring matching documents are returned even when many better-scoring documents are
        filtered out.

        Fix: put filters in the engine's query (constant-score clauses), never post-filter.
        """
        index.upsert(
            [doc(f"big{i}", "needle needle needle", stream="big") for i in range(60)]
            + [doc(f"old{i}", "needle needle needle", superseded=True) for i in range(60)]
            + [doc(f"small{i}", "needle hay hay hay hay hay hay", stream="small") for i in range(3)]
        )
        index.commit()
        assert sorted(hit_ids(index.search(IndexQuery("needle", streams=["small"], limit=3)))) == [
            "small0", "small1", "small2"
        ]
        current = hit_ids(index.search(IndexQuery("needle", limit=10)))
        assert current and all(h.startswith(("big", "small")) for h in current)
        assert len(hit_ids(index.search(IndexQuery("needle", streams=["main", "small"], limit=3)))) == 3

    @core
    def test_user_text_is_not_query_syntax(self, index: Index) -> None:
        """Proves user text with quotes, colons, parentheses, operators, NUL and very long input
        searches without raising, and field syntax (``id:...``, ``stream:...``) is not
        interpreted.

        Fix: never hand raw user text to a query parser; build term queries from analyzed
        tokens (or escape every special character).
        """
        index.upsert([doc("doc-1", "hello world", stream="main"), doc("x", "say hello to C++ and e-mail")])
        index.commit()
        failures: list[str] = []
        for text in HOSTILE_QUERIES:
            try:
                hits = index.search(IndexQuery(text))
            except Exception as exc:
                failures.append(f"{text[:40]!r}: {type(exc).__name__}: {str(exc)[:100]}")
                continue
            if not all(isinstance(h, IndexHit) for h in hits):
                failures.append(f"{text[:40]!r}: returned {hits!r}")
        assert not failures, "plain user text raised:\n  " + "\n  ".join(failures)
        assert index.search(IndexQuery("stream:other")) == [], "field syntax was interpreted"
        assert hit_ids(index.search(IndexQuery('say "hello'))) in (["x", "doc-1"], ["x"])

    @core
    def test_malformed_queries_raise(self, index: Index) -> None:
        """Proves empty text and a non-positive limit raise INDEX_QUERY_INVALID instead of
        returning an empty list that hides the mistake.

        Fix: validate the query before searching and raise ``LoomError(INDEX_QUERY_INVALID)``.
        """
        index.upsert([doc("d1", "words")])
        index.commit()
        for label, query in {
            "empty text": IndexQuery(""),
            "blank text": IndexQuery("  \n\t"),
            "zero limit": IndexQuery("words", limit=0),
            "negative limit": IndexQuery("words", limit=-1),
        }.items():
            with pytest.raises(LoomError) as info:
                index.search(query)
            assert info.value.code is ErrorCode.INDEX_QUERY_INVALID, f"{label}: raised {info.value.code}"

    # -- lifecycle -------------------------------------------------------------------

    @core
    def test_use_after_close_is_refused(self, index: Index) -> None:
        """Proves every operation after ``close`` raises a coded INDEX_* LoomError (never a
        native exception or an empty result), and ``close`` is idempotent.

        Fix: keep a closed flag checked by every method; raise ``LoomError(INDEX_CLOSED)``.
        """
        index.upsert([doc("d1", "words")])
        index.commit()
        index.close()
        index.close()
        calls: dict[str, Callable[[], Any]] = {
            "search": lambda: index.search(IndexQuery("words")),
            "upsert": lambda: index.upsert([doc("d2", "more")]),
            "delete": lambda: index.delete(["d1"]),
            "delete_stream": lambda: index.delete_stream("main"),
            "commit": index.commit,
            "count": index.count,
            "ids": index.ids,
            "rebuild": lambda: index.rebuild([]),
        }
        wrong: dict[str, str] = {}
        for name, call in calls.items():
            try:
                call()
            except LoomError as exc:
                if not exc.code.value.startswith("INDEX_"):
                    wrong[name] = str(exc.code)
            except Exception as exc:
                wrong[name] = f"{type(exc).__name__} (not a LoomError)"
            else:
                wrong[name] = "no error"
        assert not wrong, f"operations after close did not raise an INDEX_* LoomError: {wrong}"

    @core
    def test_nothing_written_outside_the_directory(
        self, open_index: MakeIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Proves indexing, committing, searching, rebuilding, closing and reopening create or
        change files only inside the given directory, with the working directory set to an
        empty sibling.

        Fix: keep every file (segments, locks, metadata, temporary files) under the directory.
        """
        path = tmp_path / "data" / "index"
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        before = snapshot_tree(tmp_path)
        index = open_index(path)
        index.upsert([doc(f"d{i}", f"text number {i}") for i in range(100)])
        index.commit()
        index.search(IndexQuery("text"))
        index.rebuild([doc("r", "rebuilt")])
        index.close()
        open_index(path).close()
        outside = changed_paths(before, snapshot_tree(tmp_path), allowed=[path])
        assert not outside, "files written outside the index directory:\n  " + "\n  ".join(map(str, outside))

    @core
    @requires("multiprocess_lock")
    def test_second_process_gets_index_locked(self, index: Index, tmp_path: Path) -> None:
        """Proves another process opening the same directory gets INDEX_LOCKED naming the
        directory, and can open it once this process closed the index.

        Fix: take the single writer at open, translate the lock failure into
        ``LoomError(INDEX_LOCKED, ...)`` naming the directory, drop the writer in ``close``.
        """
        name = type(self).backend_name
        assert name, f"{type(self).__qualname__}.backend_name is not set; set it to the registered name"
        path = tmp_path / "index"
        argv = [sys.executable, "-c", _CHILD_OPEN, name, str(path)]
        locked = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert locked.returncode == 0, f"child crashed instead of raising a LoomError:\n{locked.stderr[-2000:]}"
        report = json.loads(locked.stdout.strip().splitlines()[-1])
        assert report["code"] == ErrorCode.INDEX_LOCKED, f"second process got {report}"
        assert str(path) in report["message"], "the INDEX_LOCKED message must name the directory"
        index.close()
        freed = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert freed.returncode == 0, freed.stderr[-2000:]
        assert json.loads(freed.stdout.strip().splitlines()[-1])["code"] is None, "close did not release the lock"


__all__ = ["HOSTILE_QUERIES", "IndexSuite", "MakeIndex", "doc", "hit_ids"]
