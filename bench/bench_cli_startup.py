"""Wall time of ``loom --help`` against a bare ``python -c pass`` in the same run.

Usage: .venv/bin/python bench/bench_cli_startup.py [--runs 30]
Goal (issue 2): ``loom --help`` under 150 ms on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    loom = shutil.which("loom", path=str(Path(sys.executable).parent)) or "loom"
    rows = {
        "python -c pass (baseline)": timed([sys.executable, "-c", "pass"], args.runs),
        "python -I -S -c pass (floor)": timed([sys.executable, "-I", "-S", "-c", "pass"], args.runs),
        "loom --help": timed([loom, "--help"], args.runs),
        "loom --version": timed([loom, "--version"], args.runs),
    }
    base = statistics.median(rows["python -c pass (baseline)"])
    print(f"{'command':<32} {'median ms':>10} {'p90 ms':>8} {'x baseline':>11}")
    for name, samples in rows.items():
        med = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:<32} {med:>10.1f} {p90:>8.1f} {med / base:>11.2f}")


if __name__ == "__main__":
    main()
