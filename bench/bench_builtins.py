"""Throughput of the built-in ``hash`` embedder and ``regex`` PII filter on 20 000 short chunks.

Usage: .venv/bin/python bench/bench_builtins.py [--runs 7] [--chunks 20000]

Baselines measured in the same run: for the embedder, a straightforward
per-text Python loop producing the same kind of vectors (unigram + bigram
feature hashing); for the PII filter, a single ``re.findall(r"\\w+")`` pass
over the same texts (the floor for any regex-based scan).
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import statistics
import time
import zlib
from collections.abc import Callable

import numpy as np

from loom_core.builtins.embed_hash import HashEmbedder
from loom_core.builtins.pii_regex import RegexPIIFilter

FINDALL = "re.findall(\\w+) pass (baseline)"
WORDS = (
    "memory chunk stream agent recall note meeting budget deploy server index query vector "
    "project release version date time user call email report invoice order ticket summary"
).split()


def chunks(n: int) -> list[str]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 24))]
        if i % 50 == 0:
            words.append("call +44 20 7946 0958 or mail jane.doe@example.com")
        words.append(f"v1.{i % 9}.{i % 13} on 2024-01-{1 + i % 28:02d}")
        out.append(" ".join(words))
    return out


def naive_embed(texts: list[str], dim: int = 384) -> np.ndarray:
    rows = np.zeros((len(texts), dim), dtype=np.float32)
    for r, text in enumerate(texts):
        words = re.findall(r"\w+", text.lower())
        feats = words + [a + " " + b for a, b in itertools.pairwise(words)]
        for f in feats:
            h = zlib.crc32(f.encode())
            rows[r, h % dim] += 1.0 if h & 1 else -1.0
        norm = float(np.linalg.norm(rows[r])) or 1.0
        rows[r] /= norm
    return rows


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall and CPU (process) milliseconds; CPU time is less disturbed by other load."""
    fn()  # warm-up (imports, caches)
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chunks", type=int, default=20_000)
    args = parser.parse_args()
    texts = chunks(args.chunks)
    embedder, pii = HashEmbedder(384), RegexPIIFilter(blocklist=["Project Falcon"])
    rows = {
        "hash embed (vectorised)": median_ms(lambda: embedder.embed(texts), args.runs),
        "hash embed, cold cache": median_ms(lambda: HashEmbedder(384).embed(texts), args.runs),
        "naive per-text loop (baseline)": median_ms(lambda: naive_embed(texts), max(1, args.runs // 3)),
        "regex PII redact": median_ms(lambda: [pii.redact(t) for t in texts], args.runs),
        FINDALL: median_ms(
            lambda: [re.findall(r"\w+", t) for t in texts], args.runs
        ),
    }
    print(f"{len(texts)} chunks, median of {args.runs} runs")
    print(f"{'operation':<34} {'wall ms':>9} {'cpu ms':>8}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:<34} {wall:>9.1f} {cpu:>8.1f}")
    naive, fast = rows["naive per-text loop (baseline)"][1], rows["hash embed (vectorised)"][1]
    print(f"embed speed-up vs naive (cpu): {naive / fast:.1f}x")
    print(f"PII redact vs one regex pass (cpu): {rows['regex PII redact'][1] / rows[FINDALL][1]:.1f}x")

if __name__ == "__main__":
    main()
