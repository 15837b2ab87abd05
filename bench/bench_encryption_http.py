"""What encryption at rest costs through the REST API, plaintext and encrypted servers in the same run.

Usage: .venv/bin/python bench/bench_encryption_http.py [--chunks 10000] [--runs 5] [--read-passes 2]

``bench_encryption.py`` times the engine in process, the worst case for a
per-row cost. Clients reach Loomem over HTTP, so this benchmark starts two real
servers on 127.0.0.1 (``loom serve``, RocksDB, Tantivy, hash embedder), one
without and one with ``LOOMEM_AT_REST_MASTER_KEY``, and drives both with the
same requests over one keep-alive connection each, alternating batches (which
server goes first flips every batch) so load from other processes hits both
alike:

* ingest: ``POST /v1/streams/bench/chunks/batch`` with 500 chunks;
* read: ``GET /v1/chunks/{id}`` of every id, ``--read-passes`` times, 500 a batch;
* list: the whole stream paged through ``GET /v1/streams/bench/chunks?limit=100``.

Per mode it sums the client's wall time and the server process's CPU time
(user + system from ``/proc/PID/stat``, i.e. every thread of the server). The
median over runs of the encrypted/plaintext ratio is reported for both clocks.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encryption import BATCH, PAGE, content, environ
from bench_http import TOKEN, free_port, start_server

TICKS = os.sysconf("SC_CLK_TCK")
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of every thread of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def call(conn: http.client.HTTPConnection, method: str, path: str, body: object = None) -> object:
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=HEADERS)
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data)


def quiet(pid: int, window: float = 0.3, limit: float = 20.0) -> None:
    """Wait until the server's background threads (flushes, compactions, index commits) are idle."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = server_cpu(pid)
        time.sleep(window)
        if server_cpu(pid) - before < 0.02:
            return


class Server:
    """One running server, its connection and its ids."""

    def __init__(self, root: Path, name: str, encrypted: bool) -> None:
        data_dir = root / name
        data_dir.mkdir(parents=True)
        self.port = free_port()
        # index commits inside each batch's own window, not on a timer while the other server is timed
        self.proc: subprocess.Popen[bytes] = start_server(
            data_dir, self.port, "warning", extra_config="[index]\ncommit_delay_ms = 0\n", environ=environ(encrypted))
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.ids: list[str] = []
        self.cursor: str | None = None

    def close(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(30)


Request = tuple[str, str, object]  # method, path, JSON body or None


def steps(servers: dict[bool, Server], chunks: int, passes: int) -> Iterator[tuple[str, bool, list[Request]]]:
    """(phase, encrypted, requests) batches; ids are filled in as ingest answers."""
    items = [{"content": content(n), "metadata": {"n": n}} for n in range(chunks)]
    for n, i in enumerate(range(0, chunks, BATCH)):
        for encrypted in (False, True) if n % 2 == 0 else (True, False):
            yield "ingest", encrypted, [("POST", "/v1/streams/bench/chunks/batch", {"chunks": items[i : i + BATCH]})]
    batches = [i for _ in range(passes) for i in range(0, chunks, BATCH)]
    for n, i in enumerate(batches):
        for encrypted in (False, True) if n % 2 == 0 else (True, False):
            ids = servers[encrypted].ids[i : i + BATCH]
            yield "read", encrypted, [("GET", f"/v1/chunks/{chunk_id}", None) for chunk_id in ids]
    for n, i in enumerate(range(0, chunks, PAGE)):
        for encrypted in (False, True) if n % 2 == 0 else (True, False):
            cursor = f"&cursor={servers[encrypted].cursor}" if i else ""
            yield "list", encrypted, [("GET", f"/v1/streams/bench/chunks?limit={PAGE}{cursor}", None)]


def one_run(root: Path, chunks: int, passes: int, control: bool) -> dict[str, dict[bool, float]]:
    """Totals per phase and clock; with ``control`` the "encrypted" server is a second plaintext one."""
    servers = {second: Server(root, f"server-{second}", second and not control) for second in (False, True)}
    totals: dict[str, dict[bool, float]] = {}
    pages = {False: 0, True: 0}
    phase = ""
    try:
        for name, encrypted, requests in steps(servers, chunks, passes):
            if name != phase:
                for server in servers.values():
                    quiet(server.proc.pid)
                phase = name
            server = servers[encrypted]
            cpu, wall = server_cpu(server.proc.pid), time.perf_counter()
            for method, path, body in requests:
                answer = call(server.conn, method, path, body)
                if name == "ingest":
                    server.ids.extend(chunk["id"] for chunk in answer)  # type: ignore[attr-defined]
                elif name == "list":
                    server.cursor = answer["next_cursor"]  # type: ignore[index]
                    assert len(answer["chunks"]) == min(PAGE, chunks - PAGE * pages[encrypted])  # type: ignore[index]
                    pages[encrypted] += 1
            wall = time.perf_counter() - wall
            cpu = server_cpu(server.proc.pid) - cpu
            for clock, spent in (("wall", wall), ("server_cpu", cpu)):
                totals.setdefault(f"{name}_{clock}", {False: 0.0, True: 0.0})[encrypted] += spent
    finally:
        for server in servers.values():
            server.close()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--read-passes", type=int, default=2)
    parser.add_argument("--control", action="store_true",
                        help="both servers plaintext: the spread an identical pair shows on this machine")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.chunks} chunks, {args.runs} runs, "
          f"{args.read_passes} read passes, load average {os.getloadavg()[0]:.1f}")
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="loom-bench-enc-http-") as tmp:
        one_run(Path(tmp) / "warm", min(args.chunks, 1000), 1, args.control)
        for r in range(args.runs):
            for name, by_mode in one_run(Path(tmp) / f"run-{r}", args.chunks, args.read_passes, args.control).items():
                ratios.setdefault(name, []).append(by_mode[True] / by_mode[False])
    print("control: both servers plaintext" if args.control else "second server encrypted")
    print(f"{'phase/clock':<18} {'enc/plain (median)':>19}  runs")
    for name, values in ratios.items():
        print(f"{name:<18} {statistics.median(values):>19.3f}  {[round(v, 3) for v in values]}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
