"""Ingest and read throughput with and without encryption at rest, in the same run.

Usage: .venv/bin/python bench/bench_encryption.py [--level engine|storage|both] [--chunks 20000] [--runs 3]
       [--read-passes 3]

* ``engine``: the memory engine (real RocksDB + Tantivy + hash embedder) opened
  plain and with a master key; ingest = ``add_chunks`` in batches of 500,
  read = ``get_chunk`` of every id, ``--read-passes`` times (point reads: the
  most sensitive to a per-row cost); two more read phases show what other reads
  pay: search = ``SEARCHES`` hybrid searches (k=10, each opens its 10 result
  rows), list = every chunk paged through ``list_chunks`` 100 at a time.
* ``storage``: the storage backend alone with the row codec: ingest = sealed
  write batches, read = ``get`` + ``open`` of every row. The worst case for the
  ratio: nothing else happens per row.

Both modes are open side by side and fed the same batches alternately (which
mode goes first flips every batch), so load from other processes hits both
equally; wall and CPU time are summed per mode, and the median over runs of the
encrypted/plain time ratio is reported (goal: <= 1.10 for both).

CPU is measured two ways. ``cpu`` is the process's CPU time, which includes
background threads (RocksDB flushes and compactions, Tantivy merges) that
ingest leaves running: whichever mode happens to be timed when they run is
charged for them. ``thread`` is the calling thread's CPU time only: reads do
all their work on the calling thread, so for reads it is the like-for-like
figure (for ingest it misses the index writer's threads, so use ``cpu``).
Between ingest and reads the process is left to go quiet (background CPU
below 2 % over 200 ms, at most 15 s) so reads are not charged for ingest.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

KEY_ENV = "LOOMEM_AT_REST_MASTER_KEY"
BATCH = 500
SEARCHES = 400  # engine level: hybrid searches per run, alternated 20 at a time
PAGE = 100  # engine level: list_chunks page size
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


def open_storage_pair(root: Path) -> dict[bool, tuple[Any, Any]]:
    from loom_core.config import LoomConfig
    from loom_core.contracts import BackendContext
    from loom_core.crypto import build_row_codec
    from loom_core.plugins.host import PluginHost

    pair = {}
    for encrypted in (False, True):
        env = environ(encrypted)
        host = PluginHost(environ=env)
        ctx = BackendContext(data_dir=root / str(encrypted), keyspaces=("chunks", "keys", "meta"))
        storage = host.create("storage", "rocksdb", ctx)
        pair[encrypted] = (storage, build_row_codec(LoomConfig(), host, storage, env))
    return pair


def storage_phases(pair: dict[bool, tuple[Any, Any]], chunks: int) -> Iterator[tuple[bool, Callable[[], None]]]:
    """(encrypted, work) steps: ingest batches then read batches, both modes interleaved."""
    from loom_core.contracts.storage import WriteBatch

    rows = [(f"chunk:L0:{n:08d}".encode(), json.dumps({"content": content(n), "metadata": {"n": n}}).encode())
            for n in range(chunks)]

    def ingest(encrypted: bool, part: list[tuple[bytes, bytes]]) -> Callable[[], None]:
        storage, codec = pair[encrypted]

        def work() -> None:
            batch = WriteBatch()
            for key, value in part:
                batch.put("chunks", key, codec.seal("bench", key, value))
            storage.write(batch)
        return work

    def read(encrypted: bool, part: list[tuple[bytes, bytes]]) -> Callable[[], None]:
        storage, codec = pair[encrypted]

        def work() -> None:
            for key, _ in part:
                codec.open("bench", key, storage.get("chunks", key))
        return work

    for phase in (ingest, read):
        for i in range(0, chunks, BATCH):
            part = rows[i : i + BATCH]
            order = (False, True) if (i // BATCH) % 2 == 0 else (True, False)
            for encrypted in order:
                yield encrypted, phase(encrypted, part)
        yield False, PHASE_END


def open_engine_pair(root: Path) -> dict[bool, Any]:
    from loom_core.config import LoomConfig
    from loom_core.crypto.engine_glue import open_engine
    from loom_core.plugins.host import PluginHost

    # each batch commits its own index changes inside its own timed window: a group commit would
    # land on a background thread while the other engine is being timed
    config = LoomConfig.model_validate({"index": {"commit_delay_ms": 0}})
    pair = {}
    for encrypted in (False, True):
        env = environ(encrypted)
        pair[encrypted] = open_engine(config, PluginHost(environ=env), root / str(encrypted), env)
    return pair


def engine_phases(pair: dict[bool, Any], chunks: int, passes: int) -> Iterator[tuple[bool, Callable[[], None]]]:
    from loom_core.memory.models import ChunkInput

    items = [ChunkInput(content=content(n), metadata={"n": n}) for n in range(chunks)]
    ids: dict[bool, list[str]] = {False: [], True: []}

    def ingest(encrypted: bool, part: list[Any]) -> Callable[[], None]:
        def work() -> None:
            ids[encrypted].extend(c.id for c in pair[encrypted].add_chunks("bench", part))
        return work

    for i in range(0, chunks, BATCH):
        order = (False, True) if (i // BATCH) % 2 == 0 else (True, False)
        for encrypted in order:
            yield encrypted, ingest(encrypted, items[i : i + BATCH])
    yield False, PHASE_END

    def read(encrypted: bool, lo: int) -> Callable[[], None]:
        def work() -> None:
            engine = pair[encrypted]
            for chunk_id in ids[encrypted][lo : lo + BATCH]:
                engine.get_chunk(chunk_id)
        return work

    for n, i in enumerate(i for _ in range(passes) for i in range(0, chunks, BATCH)):
        order = (False, True) if n % 2 == 0 else (True, False)
        for encrypted in order:
            yield encrypted, read(encrypted, i)
    yield False, PHASE_END

    from loom_core.memory.models import SearchRequest

    queries = [" ".join(WORDS[(n * 5 + j * 3) % len(WORDS)] for j in range(3)) for n in range(SEARCHES)]

    def search(encrypted: bool, part: list[str]) -> Callable[[], None]:
        def work() -> None:
            engine = pair[encrypted]
            for q in part:
                engine.search(SearchRequest(query=q, stream="bench", k=10, mode="hybrid"))
        return work

    for n, i in enumerate(range(0, SEARCHES, 20)):
        order = (False, True) if n % 2 == 0 else (True, False)
        for encrypted in order:
            yield encrypted, search(encrypted, queries[i : i + 20])
    yield False, PHASE_END

    def page(encrypted: bool, start: int) -> Callable[[], None]:
        def work() -> None:
            cursor = ids[encrypted][start - 1] if start else None
            listed = pair[encrypted].list_chunks("bench", cursor=cursor, limit=PAGE).items
            assert len(listed) == min(PAGE, chunks - start)
        return work

    for n, i in enumerate(range(0, chunks, PAGE)):
        order = (False, True) if n % 2 == 0 else (True, False)
        for encrypted in order:
            yield encrypted, page(encrypted, i)
    yield False, PHASE_END


def PHASE_END() -> None:  # a sentinel step
    return None


def quiesce(window: float = 0.2, idle_share: float = 0.02, limit: float = 15.0) -> None:
    """Wait until the process's background threads are idle (flushes, compactions, merges)."""
    gc.collect()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        cpu = time.process_time()
        time.sleep(window)
        if time.process_time() - cpu < window * idle_share:
            return


def one_run(level: str, chunks: int, root: Path, passes: int = 1) -> dict[str, dict[bool, list[float]]]:
    """Wall, process-CPU and thread-CPU seconds per phase and mode for one paired run."""
    if level == "engine":
        pair: Any = open_engine_pair(root)
        steps = engine_phases(pair, chunks, passes)
        closers = [e.close for e in pair.values()]
    else:
        pair = open_storage_pair(root)
        steps = storage_phases(pair, chunks)
        closers = [s.close for s, _ in pair.values()]
    phases = ["ingest", "read", "search", "list"] if level == "engine" else ["ingest", "read"]
    clocks = ("wall", "cpu", "thread")
    totals = {f"{p}_{clock}": {False: [0.0], True: [0.0]} for p in phases for clock in clocks}
    current = 0
    quiesce()
    try:
        for encrypted, work in steps:
            if work is PHASE_END:
                current += 1
                quiesce()
                continue
            wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
            work()
            name = phases[current]
            totals[f"{name}_thread"][encrypted][0] += time.thread_time() - thread
            totals[f"{name}_cpu"][encrypted][0] += time.process_time() - cpu
            totals[f"{name}_wall"][encrypted][0] += time.perf_counter() - wall
    finally:
        for close in closers:
            close()
    return totals


def measure(level: str, chunks: int, runs: int, passes: int) -> dict[str, Any]:
    ratios: dict[str, list[float]] = {}
    rates: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="loom-bench-enc-") as tmp:
        one_run(level, min(chunks, 1000), Path(tmp) / "warm")  # imports, page cache
        for r in range(runs):
            totals = one_run(level, chunks, Path(tmp) / f"run-{r}", passes)
            for name, by_mode in totals.items():
                plain, enc = by_mode[False][0], by_mode[True][0]
                done = chunks * (passes if name.startswith("read") and level == "engine" else 1)
                if name.startswith("search"):
                    done = SEARCHES
                ratios.setdefault(name, []).append(enc / plain)
                rates.setdefault(name, []).append((done / plain, done / enc))
    out: dict[str, Any] = {}
    for name, values in ratios.items():
        out[name] = {
            "ratio_median": round(statistics.median(values), 3),
            "ratios": [round(v, 3) for v in values],
            "plain_per_s": round(statistics.median(p for p, _ in rates[name])),
            "encrypted_per_s": round(statistics.median(e for _, e in rates[name])),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", choices=["engine", "storage", "both"], default="both")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--read-passes", type=int, default=3, help="engine level: reads of every id per run")
    args = parser.parse_args()
    levels = ["engine", "storage"] if args.level == "both" else [args.level]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.chunks} chunks, {args.runs} runs, "
          f"{args.read_passes} read passes, load average {os.getloadavg()[0]:.1f}")
    print(f"{'level':<8} {'phase/clock':<12} {'plain/s':>9} {'encrypted/s':>12} {'enc/plain (median)':>19}  runs")
    for level in levels:
        result = measure(level, args.chunks, args.runs, args.read_passes)
        for name, row in result.items():
            print(f"{level:<8} {name:<12} {row['plain_per_s']:>9} {row['encrypted_per_s']:>12} "
                  f"{row['ratio_median']:>19.3f}  {row['ratios']}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
