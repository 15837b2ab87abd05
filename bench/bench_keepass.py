"""keepass:// resolution: one provider (one KDF) vs a fresh provider per reference.

A run resolving many references from one KeePass database must pay the
database's key-derivation function once, not once per reference. This
measures 50 references resolved through one provider against the same 50
each resolved by a new provider (a new open, so a new KDF), on a KDBX 4
database with pykeepass's default Argon2 parameters (what KeePass-family
programs write by default), and reports medians of several runs.

    .venv/bin/python bench/bench_keepass.py [--runs 5] [--refs 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from loom_secrets_keepass.provider import KeepassProvider
from loom_secrets_keepass.testing import add_entry, create_database

from loom_core.contracts.secrets import SecretRef

PASSWORD = "bench-master-password-0001"  # noqa: S105 (a throwaway benchmark database)


def build(directory: Path, refs: int, version: int) -> tuple[dict[str, str], list[SecretRef]]:
    path = directory / f"bench-v{version}.kdbx"
    kp = create_database(path, version=version, password=PASSWORD, fast_kdf=False)
    for n in range(refs):
        add_entry(kp, ("ci", f"team{n % 5}"), f"service-{n:02d}", username="svc", password=f"value-{n:04d}-x" * 3)
    kp.save()
    environ = {
        "LOOM_KEEPASS_DB_BENCH_PATH": str(path),
        "LOOM_KEEPASS_DB_BENCH_PASSWORD_ENV": "BENCH_MASTER",
        "BENCH_MASTER": PASSWORD,
    }
    parsed = [SecretRef.parse(f"keepass://bench/ci/team{n % 5}/service-{n:02d}") for n in range(refs)]
    return environ, parsed


def one_provider(environ: dict[str, str], refs: list[SecretRef]) -> float:
    start = time.perf_counter()
    provider = KeepassProvider(environ)
    for ref in refs:
        provider.resolve(ref)
    provider.close()
    elapsed = time.perf_counter() - start
    assert provider.opens <= 1
    return elapsed


def provider_per_ref(environ: dict[str, str], refs: list[SecretRef]) -> float:
    start = time.perf_counter()
    for ref in refs:
        provider = KeepassProvider(environ)
        provider.resolve(ref)
        provider.close()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--refs", type=int, default=50)
    parser.add_argument("--version", type=int, choices=(3, 4), default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        environ, refs = build(Path(tmp), args.refs, args.version)
        cached, fresh = [], []
        for _ in range(args.runs):
            cached.append(one_provider(environ, refs))
            fresh.append(provider_per_ref(environ, refs))
    med_cached, med_fresh = statistics.median(cached), statistics.median(fresh)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"KDBX {args.version}, {args.refs} references, {args.runs} runs (median)")
    print(f"one provider (1 open):        {med_cached * 1000:9.1f} ms")
    print(f"provider per reference:       {med_fresh * 1000:9.1f} ms  ({med_fresh / args.refs * 1000:.0f} ms/open)")
    print(f"speed-up:                     {med_fresh / med_cached:9.1f} x  (goal >= 20 x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
