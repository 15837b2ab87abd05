"""Ingest and read throughput with and without encryption at rest, in the same run.

Usage: .venv/bin/python bench/bench_encryption.py [--level engine|storage|both] [--chunks 20000] [--runs 3]

* ``engine``: the memory engine (real RocksDB + Tantivy + hash embedder) opened
  plain and with a master key; ingest = ``add_chunks`` in batches of 500,
  read = ``get_chunk`` of every id.
* ``storage``: the storage backend alone with the row codec: ingest = sealed
  write batches, read = ``get`` + ``open`` of every row. The worst case for the
  ratio: nothing else happens per row.

Plain and encrypted runs alternate so machine noise hits both; medians are
reported with the encrypted/plain time ratio (goal: <= 1.10 for both).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEY_ENV = "LOOMEM_AT_REST_MASTER_KEY"
WORDS = ("memory river lantern orbit quartz meadow signal copper harbor violet "
         "thunder glacier pixel canyon ember saffron").split()


def content(n: int) -> str:
    rnd = [WORDS[(n * 7 + i * 13) % len(WORDS)] for i in range(60)]
    return f"note {n}: " + " ".join(rnd)


def environ(encrypted: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOMEM_AT_REST")}
    if encrypted:
        env[KEY_ENV] = base64.b64encode(os.urandom(32)).decode()
    return env


def run_storage(encrypted: bool, chunks: int, root: Path) -> tuple[float, float]:
    from loom_core.config import LoomConfig
    from loom_core.contracts import BackendContext
    from loom_core.contracts.storage import WriteBatch
    from loom_core.crypto import build_row_codec
    from loom_core.plugins.host import PluginHost

    env = environ(encrypted)
    host = PluginHost(environ=env)
    storage = host.create("storage", "rocksdb", BackendContext(data_dir=root, keyspaces=("chunks", "keys", "meta")))
    try:
        codec = build_row_codec(LoomConfig(), host, storage, env)
        rows = [(f"chunk:L0:{n:08d}".encode(), json.dumps({"content": content(n), "metadata": {"n": n}}).encode())
                for n in range(chunks)]
        start = time.perf_counter()
        for i in range(0, chunks, 500):
            batch = WriteBatch()
            for key, value in rows[i : i + 500]:
                batch.put("chunks", key, codec.seal("bench", key, value))
            storage.write(batch)
        ingest = time.perf_counter() - start
        start = time.perf_counter()
        for key, value in rows:
            assert codec.open("bench", key, storage.get("chunks", key)) == value
        read = time.perf_counter() - start
    finally:
        storage.close()
    return ingest, read


def run_engine(encrypted: bool, chunks: int, root: Path) -> tuple[float, float]:
    from loom_core.config import LoomConfig
    from loom_core.crypto.engine_glue import open_engine
    from loom_core.memory.models import ChunkInput
    from loom_core.plugins.host import PluginHost

    env = environ(encrypted)
    config = LoomConfig()
    engine = open_engine(config, PluginHost(environ=env), root, env)
    try:
        items = [ChunkInput(content=content(n), metadata={"n": n}) for n in range(chunks)]
        ids: list[str] = []
        start = time.perf_counter()
        for i in range(0, chunks, 500):
            ids.extend(c.id for c in engine.add_chunks("bench", items[i : i + 500]))
        ingest = time.perf_counter() - start
        start = time.perf_counter()
        for chunk_id in ids:
            engine.get_chunk(chunk_id)
        read = time.perf_counter() - start
    finally:
        engine.close()
    return ingest, read


def measure(level: str, runner: Callable[[bool, int, Path], tuple[float, float]], chunks: int,
            runs: int) -> dict[str, Any]:
    samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="loom-bench-enc-") as tmp:
        runner(False, min(chunks, 1000), Path(tmp) / "warm")  # imports, page cache
        for r in range(runs):
            for encrypted in (False, True) if r % 2 == 0 else (True, False):
                samples[encrypted].append(runner(encrypted, chunks, Path(tmp) / f"{level}-{r}-{encrypted}"))
    out: dict[str, Any] = {"level": level, "chunks": chunks, "runs": runs}
    for phase, idx in (("ingest", 0), ("read", 1)):
        plain = statistics.median(s[idx] for s in samples[False])
        enc = statistics.median(s[idx] for s in samples[True])
        out[phase] = {
            "plain_s": round(plain, 3),
            "encrypted_s": round(enc, 3),
            "plain_per_s": round(chunks / plain),
            "encrypted_per_s": round(chunks / enc),
            "ratio": round(enc / plain, 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", choices=["engine", "storage", "both"], default="both")
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    levels = ["engine", "storage"] if args.level == "both" else [args.level]
    runners = {"engine": run_engine, "storage": run_storage}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.chunks} chunks, {args.runs} runs")
    print(f"{'level':<8} {'phase':<7} {'plain/s':>10} {'encrypted/s':>12} {'enc/plain time':>15}")
    for level in levels:
        result = measure(level, runners[level], args.chunks, args.runs)
        for phase in ("ingest", "read"):
            row = result[phase]
            print(f"{level:<8} {phase:<7} {row['plain_per_s']:>10} {row['encrypted_per_s']:>12} {row['ratio']:>15.3f}")


if __name__ == "__main__":
    main()
