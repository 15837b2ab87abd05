"""Wall time of `loom run` on a job printing 1 GiB, against the same command run bare.

    .venv/bin/python bench/bench_run_overhead.py [--size-mib 1024] [--runs 5]

Three timings per round, interleaved so machine load hits all of them alike:

* ``bare``: ``bash -c SCRIPT`` with stdout on /dev/null (the job alone, nothing reads it);
* ``bare, piped to cat``: the same with its output piped to ``cat > /dev/null``, i.e.
  consumed by a reader the way any log collector must;
* ``bare, drained``: the same, its stdout a 1 MiB pipe that a minimal Python loop
  drains with ``os.read`` and discards (the same pipe hop ``loom run`` has, with none of
  its work: this is the "/dev/null-equivalent consumption" baseline the goal uses);
* ``loom``: ``loom run`` of a one-job workflow with the same script, whose job has a
  file secret (so its output really goes through the stream redactor), console on
  /dev/null, receipt written;
* ``loom, no secret``: the same without a secret (pass-through stream).

Prints medians and ratios; goal: ``loom`` <= 1.05 x ``bare, drained``.
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


DRAIN = """
import fcntl, os, subprocess, sys
p = subprocess.Popen(["bash", "-c", sys.argv[1]], stdout=subprocess.PIPE)
fd = p.stdout.fileno()
try:
    fcntl.fcntl(fd, 1031, 1 << 20)
except OSError:
    pass
while os.read(fd, 1 << 18):
    pass
sys.exit(p.wait())
"""


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
    times: dict[str, list[float]] = {
        "bare": [],
        "bare, piped to cat": [],
        "bare, drained": [],
        "loom": [],
        "loom, no secret": [],
    }
    job_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "secret.yml").write_text(_workflow(script, True))
        (work / "plain.yml").write_text(_workflow(script, False))
        loom = [PYTHON, "-m", "loom_core.cli.main", "run"]
        for _ in range(args.runs):
            times["bare"].append(_time(["bash", "-c", "set -e\n" + script + "\n"], env, work))
            piped = "set -e\n( " + script + " ) | cat > /dev/null\n"
            times["bare, piped to cat"].append(_time(["bash", "-c", piped], env, work))
            drained = [PYTHON, "-c", DRAIN, "set -e\n" + script + "\n"]
            times["bare, drained"].append(_time(drained, env, work))
            times["loom"].append(_time([*loom, "secret.yml", "--receipt", "r.json"], env, work))
            job_seconds.append(json.loads((work / "r.json").read_text())["jobs"][0]["duration_seconds"])
            times["loom, no secret"].append(_time([*loom, "plain.yml", "--receipt", "p.json"], env, work))
    base = statistics.median(times["bare"])
    print(f"job: {script!r} ({args.size_mib} MiB), {args.runs} rounds, Python {sys.version.split()[0]}")
    drained_base = statistics.median(times["bare, drained"])
    print("| variant | median s | ratio to bare | ratio to bare, drained |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {med / base:.3f} | {med / drained_base:.3f} |")
    job = statistics.median(job_seconds)
    print(f"| loom, job duration only (receipt) | {job:.3f} | {job / base:.3f} | {job / drained_base:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
