"""In-process search latency and vector recall of the memory engine.

Usage: .venv/bin/python bench/bench_search.py [--sizes 10000 100000] [--queries 200] [--runs 3]

For each size, one stream holds that many chunks of Zipf-distributed words
embedded by the ``hash`` backend at 384 dimensions. Measured in the same
run, per size:

* ``engine.search`` latency p50/p95 in ``hybrid``, ``bm25`` and ``vector``
  modes (k=10), median over ``--runs`` passes of the query set;
* the baseline: a plain numpy scan (``X @ q`` over all vectors, then
  ``argpartition`` for the top 10) on the same float32 matrix;
* recall@10 of the engine's vector search against exact brute force (the
  same scan), both strict (same ids) and tie-aware (a hit counts when its
  exact cosine is at least the 10th best; the hash embedder gives many
  equal scores).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from loom_core.config import LoomConfig
from loom_core.memory.engine import MemoryEngine, now_ms
from loom_core.memory.models import ChunkInput, SearchRequest
from loom_core.memory.vectors import VectorFilter
from loom_core.plugins.host import PluginHost

VOCAB = [f"w{i}" for i in range(8000)]


def make_texts(n: int, lo: int, hi: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.9 for i in range(len(VOCAB))]
    return [" ".join(rng.choices(VOCAB, weights, k=rng.randint(lo, hi))) for _ in range(n)]


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) * 1000


def bench_size(size: int, queries: list[str], runs: int) -> dict[str, object]:
    tmp = tempfile.TemporaryDirectory()
    engine = MemoryEngine.open(LoomConfig(), PluginHost(environ={}), Path(tmp.name))
    corpus = make_texts(size, 12, 40, seed=size)
    t0 = time.perf_counter()
    for start in range(0, size, 5000):
        engine.add_chunks("bench", [ChunkInput(t) for t in corpus[start : start + 5000]])
    ingest_s = time.perf_counter() - t0
    store = engine._vectors["bench"]
    matrix = store._vecs[: store._n].copy()
    qvecs = np.asarray(engine.llm.embed(queries), dtype=np.float32)
    engine.search(SearchRequest(queries[0], stream="bench", mode="vector"))  # first search sketches the rows

    out: dict[str, object] = {"size": size, "ingest_s": ingest_s}
    for mode in ("hybrid", "bm25", "vector"):
        p50s, p95s = [], []
        for _ in range(runs):
            lat = []
            for text in queries:
                t = time.perf_counter()
                engine.search(SearchRequest(text, stream="bench", k=10, mode=mode))  # type: ignore[arg-type]
                lat.append(time.perf_counter() - t)
            p50s.append(pct(lat, 50))
            p95s.append(pct(lat, 95))
        out[mode] = (statistics.median(p50s), statistics.median(p95s))
    p50s, p95s = [], []
    for _ in range(runs):
        lat = []
        for q in qvecs:
            t = time.perf_counter()
            scores = matrix @ q
            top = np.argpartition(-scores, 10)[:10]
            top[np.argsort(-scores[top])]
            lat.append(time.perf_counter() - t)
        p50s.append(pct(lat, 50))
        p95s.append(pct(lat, 95))
    out["numpy scan"] = (statistics.median(p50s), statistics.median(p95s))

    strict, tie_aware = [], []
    flt = VectorFilter(now=now_ms())
    for q in qvecs:
        exact = store.search(q, 10, flt, exact=True)
        if len(exact) < 10:
            continue
        approx = store.search(q, 10, flt)
        strict.append(len({i for i, _ in approx} & {i for i, _ in exact}) / 10)
        tenth = exact[-1][1] - 1e-6
        tie_aware.append(sum(1 for _, s in approx if s >= tenth) / 10)
    out["recall_strict"] = float(np.mean(strict))
    out["recall_tie_aware"] = float(np.mean(tie_aware))
    engine.close()
    tmp.cleanup()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    queries = make_texts(args.queries, 2, 6, seed=99)
    print(f"{args.queries} queries of 2-6 words, k=10, 384 dims, median of {args.runs} runs")
    print("| chunks | path | p50 ms | p95 ms |")
    print("| ---: | --- | ---: | ---: |")
    recalls = []
    for size in args.sizes:
        result = bench_size(size, queries, args.runs)
        for name in ("numpy scan", "vector", "bm25", "hybrid"):
            p50, p95 = result[name]  # type: ignore[misc]
            label = "plain numpy scan (baseline)" if name == "numpy scan" else f"engine `{name}`"
            print(f"| {size:,} | {label} | {p50:.2f} | {p95:.2f} |")
        strict, tie_aware, ingest = result["recall_strict"], result["recall_tie_aware"], result["ingest_s"]
        recalls.append(f"| {size:,} | {strict:.3f} | {tie_aware:.3f} | {ingest:.1f} |")
    print()
    print("| chunks | recall@10 strict | recall@10 tie-aware | ingest s |")
    print("| ---: | ---: | ---: | ---: |")
    print("\n".join(recalls))


if __name__ == "__main__":
    main()
