"""Wall time of `loom run` on a job printing 1 GiB, against the same command run bare.

    .venv/bin/python bench/bench_run_overhead.py [--size-mib 1024] [--runs 5] [--job yes|lines]

``--job yes`` (default): ``yes '<line>' | head -c SIZE``, the fastest producer a shell
has (~4 GB/s here), so the pipe and the reader set the pace. ``--job lines``: a Python
program writing the same kind of line one ``write`` at a time, like a build or test
runner logging (~0.3 GB/s here), so the job sets the pace.

Three timings per round, interleaved so machine load hits all of them alike:

* ``bare``: ``bash -c SCRIPT`` with stdout on /dev/null (the job alone, nothing reads it);
* ``bare, piped to cat``: the same with its output piped to ``cat > /dev/null``, i.e.
  consumed by a reader the way any log collector must;
* ``bare, drained``: the same, its stdout a 1 MiB pipe that a minimal Python loop
  drains with ``os.read`` and discards (the same pipe hop ``loom run`` has, with none of
  its work: this is the "/dev/null-equivalent consumption" baseline the goal uses);
* ``bare, drained into one buffer``: the same drain with ``os.readv`` into one reused
  buffer (no allocation per read): the least CPU any consumer of the pipe can spend;
* ``loom``: ``loom run`` of a one-job workflow with the same script, whose job has a
  file secret (so its output really goes through the stream redactor), console on
  /dev/null, receipt written;
* ``loom, no secret``: the same without a secret (pass-through stream).

Prints medians and ratios; goal: ``loom`` <= 1.05 x ``bare, drained``.
The job's own duration from the receipt is reported too, to separate streaming
cost from the CLI's start-up (interpreter, YAML, schema, config, plugins), and
the CPU time (user + system) of each variant's whole process tree (``wait4``:
the job's ``bash``, ``yes`` and ``head`` included): on 2 cores a CPU-bound tree
cannot finish in less wall time than half its CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


LINE = "build step 42: compiling module loom_core.workflow ok"


def _script(size_mib: int, job: str = "yes") -> str:
    size = size_mib * 1024 * 1024
    if job == "yes":
        return f"yes '{LINE}' | head -c {size}"
    # one write per line of LINE + " %09d\n"; the last line is cut so the total is exactly ``size``
    width = len(LINE) + 11
    program = (
        "import sys\n"
        "w = sys.stdout.write\n"
        f"line = '{LINE} %09d' + chr(10)\n"
        f"for i in range({size // width}):\n"
        "    w(line % i)\n"
        f"w((line % 0)[:{size % width}])\n"
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(program)}"


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

DRAIN_BUFFER = DRAIN.replace(
    "while os.read(fd, 1 << 18):", "buf = bytearray(1 << 18)\nwhile os.readv(fd, [buf]):"
)


def _time(argv: list[str], env: dict[str, str], cwd: Path, cpu: list[float]) -> float:
    """Wall seconds; appends the tree's CPU seconds (user + system, waited-for descendants too)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} exited with {proc.returncode}")
    cpu.append(usage.ru_utime + usage.ru_stime)
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--job", choices=["yes", "lines"], default="yes")
    args = parser.parse_args()
    script = _script(args.size_mib, args.job)
    env = dict(os.environ, BENCH_TOKEN="bench-token-value-9a7c")  # noqa: S106 - a made-up bench value
    env.pop("CI_DEBUG_TRACE", None)
    times: dict[str, list[float]] = {
        "bare": [],
        "bare, piped to cat": [],
        "bare, drained": [],
        "bare, drained into one buffer": [],
        "loom": [],
        "loom, no secret": [],
    }
    cpu: dict[str, list[float]] = {name: [] for name in times}
    job_seconds: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "secret.yml").write_text(_workflow(script, True))
        (work / "plain.yml").write_text(_workflow(script, False))
        loom = [PYTHON, "-m", "loom_core.cli.main", "run"]
        for _ in range(args.runs):
            job = "set -e\n" + script + "\n"
            piped = "set -e\n( " + script + " ) | cat > /dev/null\n"
            argvs = {
                "bare": ["bash", "-c", job],
                "bare, piped to cat": ["bash", "-c", piped],
                "bare, drained": [PYTHON, "-c", DRAIN, job],
                "bare, drained into one buffer": [PYTHON, "-c", DRAIN_BUFFER, job],
                "loom": [*loom, "secret.yml", "--receipt", "r.json"],
                "loom, no secret": [*loom, "plain.yml", "--receipt", "p.json"],
            }
            for name, argv in argvs.items():
                times[name].append(_time(argv, env, work, cpu[name]))
                if name == "loom":
                    job_seconds.append(json.loads((work / "r.json").read_text())["jobs"][0]["duration_seconds"])
    base = statistics.median(times["bare"])
    print(f"job: {script!r} ({args.size_mib} MiB), {args.runs} rounds, Python {sys.version.split()[0]}")
    drained_base = statistics.median(times["bare, drained"])
    print(f"load average before: {load_before}, after: {os.getloadavg()}")
    print("| variant | median wall s | ratio to bare | ratio to bare, drained | median tree CPU s |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in times.items():
        med, tree = statistics.median(values), statistics.median(cpu[name])
        print(f"| {name} | {med:.3f} | {med / base:.3f} | {med / drained_base:.3f} | {tree:.3f} |")
    job = statistics.median(job_seconds)
    print(f"| loom, job duration only (receipt) | {job:.3f} | {job / base:.3f} | {job / drained_base:.3f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
