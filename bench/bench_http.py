"""HTTP benchmark: batch ingest throughput and hybrid search latency against a real `loom serve`.

Starts the server as a subprocess on 127.0.0.1 (RocksDB, Tantivy, 384-dim hash embeddings, a key
configured) and ingests ``--chunks`` chunks into one stream through ``POST .../chunks/batch``. The
server is then restarted on a copy of that data directory while the original is opened in this
process. Each run measures, in phases over the same queries (a phase has the machine to itself, as a
deployed server has: interleaving two 100k-chunk engines request by request makes each evict the
other's sketches from the shared CPU cache, which measured ~1.4 ms slower for both):

* ``GET /health`` through a persistent httpx client: the HTTP round-trip floor;
* ``POST /v1/search`` (hybrid, k=10, one stream) through the same client (the client library's stack);
* the same searches through ``http.client`` on one keep-alive connection (a lean client: what the
  server itself costs);
* the same queries on ``MemoryEngine.search`` in process: what HTTP adds;
* 1000-chunk batches over HTTP against ``add_chunks`` in process.

With ``--baseline-src DIR`` (a source tree of an older commit, e.g. from ``git archive``), a
second server runs that code on another copy of the data, and each run adds a phase of the same
searches against it (httpx), before or after this tree's httpx phase in alternate runs: a
before/after comparison on the same queries under the same conditions.

    .venv/bin/python bench/bench_http.py --chunks 100000 --runs 5
    git archive <commit> | tar -x -C /tmp/loom-old
    .venv/bin/python bench/bench_http.py --chunks 100000 --runs 5 --baseline-src /tmp/loom-old

Prints Markdown tables; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

#: searches per phase that are run but not timed
WARM_UP = 20
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


def source_path(src: Path) -> str:
    """PYTHONPATH that makes a server import ``loom_core`` and the plugins from ``src``."""
    plugins = sorted(str(p) for p in (src / "plugins").iterdir() if p.is_dir())
    return os.pathsep.join([str(src), *plugins])


def start_server(data_dir: Path, port: int, log_level: str, src: Path | None = None, *, extra_config: str = "",
                 environ: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``loom serve`` on ``port``, started from ``environ`` (default: this process's) plus the token."""
    config = data_dir.parent / f"bench-{port}.toml"
    config.write_text(f'[server]\nlog_level = "{log_level}"\n' + extra_config, encoding="utf-8")
    env = {**(os.environ if environ is None else environ), "LOOMEM_AUTH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    if src is not None:
        env["PYTHONPATH"] = source_path(src.resolve())
    proc = subprocess.Popen(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--config", str(config), "--data-dir",
         str(data_dir), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data_dir.parent,
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


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=400, help="searches per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-level", default="info", help="server.log_level (info logs every request)")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="source tree of older code to serve a second copy of the data, interleaved")
    args = parser.parse_args()
    rng = random.Random(7)

    from loom_core.config import LoomConfig
    from loom_core.memory.models import ChunkInput, SearchRequest
    from loom_core.plugins.host import PluginHost
    from loom_core.server.runtime import open_engine

    with tempfile.TemporaryDirectory(prefix="loom-bench-http-") as tmp:
        original, copy = Path(tmp) / "data", Path(tmp) / "copy"
        port = free_port()
        proc = start_server(original, port, args.log_level)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                              headers={"Authorization": f"Bearer {TOKEN}"}) as client:
                rates = ingest(client, args.chunks, args.batch, args.runs, rng)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        shutil.copytree(original, copy)
        proc = start_server(copy, port, args.log_level)
        base_proc: subprocess.Popen[bytes] | None = None
        base_client: httpx.Client | None = None
        if args.baseline_src is not None:
            shutil.copytree(original, Path(tmp) / "baseline")
            base_port = free_port()
            base_proc = start_server(Path(tmp) / "baseline", base_port, args.log_level, args.baseline_src)
            base_client = httpx.Client(base_url=f"http://127.0.0.1:{base_port}", timeout=120,
                                       headers={"Authorization": f"Bearer {TOKEN}"})
        engine = open_engine(LoomConfig(), PluginHost(environ={}), original, {})
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                              headers={"Authorization": f"Bearer {TOKEN}"}) as client:

                def query() -> str:
                    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))

                def over_http(q: str, via: httpx.Client = client) -> object:
                    response = via.post("/v1/search", json={"query": q, "stream": "bench", "k": 10,
                                                            "mode": "hybrid"})
                    response.raise_for_status()
                    return response

                raw = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                raw_headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

                def in_process(q: str) -> object:
                    return engine.search(SearchRequest(query=q, stream="bench", k=10, mode="hybrid"))

                def lean(q: str) -> object:
                    raw.request("POST", "/v1/search", json.dumps({"query": q, "stream": "bench", "k": 10,
                                                                   "mode": "hybrid"}), raw_headers)
                    response = raw.getresponse()
                    response.read()
                    if response.status != 200:
                        raise SystemExit(f"search failed with {response.status}")
                    return response

                def phase(call: Callable[[str], object], qs: list[str]) -> list[float]:
                    for _ in range(WARM_UP):  # caches, connections; queries of their own, not timed ones
                        call(query())
                    return [timed(lambda q=q: call(q)) for q in qs]  # type: ignore[misc]

                rows = []
                base_rows = []
                for r in range(args.runs):
                    qs = [query() for _ in range(args.queries)]
                    health = phase(lambda _q: client.get("/health").raise_for_status(), qs)
                    base_search: list[float] = []
                    if base_client is not None and r % 2:  # the baseline goes first in every other run
                        base_search = phase(lambda q, c=base_client: over_http(q, c), qs)
                    http_search = phase(over_http, qs)
                    if base_client is not None and not r % 2:
                        base_search = phase(lambda q, c=base_client: over_http(q, c), qs)
                    raw.close()  # the server drops idle keep-alive connections: reconnect in the warm-up
                    lean_search = phase(lean, qs)
                    engine_search = phase(in_process, qs)
                    rows.append((*summary(health), *summary(http_search), *summary(lean_search),
                                 *summary(engine_search)))
                    if base_search:
                        base_rows.append((*summary(base_search), *summary(http_search)))
                batch_rows = []
                for r in range(args.runs):
                    items = [{"content": sentence(rng, 10**9 + 2 * r * args.batch + i)} for i in range(args.batch)]
                    inputs = [ChunkInput(content=sentence(rng, 10**9 + (2 * r + 1) * args.batch + i))
                              for i in range(args.batch)]
                    http_ms = timed(lambda items=items: client.post(  # type: ignore[misc]
                        "/v1/streams/extra/chunks/batch", json={"chunks": items}).raise_for_status())
                    engine_ms = timed(lambda inputs=inputs: engine.add_chunks("extra", inputs))  # type: ignore[misc]
                    batch_rows.append((args.batch / http_ms * 1000, args.batch / engine_ms * 1000))
        finally:
            engine.close()
            proc.terminate()
            proc.wait(timeout=60)
            if base_proc is not None and base_client is not None:
                base_client.close()
                base_proc.terminate()
                base_proc.wait(timeout=60)

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()}; chunks={args.chunks} batch={args.batch} searches/run={args.queries} "
          f"runs={args.runs} log_level={args.log_level}")
    print(f"HTTP ingest into an empty stream, chunks/s per {args.chunks // args.runs} chunks: "
          f"{[round(r) for r in rates]}; median {statistics.median(rates):,.0f}")
    http_rate = statistics.median(r[0] for r in batch_rows)
    engine_rate = statistics.median(r[1] for r in batch_rows)
    print(f"alternating {args.batch}-chunk batches at {args.chunks} chunks: HTTP {http_rate:,.0f} chunks/s, "
          f"in-process {engine_rate:,.0f} chunks/s, ratio {http_rate / engine_rate:.2f}")
    print("| run | /health p50 | /health p95 | HTTP hybrid p50 (httpx) | p95 | HTTP hybrid p50 (http.client) | p95 "
          "| engine p50 | engine p95 | http.client - engine p50 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, row in enumerate(rows, 1):
        print(f"| {i} | " + " | ".join(f"{v:.2f}" for v in row) + f" | {row[4] - row[6]:.2f} |")
    med = [statistics.median(col) for col in zip(*rows)]
    print("| median | " + " | ".join(f"{v:.2f}" for v in med) + f" | {med[4] - med[6]:.2f} |")
    print("(all times in ms)")
    if base_rows:
        print(f"\nHTTP hybrid search (httpx), baseline code from {args.baseline_src} vs this tree:")
        print("| run | baseline p50 | baseline p95 | this p50 | this p95 |")
        print("| --- | --- | --- | --- | --- |")
        for i, pair in enumerate(base_rows, 1):
            print(f"| {i} | " + " | ".join(f"{v:.2f}" for v in pair) + " |")
        base_med = [statistics.median(col) for col in zip(*base_rows)]
        print("| median | " + " | ".join(f"{v:.2f}" for v in base_med) + " |")


if __name__ == "__main__":
    main()
