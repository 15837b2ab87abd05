"""Shared helpers for workflow tests: write a workflow file, run the real `loom` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

LOOM = [sys.executable, "-m", "loom_core.cli.main"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a `loom` child: PATH, HOME, and what the test adds."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.pop("CI_DEBUG_TRACE", None)
    env.update(extra or {})
    return env


def run_loom(
    args: list[str], *, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run the real CLI in a subprocess and capture its bytes."""
    return subprocess.run(
        [*LOOM, *args], cwd=cwd, env=clean_env(env), capture_output=True, timeout=timeout, check=False
    )


@pytest.fixture
def write_workflow(tmp_path: Path) -> Callable[..., Path]:
    """Write dedented YAML to ``tmp_path/<name>`` and return its path."""

    def write(text: str, name: str = "workflow.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def run_inprocess(
    workflow: Path,
    environ: Mapping[str, str],
    **options: object,
) -> tuple[object, bytes, bytes]:
    """Run a workflow in this process with byte sinks; returns (RunResult, stdout, stderr)."""
    import io

    from loom_core.config import LoomConfig
    from loom_core.workflow.runner import RunOptions, run_workflow

    out, err = io.BytesIO(), io.BytesIO()
    opts = RunOptions(
        workflow=workflow,
        environ=clean_env(environ),
        config=options.pop("config", LoomConfig()),
        stdout=out,
        stderr=err,
        receipt=options.pop("receipt", workflow.parent / "receipt.json"),  # type: ignore[arg-type]
        handle_signals=False,
        **options,  # type: ignore[arg-type]
    )
    result = run_workflow(opts)
    return result, out.getvalue(), err.getvalue()
