"""HTTP benchmark: batch ingest throughput and hybrid search latency against a real `loom serve`.

Starts the server as a subprocess on 127.0.0.1 (RocksDB, Tantivy, 384-dim hash embeddings, a key
configured), ingests ``--chunks`` chunks into one stream through ``POST .../chunks/batch``, then times
``POST /v1/search`` (hybrid, k=10, one stream) from one persistent httpx client. The baseline, measured
in the same run, is ``GET /health`` on the same connection: the HTTP round-trip floor.

    .venv/bin/python bench/bench_http.py --chunks 100000 --runs 5

Prints a Markdown table; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TOKEN = "bench-" + "ab" * 32
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu apple banana cherry damson elder "
    "fig grape hazel iris jasmine kale lemon mango nectar olive peach quince radish sage thyme umber "
    "vanilla walnut yarrow zest meeting budget travel invoice project deadline review customer server "
    "database backup release sprint design launch report contract schedule planning hiring onboarding"
).split()


def sentence(rng: random.Random, n: int) -> str:
    return f"note {n}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path, port: int, log_level: str) -> subprocess.Popen[bytes]:
    config = data_dir.parent / "bench.toml"
    config.write_text(f'[server]\nlog_level = "{log_level}"\n', encoding="utf-8")
    env = {**os.environ, "LOOMEM_AUTH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--config", str(config), "--data-dir",
         str(data_dir), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ingest(client: httpx.Client, total: int, batch: int, slices: int, rng: random.Random) -> list[float]:
    """Chunks/s for each of ``slices`` equal parts of the ingest."""
    per_slice = total // slices
    rates: list[float] = []
    n = 0
    for _ in range(slices):
        start = time.perf_counter()
        done = 0
        while done < per_slice:
            size = min(batch, per_slice - done)
            body = {"chunks": [{"content": sentence(rng, n + i)} for i in range(size)]}
            response = client.post("/v1/streams/bench/chunks/batch", json=body)
            response.raise_for_status()
            done += size
            n += size
        rates.append(per_slice / (time.perf_counter() - start))
    return rates


def time_requests(client: httpx.Client, count: int, make: object) -> list[float]:
    assert callable(make)
    times: list[float] = []
    for _ in range(count):
        method, path, body = make()
        start = time.perf_counter()
        response = client.request(method, path, json=body)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=400, help="search requests per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-level", default="info", help="server.log_level (info logs every request)")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="loom-bench-http-") as tmp:
        port = free_port()
        proc = start_server(Path(tmp) / "data", port, args.log_level)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                              headers={"Authorization": f"Bearer {TOKEN}"}) as client:
                rates = ingest(client, args.chunks, args.batch, args.runs, rng)

                def search() -> tuple[str, str, dict[str, object]]:
                    query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))
                    return "POST", "/v1/search", {"query": query, "stream": "bench", "k": 10, "mode": "hybrid"}

                def health() -> tuple[str, str, None]:
                    return "GET", "/health", None

                time_requests(client, 50, search)  # warm-up: caches, connection, JIT-free paths
                rows = []
                for _ in range(args.runs):
                    base = time_requests(client, args.queries, health)
                    hyb = time_requests(client, args.queries, search)
                    rows.append((statistics.median(base), percentile(base, 0.95),
                                 statistics.median(hyb), percentile(hyb, 0.95)))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        engine_rows, engine_ingest = in_process(Path(tmp) / "data", args.runs, args.queries, args.batch, rng)

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()}; chunks={args.chunks} batch={args.batch} queries/run={args.queries} "
          f"runs={args.runs} log_level={args.log_level}")
    print(f"ingest chunks/s per slice: {[round(r) for r in rates]}; median {statistics.median(rates):,.0f}")
    print("| run | /health p50 ms | /health p95 ms | hybrid search p50 ms | hybrid search p95 ms | p50 ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i, (b50, b95, h50, h95) in enumerate(rows, 1):
        print(f"| {i} | {b50:.2f} | {b95:.2f} | {h50:.2f} | {h95:.2f} | {h50 / b50:.1f} |")
    med = [statistics.median(col) for col in zip(*rows)]
    print(f"| median | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.2f} | {med[2] / med[0]:.1f} |")
    print(f"in-process add_chunks on the same data (baseline, {args.batch}-chunk batches): "
          f"{statistics.median(engine_ingest):,.0f} chunks/s; HTTP reaches "
          f"{statistics.median(rates) / statistics.median(engine_ingest):.2f} of it")
    e50 = statistics.median(r[0] for r in engine_rows)
    e95 = statistics.median(r[1] for r in engine_rows)
    print(f"in-process engine.search on the same data (median of runs): p50 {e50:.2f} ms, p95 {e95:.2f} ms; "
          f"HTTP adds {med[2] - e50:.2f} ms at p50")


def in_process(data_dir: Path, runs: int, queries: int, batch: int,
               rng: random.Random) -> tuple[list[tuple[float, float]], list[float]]:
    """The same searches and batch writes straight on the engine, after the server stopped."""
    from loom_core.config import LoomConfig
    from loom_core.memory.models import ChunkInput, SearchRequest
    from loom_core.plugins.host import PluginHost
    from loom_core.server.runtime import open_engine

    engine = open_engine(LoomConfig(), PluginHost(environ={}), data_dir, {})
    try:
        def one() -> float:
            query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))
            start = time.perf_counter()
            engine.search(SearchRequest(query=query, stream="bench", k=10, mode="hybrid"))
            return (time.perf_counter() - start) * 1000

        for _ in range(50):
            one()
        rows = []
        for _ in range(runs):
            times = [one() for _ in range(queries)]
            rows.append((statistics.median(times), percentile(times, 0.95)))
        ingest_rates = []
        for r in range(runs):
            items = [ChunkInput(content=sentence(rng, 10**9 + r * batch + i)) for i in range(batch)]
            start = time.perf_counter()
            engine.add_chunks("baseline", items)
            ingest_rates.append(batch / (time.perf_counter() - start))
        return rows, ingest_rates
    finally:
        engine.close()


if __name__ == "__main__":
    main()
