"""Build throwaway installed distributions (a ``*.dist-info`` plus modules) on disk.

They are real as far as ``importlib.metadata`` and stevedore can tell; tests
put their directory on ``PYTHONPATH`` of a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def make_dist(
    root: Path,
    name: str,
    version: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str],
) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{ep} = {target}" for ep, target in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


def run_loom(
    args: list[str], pythonpath: Path | None, tmp: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loom_core.cli.main ARGS`` with ``pythonpath`` prepended."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOM")}
    full["XDG_CACHE_HOME"] = str(tmp / "cache")  # stevedore's entry-point cache
    if pythonpath is not None:
        full["PYTHONPATH"] = os.pathsep.join([str(pythonpath), full.get("PYTHONPATH", "")])
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=tmp,
        timeout=120,
    )


def run_python(code: str, pythonpath: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp, timeout=120
    )
