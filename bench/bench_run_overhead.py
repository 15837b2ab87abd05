"""Wall time of `loom run` on a job printing 1 GiB, against the same command run bare.

    .venv/bin/python bench/bench_run_overhead.py [--size-mib 1024] [--runs 5]

Three timings per round, interleaved so machine load hits all of them alike:

* ``bare``: ``bash -c SCRIPT`` with stdout on /dev/null (the job alone, nothing reads it);
* ``bare | cat``: the same with its output piped to ``cat > /dev/null``, i.e. consumed
  by a reader the way any log collector must;
* ``loom``: ``loom run`` of a one-job workflow with the same script, whose job has a
  file secret (so its output really goes through the stream redactor), console on
  /dev/null, receipt written;
* ``loom, no secret``: the same without a secret (pass-through stream).

Prints medians and the ratio to ``bare``; goal: ``loom`` <= 1.05 x ``bare``.
The job's own duration from the receipt is reported too, to separate streaming
cost from the CLI's start-up (interpreter, YAML, schema, config, plugins).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _script(size_mib: int) -> str:
    return f"yes 'build step 42: compiling module loom_core.workflow ok' | head -c {size_mib * 1024 * 1024}"


def _workflow(script: str, secret: bool) -> str:
    secrets = '    secrets: {BENCH_TOKEN: {ref: "env://BENCH_TOKEN"}}\n' if secret else ""
    return f"jobs:\n  big:\n{secrets}    script: [{json.dumps(script)}]\n"


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    script = _script(args.size_mib)
    env = dict(os.environ, BENCH_TOKEN="bench-token-value-9a7c")  # noqa: S106 - a made-up bench value
    env.pop("CI_DEBUG_TRACE", None)
    times: dict[str, list[float]] = {"bare": [], "bare | cat": [], "loom": [], "loom, no secret": []}
    job_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "secret.yml").write_text(_workflow(script, True))
        (work / "plain.yml").write_text(_workflow(script, False))
        loom = [PYTHON, "-m", "loom_core.cli.main", "run"]
        for _ in range(args.runs):
            times["bare"].append(_time(["bash", "-c", "set -e\n" + script + "\n"], env, work))
            piped = "set -e\n( " + script + " ) | cat > /dev/null\n"
            times["bare | cat"].append(_time(["bash", "-c", piped], env, work))
            times["loom"].append(_time([*loom, "secret.yml", "--receipt", "r.json"], env, work))
            job_seconds.append(json.loads((work / "r.json").read_text())["jobs"][0]["duration_seconds"])
            times["loom, no secret"].append(_time([*loom, "plain.yml", "--receipt", "p.json"], env, work))
    base = statistics.median(times["bare"])
    print(f"job: {script!r} ({args.size_mib} MiB), {args.runs} rounds, Python {sys.version.split()[0]}")
    piped_base = statistics.median(times["bare | cat"])
    print("| variant | median s | ratio to bare | ratio to bare \\| cat |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {med / base:.3f} | {med / piped_base:.3f} |")
    job = statistics.median(job_seconds)
    print(f"| loom, job duration only (receipt) | {job:.3f} | {job / base:.3f} | {job / piped_base:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
