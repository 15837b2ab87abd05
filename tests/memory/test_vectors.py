"""The in-memory vector store: sketch first pass recall, exact filters, removal."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from loom_core.memory import overlap
from loom_core.memory.ids import new_ids
from loom_core.memory.overlap import Overlap
from loom_core.memory.vectors import SKETCH_MIN_ROWS, VectorFilter, VectorStore


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 200 random centres (a stand-in for topical text)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dim)).astype(np.float32)
    data = centres[rng.integers(0, 200, n)] + 0.9 * rng.standard_normal((n, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data.astype(np.float32)


@pytest.fixture(scope="module")
def big() -> tuple[VectorStore, np.ndarray, list[str]]:
    n, dim = 3 * SKETCH_MIN_ROWS, 64
    data = _clustered(n, dim, 1)
    ids = [f"id{i:06d}" for i in range(n)]
    store = VectorStore(dim)
    store.add(
        ids,
        data,
        levels=[i % 3 for i in range(n)],
        created=list(range(n)),
        expires=[None] * n,
        superseded=[i % 5 == 0 for i in range(n)],
    )
    return store, data, ids


def test_sketch_search_recall_against_exact(big: tuple[VectorStore, np.ndarray, list[str]]) -> None:
    """On a stream big enough for the sketch pass, recall@10 against the exact scan is >= 0.95."""
    store, data, _ids = big
    rng = np.random.default_rng(2)
    flt = VectorFilter(include_superseded=True)
    recalls = []
    for row in rng.integers(0, len(data), 50):
        q = data[row] + 0.3 * rng.standard_normal(data.shape[1]).astype(np.float32)
        q /= np.linalg.norm(q)
        approx = {i for i, _ in store.search(q, 10, flt)}
        exact = {i for i, _ in store.search(q, 10, flt, exact=True)}
        recalls.append(len(approx & exact) / 10)
    assert float(np.mean(recalls)) >= 0.95


@pytest.mark.parametrize(
    "flt",
    [
        VectorFilter(levels=[2]),
        VectorFilter(since=100, until=9000),
        VectorFilter(include_superseded=False),
        VectorFilter(levels=[0, 1], since=5000, include_superseded=False),
        VectorFilter(until=50),  # selective: exact scan of the few rows
    ],
)
def test_filters_are_exact_on_the_sketch_path(
    big: tuple[VectorStore, np.ndarray, list[str]], flt: VectorFilter
) -> None:
    """Every returned row passes the filter, and the best passing row is found."""
    store, data, ids = big
    q = data[7]
    hits = store.search(q, 20, flt)
    assert hits
    for chunk_id, _ in hits:
        row = ids.index(chunk_id)
        if flt.levels is not None:
            assert row % 3 in flt.levels
        if flt.since is not None:
            assert row >= flt.since
        if flt.until is not None:
            assert row < flt.until
        if not flt.include_superseded:
            assert row % 5 != 0
    assert hits[0] == store.search(q, 1, flt, exact=True)[0]


def test_removed_and_expired_rows_are_never_returned() -> None:
    """Removed rows vanish (and are compacted away); rows past their expiry are filtered."""
    dim = 16
    data = _clustered(SKETCH_MIN_ROWS + 3000, dim, 3)
    ids = new_ids(len(data))
    store = VectorStore(dim)
    store.add(
        ids,
        data,
        levels=[0] * len(ids),
        created=[0] * len(ids),
        expires=[5 if i % 2 else None for i in range(len(ids))],
        superseded=[False] * len(ids),
    )
    gone = set(ids[: len(ids) // 2])
    assert store.remove(sorted(gone)) == len(gone)
    assert len(store) == len(ids) - len(gone)
    for row in (0, 1, len(ids) - 1):
        hits = {i for i, _ in store.search(data[row], 50, VectorFilter(now=10))}
        assert not hits & gone
        assert all(ids.index(i) % 2 == 0 for i in hits), "expired rows leaked"


def test_replacing_an_id_keeps_one_row() -> None:
    """Adding an id again replaces its vector."""
    store = VectorStore(4)
    a = np.array([[1, 0, 0, 0]], dtype=np.float32)
    b = np.array([[0, 1, 0, 0]], dtype=np.float32)
    store.add(["x"], a, levels=[0], created=[0], expires=[None], superseded=[False])
    store.add(["x"], b, levels=[0], created=[0], expires=[None], superseded=[False])
    assert len(store) == 1
    assert store.search(b[0], 5, VectorFilter()) == [("x", pytest.approx(1.0))]


def test_new_ids_are_unique_sorted_ulids() -> None:
    """Bulk ids parse as ULIDs, ascend within a batch and do not repeat across batches."""
    from ulid import ULID

    batch = new_ids(5000)
    assert batch == sorted(batch) and len(set(batch + new_ids(5000))) == 10000
    assert all(str(ULID.from_str(i)) == i for i in batch[:50])


def test_a_split_sketch_scan_returns_what_one_thread_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a helper free, a stream of ``overlap.MIN_ROWS`` rows or more has half its sketches scanned
    on the helper thread; results (ids and scores, with a filter) equal the single-thread scan's."""
    n, dim = SKETCH_MIN_ROWS * 3, 32
    monkeypatch.setattr(overlap, "MIN_ROWS", n // 2)  # small enough to keep the test fast
    data = _clustered(n, dim, 3)
    store = VectorStore(dim)
    store.add([f"r{i}" for i in range(n)], data, levels=[i % 2 for i in range(n)], created=list(range(n)),
              expires=[None] * n, superseded=[False] * n)
    scanned_by: list[int] = []
    hamming = store._hamming

    def recording(*args: object) -> None:
        scanned_by.append(threading.get_ident())
        hamming(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_hamming", recording)
    helper = Overlap(1)
    try:
        for row, flt in [(11, VectorFilter()), (n - 3, VectorFilter(levels=[1])), (n // 2, VectorFilter(since=n // 3))]:
            scanned_by.clear()
            alone = store.search(data[row], 25, flt)
            assert set(scanned_by) == {threading.get_ident()}
            scanned_by.clear()
            split = store.search(data[row], 25, flt, overlap=helper)
            assert len(scanned_by) == 2 and len(set(scanned_by)) == 2, "one half must run on the helper"
            assert split == alone
            assert alone[0][0] == f"r{row}" or flt.levels is not None
    finally:
        helper.close()


def test_sketch_candidates_are_the_nearest_by_hamming_distance() -> None:
    """The first pass keeps exactly the rows whose sign sketches are nearest the query's, by a Hamming
    distance recomputed here bit by bit from the projections (also after rows were removed, which
    compacts the sketches), whether the threshold comes from a sample (small ``want``), from every row
    (large ``want``), or from every row after the sample kept too few (a filter passing few rows)."""
    n, dim = SKETCH_MIN_ROWS * 2, 48
    data = _clustered(n, dim, 7)
    store = VectorStore(dim, bits=128, candidates=300)
    ids = [f"h{i}" for i in range(n)]
    store.add(ids, data, levels=[0] * n, created=[0] * n, expires=[None] * n, superseded=[False] * n)
    gone = set(range(0, n, 3))
    store.remove([ids[i] for i in sorted(gone)])  # a third: the store compacts
    kept = [i for i in range(n) if i not in gone]
    signs = (data[kept] @ store._planes) > 0
    few = np.zeros(len(kept), dtype=bool)
    few[::40] = True  # passes ~140 rows: fewer than asked for
    for row, want, mask in [(1, 300, None), (n // 2 + 1, 300, None), (n - 1, 2000, None), (4, 300, few)]:
        query_signs = (data[row] @ store._planes) > 0
        expected = (signs != query_signs).sum(axis=1)
        rows = store._sketch_candidates(data[row], None if mask is None else mask.copy(), want)
        chosen = np.sort(expected[rows])
        if mask is not None:  # every passing row, and only those
            assert sorted(rows.tolist()) == np.flatnonzero(mask).tolist()
            continue
        # the same distances as the smallest ones (rows tied at the threshold are interchangeable)
        assert len(rows) >= want
        assert chosen.tolist() == np.sort(expected)[: len(rows)].tolist()
        assert {store._ids[r] for r in rows.tolist()} <= {ids[i] for i in kept}


def test_a_stream_with_one_chunk_costs_little_memory() -> None:
    """Each stream built its own 384 x 768 float32 hyperplanes (1.2 MB) and 64 rows up front:
    3,000 one-chunk streams (one per user or agent) held 3.9 GB. The planes are shared now and a
    new stream starts small, so a hundred one-chunk streams take well under 2 MB of arrays."""
    import tracemalloc

    rng = np.random.default_rng(7)
    VectorStore(384)  # the shared planes are built once, before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stores = []
        for i in range(100):
            store = VectorStore(384)
            vector = rng.standard_normal((1, 384)).astype(np.float32)
            store.add([f"c{i}"], vector, levels=[0], created=[1], expires=[None], superseded=[False])
            stores.append(store)
        per_stream = (tracemalloc.get_traced_memory()[0] - before) / len(stores)
    finally:
        tracemalloc.stop()
    assert per_stream < 20_000, f"{per_stream:.0f} bytes per one-chunk stream"
