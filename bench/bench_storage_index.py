"""Throughput and latency of the ``rocksdb`` storage and ``tantivy`` index backends.

Usage: .venv/bin/python bench/bench_storage_index.py [--docs 100000] [--runs 3]

Storage: single puts, 1000-op batches (plain and durable), point gets and a
prefix scan, against a plain ``dict`` doing the same work (baseline).
Index: ingest with a commit per 1000-document batch and with one commit at
the end, commit cost, and search latency p50/p95 at ``--docs`` documents
(plain, and with stream + time + superseded filters), against a naive
substring scan over the same texts (baseline).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loom_core.contracts import BackendContext
from loom_core.contracts.index import Index, IndexDocument, IndexQuery
from loom_core.contracts.storage import WriteBatch
from loom_core.plugins.host import PluginHost

VOCAB = [f"w{i}" for i in range(5000)]
WEIGHTS = [1 / (i + 1) for i in range(len(VOCAB))]


def text(rng: random.Random, words: int = 30) -> str:
    return " ".join(rng.choices(VOCAB, WEIGHTS, k=words))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def storage_run(n: int, tmp: Path, rows: dict[str, list[float]]) -> None:
    """One storage run in ``tmp``; appends a sample to each row."""
    values = [random.randbytes(200) for _ in range(n)]
    keys = [b"chunk:L0:%012d" % i for i in range(n)]
    store = PluginHost(environ={}).create(
        "storage", "rocksdb", BackendContext(data_dir=tmp / "db", keyspaces=("chunks", "routing"))
    )
    baseline: dict[bytes, bytes] = {}

    def dict_puts() -> None:
        for k, v in zip(keys, values):
            baseline[k] = v

    def puts() -> None:
        for k, v in zip(keys, values):
            store.put("chunks", k, v)

    def batches(durable: bool) -> None:
        for start in range(0, n, 1000):
            batch = WriteBatch()
            for k, v in zip(keys[start : start + 1000], values[start : start + 1000]):
                batch.put("chunks", k, v)
                batch.put("routing", k, b"r")
            store.write(batch, durable=durable)

    sample = random.sample(keys, min(n, 20000))
    rows.setdefault("dict put (baseline)", []).append(n / timed(dict_puts))
    rows.setdefault("put", []).append(n / timed(puts))
    rows.setdefault("batch of 1000 x 2 keyspaces (ops/s)", []).append(2 * n / timed(lambda: batches(False)))
    rows.setdefault("durable batch of 1000 x 2 (ops/s)", []).append(2 * n / timed(lambda: batches(True)))
    rows.setdefault("dict get (baseline)", []).append(len(sample) / timed(lambda: [baseline.get(k) for k in sample]))
    rows.setdefault("get", []).append(len(sample) / timed(lambda: [store.get("chunks", k) for k in sample]))
    rows.setdefault("prefix scan (keys/s)", []).append(
        n / timed(lambda: sum(1 for _ in store.iterate("chunks", prefix=b"chunk:L0:")))
    )
    store.close()


def bench_storage(n: int, runs: int) -> None:
    rows: dict[str, list[float]] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            storage_run(n, Path(tmp), rows)
    base_put = statistics.median(rows["dict put (baseline)"])
    print(f"storage, {n} keys, 200-byte values, median of {runs}")
    for name, samples in rows.items():
        med = statistics.median(samples)
        print(f"  {name:<40} {med:>12,.0f} /s   {med / base_put:>6.3f} x dict put")


def latencies(index: Index, make: Callable[[str], IndexQuery], queries: list[str]) -> list[float]:
    for q in queries[:20]:
        index.search(make(q))  # warm up
    out = []
    for q in queries:
        query = make(q)
        start = time.perf_counter()
        index.search(query)
        out.append(1000 * (time.perf_counter() - start))
    return out


def index_run(docs: list[IndexDocument], queries: list[str], tmp: Path, rows: dict[str, list[float]]) -> None:
    """One index run in ``tmp``; appends a sample to each row."""
    host = PluginHost(environ={})
    n = len(docs)
    index: Index = host.create("index", "tantivy", BackendContext(data_dir=tmp / "per-batch"))
    commits: list[float] = []
    start = time.perf_counter()
    for first in range(0, n, 1000):
        index.upsert(docs[first : first + 1000])
        commits.append(timed(index.commit))
    rows.setdefault("ingest, commit per 1000 (docs/s)", []).append(n / (time.perf_counter() - start))
    rows.setdefault("commit of 1000 docs, median ms", []).append(1000 * statistics.median(commits))
    index.close()
    once: Index = host.create("index", "tantivy", BackendContext(data_dir=tmp / "once"))
    start = time.perf_counter()
    once.upsert(docs)
    once.commit()
    rows.setdefault("ingest, one commit (docs/s)", []).append(n / (time.perf_counter() - start))
    once.close()
    index = host.create("index", "tantivy", BackendContext(data_dir=tmp / "per-batch"))
    since = docs[0].created_at + n // 4
    for label, make in {
        "search k=10": lambda q: IndexQuery(q, limit=10),
        "search k=10, stream+time filters": lambda q: IndexQuery(q, streams=["s3"], since=since, limit=10),
    }.items():
        lat = latencies(index, make, queries)
        rows.setdefault(f"{label} p50 ms", []).append(statistics.median(lat))
        rows.setdefault(f"{label} p95 ms", []).append(statistics.quantiles(lat, n=20)[-1])
    index.close()


def naive_scan(docs: list[IndexDocument], queries: list[str]) -> float:
    """Median ms of a substring scan for one query word over every text (the baseline)."""
    texts = [d.text for d in docs]
    lat = []
    for q in queries[:20]:
        word = q.split()[0] + " "
        start = time.perf_counter()
        _ = [t for t in texts if word in t][:10]
        lat.append(1000 * (time.perf_counter() - start))
    return statistics.median(lat)


def bench_index(n: int, runs: int) -> None:
    rng = random.Random(7)
    docs = [
        IndexDocument(f"c{i:08d}", f"s{i % 10}", i % 3, text(rng), 1_700_000_000_000 + i, superseded=(i % 20 == 0))
        for i in range(n)
    ]
    queries = [" ".join(rng.choices(VOCAB[20:2000], k=3)) for _ in range(200)]
    rows: dict[str, list[float]] = {"naive substring scan p50 ms (baseline)": [naive_scan(docs, queries)]}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            index_run(docs, queries, Path(tmp), rows)
    print(f"index, {n} docs of 30 words (Zipf over 5000 words), median of {runs}")
    for name, samples in rows.items():
        print(f"  {name:<48} {statistics.median(samples):>12,.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bench_storage(args.docs, args.runs)
    bench_index(args.docs, args.runs)


if __name__ == "__main__":
    main()
