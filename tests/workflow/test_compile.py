"""`loom compile`: Graph IR with jobs, edges, variables, references and order; never values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .conftest import run_loom

VALUE = "s3cr3t-compile-value-7c1e"

WORKFLOW = """\
name: demo
variables: {REGION: eu-west-1}
default: {timeout: 30}
jobs:
  migrate:
    needs: [build, lint]
    variables: {DB_HOST: db.internal}
    secrets:
      DATABASE_PASSWORD: {ref: "env://DB_PW"}
      API_TOKEN: {ref: "env://API_TOKEN", file: false}
    script: ["./migrate.sh"]
  build: {script: ["make"], timeout: 5}
  lint: {needs: [build], script: ["ruff"]}
"""


def test_compile_writes_ir_with_references_only(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """-o writes the IR: topological order, edges, references; the env value is nowhere."""
    write_workflow(WORKFLOW)
    proc = run_loom(
        ["compile", "workflow.yml", "-o", "ir.json"],
        cwd=tmp_path,
        env={"DB_PW": VALUE, "API_TOKEN": VALUE + "-2"},
    )
    assert proc.returncode == 0, proc.stderr
    raw = (tmp_path / "ir.json").read_bytes()
    assert (VALUE.encode() in raw) is False, "secret value leaked into compiled IR"
    assert (VALUE.encode() in proc.stdout + proc.stderr) is False, "secret value leaked into output"
    ir = json.loads(raw)
    assert ir["order"] == ["build", "lint", "migrate"]
    assert sorted(map(tuple, ir["edges"])) == [("build", "lint"), ("build", "migrate"), ("lint", "migrate")]
    assert ir["variables"] == {"REGION": "eu-west-1"}
    migrate = ir["jobs"]["migrate"]
    assert migrate["secrets"] == {
        "DATABASE_PASSWORD": {"ref": "env://DB_PW", "scheme": "env", "file": True},
        "API_TOKEN": {"ref": "env://API_TOKEN", "scheme": "env", "file": False},
    }
    assert migrate["timeout"] == 30.0 and ir["jobs"]["build"]["timeout"] == 5.0


def test_compile_never_resolves(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """Compiling succeeds when the referenced variable is unset: nothing is resolved."""
    write_workflow(WORKFLOW)
    proc = run_loom(["compile", "workflow.yml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["jobs"]["migrate"]["secrets"]["DATABASE_PASSWORD"]["ref"] == "env://DB_PW"


def test_compile_refuses_an_invalid_workflow(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """An invalid workflow is not compiled; the error lists its problems."""
    write_workflow("jobs:\n  a: {needs: [a], script: [x]}\n")
    proc = run_loom(["compile", "workflow.yml", "-o", "ir.json"], cwd=tmp_path)
    assert proc.returncode == 1
    assert b"error[WORKFLOW_CYCLE]" in proc.stderr
    assert not (tmp_path / "ir.json").exists()
