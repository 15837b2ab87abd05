"""In-process ingest throughput of the memory engine with the ``hash`` embedder.

Usage: .venv/bin/python bench/bench_ingest.py [--runs 3] [--chunks 50000] [--batch 5000] [--single 500]

Each run opens a fresh engine (RocksDB + Tantivy in a temporary directory)
and writes ``--chunks`` chunks into one stream in batches of ``--batch``
(one durable storage batch and one index commit per batch). Baselines in
the same run, on the same texts: the embedder alone, and the embedder plus
one raw storage batch per engine batch (content, routing and embedding rows
through the same storage backend), and that plus the index backend's upsert
and commit of the same documents. The engine adds vectors, intents,
validation and bookkeeping to that, but hands its freshly minted ids to the
index without the replace-by-id of ``upsert`` (capability ``add_new``) and
lets the index work while it writes storage, so it can beat this "floor".
Wall and CPU (process, all threads) times are given; on a shared machine the
CPU figure is the steadier one.

``--single N`` also times N one-chunk writes (``add_chunk``, as an agent storing one memory
per request does) with the group commit (the default ``index.commit_delay_ms``) against an
index commit per write (``commit_delay_ms = 0``), in the same run; each ends with every write
committed, so both do the same work.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from loom_core.config import LoomConfig
from loom_core.contracts import BackendContext
from loom_core.contracts.index import IndexDocument
from loom_core.contracts.storage import WriteBatch
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput
from loom_core.memory.rows import KEYSPACES
from loom_core.plugins.host import PluginHost

VOCAB = [f"w{i}" for i in range(8000)] + (
    "memory meeting budget deploy server index query vector project release user call report ticket"
).split()


def texts(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(VOCAB))]
    return [" ".join(rng.choices(VOCAB, weights, k=rng.randint(12, 40))) for _ in range(n)]


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_engine(corpus: list[str], batch: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = MemoryEngine.open(LoomConfig(), PluginHost(environ={}), Path(tmp))
        items = [ChunkInput(t) for t in corpus]

        def ingest() -> None:
            for start in range(0, len(items), batch):
                engine.add_chunks("bench", items[start : start + batch])
            engine.commit_index()  # count the last commit, which the group commit may still hold

        result = timed(ingest)
        engine.close()
        return result


def run_single(corpus: list[str], delay_ms: int) -> tuple[float, float]:
    config = LoomConfig.model_validate({"index": {"commit_delay_ms": delay_ms}})
    with tempfile.TemporaryDirectory() as tmp:
        engine = MemoryEngine.open(config, PluginHost(environ={}), Path(tmp))
        items = [ChunkInput(t) for t in corpus]

        def ingest() -> None:
            for item in items:
                engine.add_chunk("bench", item)
            engine.commit_index()

        result = timed(ingest)
        engine.close()
        return result


def run_baseline(corpus: list[str], batch: int, with_storage: bool, with_index: bool = False) -> tuple[float, float]:
    host = PluginHost(environ={})
    llm = host.create("llm", "hash", BackendContext(options={"dimension": 384}))
    with tempfile.TemporaryDirectory() as tmp:
        storage = index = None
        if with_storage:
            storage = host.create("storage", "rocksdb", BackendContext(data_dir=Path(tmp) / "s", keyspaces=KEYSPACES))
        if with_index:
            index = host.create("index", "tantivy", BackendContext(data_dir=Path(tmp) / "i"))

        def ingest() -> None:
            for start in range(0, len(corpus), batch):
                part = corpus[start : start + batch]
                vectors = np.asarray(llm.embed(part), dtype="<f4")
                if storage is None:
                    continue
                wb = WriteBatch()
                for offset, (text, vector) in enumerate(zip(part, vectors)):
                    key = f"{start + offset:026d}"
                    wb.put("chunks", f"chunk:L0:{key}".encode(), json.dumps({"content": text}).encode())
                    wb.put("routing", key.encode(), json.dumps({"id": key, "stream": "bench"}).encode())
                    wb.put("embeddings", key.encode(), vector.tobytes())
                storage.write(wb, durable=True)
                if index is not None:
                    docs = [
                        IndexDocument(id=f"{start + o:026d}", stream="bench", level=0, text=t, created_at=0)
                        for o, t in enumerate(part)
                    ]
                    index.upsert(docs)
                    index.commit()

        result = timed(ingest)
        if index is not None:
            index.close()
        if storage is not None:
            storage.close()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--single", type=int, default=0, help="also time this many one-chunk writes")
    args = parser.parse_args()
    corpus = texts(args.chunks)
    rows: dict[str, list[tuple[float, float]]] = {
        "embed only": [],
        "embed + raw storage batch": [],
        "embed + raw storage + index upsert/commit": [],
        "engine": [],
    }
    for _ in range(args.runs):
        rows["embed only"].append(run_baseline(corpus, args.batch, with_storage=False))
        rows["embed + raw storage batch"].append(run_baseline(corpus, args.batch, with_storage=True))
        rows["embed + raw storage + index upsert/commit"].append(
            run_baseline(corpus, args.batch, with_storage=True, with_index=True)
        )
        rows["engine"].append(run_engine(corpus, args.batch))
    print(f"{args.chunks} chunks, batches of {args.batch}, median of {args.runs} runs")
    print_table(rows, args.chunks, "chunks")
    if args.single:
        default_delay = LoomConfig().index.commit_delay_ms
        single: dict[str, list[tuple[float, float]]] = {"commit per write (delay 0)": [], "group commit": []}
        for _ in range(args.runs):
            single["commit per write (delay 0)"].append(run_single(corpus[: args.single], 0))
            single["group commit"].append(run_single(corpus[: args.single], default_delay))
        print(f"\n{args.single} one-chunk writes, median of {args.runs} runs (group commit: {default_delay} ms)")
        print_table(single, args.single, "writes")


def print_table(rows: dict[str, list[tuple[float, float]]], count: int, unit: str) -> None:
    """One Markdown row per variant: median wall and CPU seconds and the rates they give."""
    print(f"| path | wall s | {unit}/s (wall) | CPU s | {unit}/s (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, samples in rows.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"| {name} | {wall:.2f} | {count / wall:,.0f} | {cpu:.2f} | {count / cpu:,.0f} |")


if __name__ == "__main__":
    main()
