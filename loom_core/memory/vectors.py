"""In-memory vectors of one stream: exact filters, a sign-sketch first pass.

A plain scan of 100k x 384 float32 vectors reads 150 MB per query (16-23 ms
on the reference machine), so large streams are searched in two steps:

1. Every vector also has a *sign sketch*: the signs of its product with a
   fixed random Gaussian matrix (``bits`` of them, random-hyperplane hashing).
   The Hamming distance between two sketches estimates the angle between the
   vectors. Sketches are packed bits, one row per vector (96 bytes at 768
   bits), so a query scans ~10 MB instead of 150 MB, in one pass of
   SimSIMD's Hamming kernel (XOR and popcount in SIMD registers, the GIL
   released); numpy's ufuncs needed three passes per 64-bit word and
   intermediate arrays, about twice the time.
2. The ``candidates`` rows with the smallest Hamming distance are re-ranked
   by exact cosine on the float32 vectors.

Filters (level, time range, superseded, expiry, deleted) are boolean masks
applied before candidates are chosen, so they are exact; when a filter keeps
few rows, exactly those rows are scanned. Small streams are scanned exactly.
Sketches are derived data, computed from the vectors by the first search
after a write (off the ingest path) and never stored.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import simsimd

from loom_core.memory import overlap as helper_pool
from loom_core.memory.overlap import Overlap

F32 = npt.NDArray[np.float32]
NO_EXPIRY = np.iinfo(np.int64).max

#: streams with fewer live rows are scanned exactly
SKETCH_MIN_ROWS = 4_096
#: a filter that keeps at most this many rows gets an exact scan of them
EXACT_FILTER_ROWS = 4_096
#: default sketch width and re-rank pool
DEFAULT_BITS = 768
DEFAULT_CANDIDATES = 1_000
#: every how many rows the candidate threshold is first estimated from
SAMPLE_STEP = 16


@dataclass(frozen=True)
class VectorFilter:
    """Exact filters; ``None`` means no filter. ``now`` hides expired rows."""

    levels: Sequence[int] | None = None
    since: int | None = None
    until: int | None = None
    include_superseded: bool = False
    now: int | None = None


def _dot_rows(matrix: F32, q: F32) -> F32:
    """``matrix @ q`` without BLAS: for a few hundred rows a threaded BLAS call
    costs more in thread wake-ups than it saves, and on a busy machine its
    worker threads make the latency erratic."""
    out: F32 = np.einsum("ij,j->i", matrix, q)
    return out


#: Rows allocated for a new stream; storage doubles as it fills. Many streams hold a few chunks
#: (one per user or agent), so a new stream must cost little.
INITIAL_ROWS = 8


@functools.lru_cache(maxsize=8)
def _planes(dim: int, bits: int, seed: int) -> F32:
    """The sketch's random hyperplanes, shared read-only by every stream of that shape.

    They depend only on (dim, bits, seed); built per stream they cost 1.2 MB
    each at 384 x 768, so 3,000 streams held 3.9 GB.
    """
    planes: F32 = np.random.default_rng(seed).standard_normal((dim, bits)).astype(np.float32)
    planes.setflags(write=False)
    return planes


class VectorStore:
    """Vectors, sketches and routing columns of one stream (append-only rows;
    deleted rows are masked and compacted away once they are a quarter)."""

    def __init__(
        self,
        dim: int,
        *,
        bits: int = DEFAULT_BITS,
        candidates: int = DEFAULT_CANDIDATES,
        seed: int = 0x10057,
    ) -> None:
        if bits % 64:
            raise ValueError("bits must be a multiple of 64")
        self.dim = dim
        self.bits = bits
        self.candidates = candidates
        self._planes = _planes(dim, bits, seed)
        self._lock = threading.RLock()
        cap = INITIAL_ROWS
        self._vecs: F32 = np.zeros((cap, dim), dtype=np.float32)
        self._sketch = np.zeros((cap, bits // 8), dtype=np.uint8)
        self._level = np.zeros(cap, dtype=np.int16)
        self._created = np.zeros(cap, dtype=np.int64)
        self._expires = np.full(cap, NO_EXPIRY, dtype=np.int64)
        self._superseded = np.zeros(cap, dtype=bool)
        self._alive = np.zeros(cap, dtype=bool)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._n = 0
        self._dead = 0
        self._sketched = 0  # rows [0, _sketched) have sketches (computed lazily)
        # per-search work areas, reused (searches hold the lock): fresh
        # 100k-row temporaries cost page faults on every query
        self._dist = np.empty(0, dtype=np.uint16)

    # -- size ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._n - self._dead

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._row

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._row)

    def superseded_count(self) -> int:
        with self._lock:
            return int((self._superseded[: self._n] & self._alive[: self._n]).sum())

    # -- writes -------------------------------------------------------------
    def _sketch_of(self, vectors: F32) -> npt.NDArray[np.uint8]:
        """``(n, bits/8)`` uint8 sign sketch of ``(n, dim)`` vectors."""
        signs = (vectors @ self._planes) > 0
        return np.packbits(signs, axis=1)

    def add(
        self,
        ids: Sequence[str],
        vectors: F32,
        *,
        levels: Sequence[int],
        created: Sequence[int],
        expires: Sequence[int | None],
        superseded: Sequence[bool],
    ) -> None:
        """Append rows (an id already present is replaced)."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock:
            replaced = [i for i in ids if i in self._row]
            if replaced:
                self.remove(replaced)
            count = len(ids)
            self._grow(self._n + count)
            lo, hi = self._n, self._n + count
            self._vecs[lo:hi] = vectors
            self._level[lo:hi] = levels
            self._created[lo:hi] = created
            # Beyond int64 means never (such rows were accepted before times were bounded).
            self._expires[lo:hi] = [NO_EXPIRY if e is None or e >= NO_EXPIRY else e for e in expires]
            self._superseded[lo:hi] = superseded
            self._alive[lo:hi] = True
            for offset, chunk_id in enumerate(ids):
                self._row[chunk_id] = lo + offset
            self._ids.extend(ids)
            self._n = hi

    def set_superseded(self, chunk_id: str, value: bool) -> None:
        with self._lock:
            row = self._row.get(chunk_id)
            if row is not None:
                self._superseded[row] = value

    def remove(self, ids: Sequence[str]) -> int:
        """Forget rows; the number actually removed."""
        removed = 0
        with self._lock:
            for chunk_id in ids:
                row = self._row.pop(chunk_id, None)
                if row is not None:
                    self._alive[row] = False
                    self._dead += 1
                    removed += 1
            if self._dead > 1024 and self._dead > self._n // 4:
                self._compact()
        return removed

    def vector(self, chunk_id: str) -> F32 | None:
        with self._lock:
            row = self._row.get(chunk_id)
            return None if row is None else self._vecs[row].copy()

    def _grow(self, need: int) -> None:
        cap = self._vecs.shape[0]
        if need <= cap:
            return
        # an empty store (a stream loaded at start) gets exactly what it needs; a growing one doubles
        new_cap = need if self._n == 0 else max(need, cap * 2)
        n = self._n

        def grown(arr: npt.NDArray[Any], fill: object | None = None) -> npt.NDArray[Any]:
            # rows past _n are never read (except the alive flags), so most
            # columns need no fill: filling would touch every new page
            out = np.empty((new_cap, *arr.shape[1:]), dtype=arr.dtype)
            out[:n] = arr[:n]
            if fill is not None:
                out[n:] = fill
            return out

        self._vecs = grown(self._vecs)
        sketch = np.empty((new_cap, self.bits // 8), dtype=np.uint8)
        sketch[: self._sketched] = self._sketch[: self._sketched]
        self._sketch = sketch
        self._level = grown(self._level)
        self._created = grown(self._created)
        self._expires = grown(self._expires)
        self._superseded = grown(self._superseded)
        self._alive = grown(self._alive, False)

    def _ensure_sketches(self) -> None:
        """Sketch the rows added since the last search (kept off the write path)."""
        if self._sketched < self._n:
            self._sketch[self._sketched : self._n] = self._sketch_of(self._vecs[self._sketched : self._n])
            self._sketched = self._n

    def _compact(self) -> None:
        """Drop deleted rows, keeping the others in order."""
        self._ensure_sketches()
        rows = np.flatnonzero(self._alive[: self._n])
        n = len(rows)
        self._vecs[:n] = self._vecs[rows]
        self._sketch[:n] = self._sketch[rows]
        self._level[:n] = self._level[rows]
        self._created[:n] = self._created[rows]
        self._expires[:n] = self._expires[rows]
        self._superseded[:n] = self._superseded[rows]
        self._alive[:n] = True
        self._alive[n:] = False
        self._ids = [self._ids[r] for r in rows.tolist()]
        self._row = {chunk_id: i for i, chunk_id in enumerate(self._ids)}
        self._n = n
        self._sketched = n
        self._dead = 0

    # -- search -------------------------------------------------------------
    def _mask(self, flt: VectorFilter) -> npt.NDArray[np.bool_] | None:
        """Rows passing ``flt``; None when every row passes (the fast path)."""
        n = self._n
        mask: npt.NDArray[np.bool_] | None = None if self._dead == 0 else self._alive[:n].copy()

        def both(extra: npt.NDArray[np.bool_]) -> None:
            nonlocal mask
            mask = extra if mask is None else (mask & extra)

        if flt.levels is not None:
            both(np.isin(self._level[:n], np.asarray(list(flt.levels), dtype=np.int16)))
        if flt.since is not None:
            both(self._created[:n] >= flt.since)
        if flt.until is not None:
            both(self._created[:n] < flt.until)
        if not flt.include_superseded and self._superseded[:n].any():
            both(~self._superseded[:n])
        if flt.now is not None and (self._expires[:n] <= flt.now).any():
            both(self._expires[:n] > flt.now)
        return mask

    def search(
        self, query: F32, k: int, flt: VectorFilter, *, exact: bool = False, overlap: Overlap | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` rows with the highest cosine (vectors are unit length)
        that pass ``flt``; ``exact=True`` forces a full scan (the baseline).
        With ``overlap``, a free helper thread scans half of the sketches."""
        with self._lock:
            n = self._n
            if n == 0 or k <= 0:
                return []
            q = np.asarray(query, dtype=np.float32).reshape(-1)
            mask = self._mask(flt)
            passing = n if mask is None else int(mask.sum())
            if passing == 0:
                return []
            if exact or len(self) < SKETCH_MIN_ROWS:
                scores = _dot_rows(self._vecs[:n], q)
                if mask is not None:
                    scores[~mask] = -np.inf
                return self._top(np.arange(n), scores, min(k, passing))
            if mask is not None and passing <= EXACT_FILTER_ROWS:
                rows = np.flatnonzero(mask)
                return self._top(rows, _dot_rows(self._vecs[rows], q), k)
            rows = self._sketch_candidates(q, mask, max(self.candidates, 20 * k), overlap)
            return self._top(rows, _dot_rows(self._vecs[rows], q), k)

    def _sketch_candidates(
        self, q: F32, mask: npt.NDArray[np.bool_] | None, want: int, overlap: Overlap | None = None
    ) -> npt.NDArray[np.intp]:
        """Rows whose sketches are nearest to the query's (at least ``want``
        passing rows when that many exist); half the scan goes to a free
        ``overlap`` helper."""
        self._ensure_sketches()
        n = self._n
        signs = np.einsum("j,jk->k", q, self._planes) > 0
        qs = np.packbits(signs).reshape(1, -1)
        if self._dist.shape[0] < n:
            size = self._sketch.shape[0]
            self._dist = np.empty(size, dtype=np.uint16)
        dist = self._dist[:n]
        # the two halves write disjoint slices of the work areas
        split = overlap is not None and n >= helper_pool.MIN_ROWS
        middle = n // 2 if split else n
        other_half = None
        if overlap is not None and split:
            other_half = overlap.start(lambda: self._hamming(qs, middle, n))
        try:
            self._hamming(qs, 0, middle)
        finally:  # never leave a helper writing the work areas after the lock is released
            if other_half is not None:
                other_half()
        if mask is not None:
            dist[~mask] = self.bits + 1
        rows = self._nearest(dist, want)
        if len(rows) > 4 * want:  # many ties at the threshold: keep the nearest
            rows = rows[np.argpartition(dist[rows], want - 1)[:want]]
        return rows

    def _nearest(self, dist: npt.NDArray[np.uint16], want: int) -> npt.NDArray[np.intp]:
        """Rows at distance <= d, for the smallest d that keeps ``want`` passing rows
        (every passing row when fewer pass; masked rows are at ``bits + 1``).

        A histogram of every 16th row guesses a distance that keeps a quarter more
        than ``want``; the exact threshold is then counted among the rows it keeps,
        which gives the same rows as a histogram of all of them at a fraction of
        its cost. When the guess keeps too few, the full histogram decides.
        """
        step = SAMPLE_STEP
        if len(dist) >= step * want:
            sample = np.bincount(dist[::step], minlength=self.bits + 2)[: self.bits + 1]
            guess = int(np.searchsorted(np.cumsum(sample), (5 * want) // (4 * step) + 1))
            if guess <= self.bits:
                kept = np.flatnonzero(dist <= guess)
                near = dist[kept]
                if len(near) >= want:
                    threshold = int(np.searchsorted(np.cumsum(np.bincount(near)), want))
                    return kept[near <= threshold]
        counts = np.bincount(dist, minlength=self.bits + 2)
        cumulative = np.cumsum(counts[: self.bits + 1])
        threshold = int(np.searchsorted(cumulative, min(want, int(cumulative[-1]))))
        return np.flatnonzero(dist <= threshold)

    def _hamming(self, qs: npt.NDArray[np.uint8], lo: int, hi: int) -> None:
        """Hamming distances of rows ``[lo, hi)`` to the query sketch, into ``_dist``."""
        simsimd.cdist(qs, self._sketch[lo:hi], metric="hamming", dtype="bin8", out=self._dist[None, lo:hi])

    def _top(self, rows: npt.NDArray[np.intp], scores: F32, k: int) -> list[tuple[str, float]]:
        if len(rows) == 0:
            return []
        k = min(k, len(rows))
        part = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
        part = part[np.argsort(-scores[part], kind="stable")]
        best = scores[part]
        finite = np.isfinite(best)
        ids = self._ids
        return [(ids[r], s) for r, s in zip(rows[part][finite].tolist(), best[finite].tolist())]


__all__ = ["EXACT_FILTER_ROWS", "SKETCH_MIN_ROWS", "VectorFilter", "VectorStore"]
