"""Debug-trace guard: CI_DEBUG_TRACE truthy + any file: false secret fails before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loom_core.errors import ErrorCode
from loom_core.flags import is_truthy

from .conftest import run_inprocess, run_loom

VALUE = "direct-value-for-guard-4b2d"

DIRECT = """\
jobs:
  deploy:
    secrets:
      API_TOKEN: {ref: "env://API_TOKEN", file: false}
    script: ["touch ran.marker", "echo $API_TOKEN"]
"""


@pytest.mark.parametrize("spelling", ["true", "1", "t", "TRUE", "True", "yes", "YES", "y", "on", "On", " true "])
def test_truthy_spellings(spelling: str) -> None:
    """Every truthy spelling, in any case, counts as on."""
    assert is_truthy(spelling)


@pytest.mark.parametrize("spelling", ["false", "0", "no", "off", "", "nope", "2", None])
def test_falsy_spellings(spelling: str | None) -> None:
    """Other values leave tracing off."""
    assert not is_truthy(spelling)


@pytest.mark.parametrize("spelling", ["true", "1", "t", "TRUE", "yes", "y", "on"])
def test_environment_trace_with_direct_secret_fails_before_run(
    tmp_path: Path, write_workflow: Callable[..., Path], spelling: str
) -> None:
    """The run fails with SECRETS_UNSAFE_DEBUG_TRACE; the job never ran (no marker file)."""
    path = write_workflow(DIRECT)
    result: Any
    result, out, err = run_inprocess(path, {"CI_DEBUG_TRACE": spelling, "API_TOKEN": VALUE})
    assert result.error is not None and result.error.code == ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE
    assert not (tmp_path / "ran.marker").exists()
    assert result.receipt.jobs[0].status == "skipped"
    assert (VALUE.encode() in out + err) is False, "direct value printed"


def test_guard_runs_before_resolution(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """With the variable unset the guard still wins: nothing was resolved (no SECRETS_NOT_FOUND)."""
    path = write_workflow(DIRECT)
    result: Any
    result, _, _ = run_inprocess(path, {"CI_DEBUG_TRACE": "yes"})
    assert result.error.code == ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE


@pytest.mark.parametrize("where", ["workflow", "job"])
def test_trace_in_workflow_or_job_variables(
    tmp_path: Path, write_workflow: Callable[..., Path], where: str
) -> None:
    """CI_DEBUG_TRACE set in workflow or job variables counts as much as the environment."""
    if where == "workflow":
        text = "variables: {CI_DEBUG_TRACE: 'TRUE'}\n" + DIRECT
    else:
        text = DIRECT.replace("    secrets:", "    variables: {CI_DEBUG_TRACE: 'on'}\n    secrets:")
    path = write_workflow(text)
    result: Any
    result, _, _ = run_inprocess(path, {"API_TOKEN": VALUE})
    assert result.error.code == ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE
    assert not (tmp_path / "ran.marker").exists()


def test_trace_with_file_secrets_only_runs_traced_without_leaking(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """With only file: true secrets tracing is allowed: `set -x` shows the path, never the value."""
    path = write_workflow(
        """\
        jobs:
          deploy:
            secrets:
              API_TOKEN: {ref: "env://API_TOKEN"}
            script: ['tok=$(cat "$API_TOKEN")', 'test -n "$tok"', "touch ran.marker"]
        """
    )
    result: Any
    result, out, err = run_inprocess(path, {"CI_DEBUG_TRACE": "1", "API_TOKEN": VALUE})
    assert result.error is None and result.exit_code == 0, err
    assert (tmp_path / "ran.marker").exists()
    assert b"+ test -n" in err  # the shell trace really was on
    assert (VALUE.encode() in out + err) is False, "value leaked through the trace"


def test_cli_reports_code(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """`loom run` prints error[SECRETS_UNSAFE_DEBUG_TRACE] and exits non-zero."""
    write_workflow(DIRECT)
    proc = run_loom(["run", "workflow.yml"], cwd=tmp_path, env={"CI_DEBUG_TRACE": "y", "API_TOKEN": VALUE})
    assert proc.returncode == 1
    assert b"error[SECRETS_UNSAFE_DEBUG_TRACE]" in proc.stderr
    assert not (tmp_path / "ran.marker").exists()


@pytest.mark.parametrize("options", ["xtrace", "braceexpand:xtrace", "hashall:xtrace:interactive-comments"])
@pytest.mark.parametrize("where", ["environment", "workflow", "job"])
def test_shellopts_with_xtrace_counts_as_debug_trace(
    tmp_path: Path, write_workflow: Callable[..., Path], where: str, options: str
) -> None:
    """bash turns on every option SHELLOPTS lists when it starts, so ``SHELLOPTS=xtrace`` traced a
    job's commands, direct values included, without tripping the guard. It counts like
    CI_DEBUG_TRACE wherever it is set: the run fails before the job starts, nothing printed."""
    environ = {"API_TOKEN": VALUE}
    text = DIRECT
    if where == "environment":
        environ["SHELLOPTS"] = options
    elif where == "workflow":
        text = f"variables: {{SHELLOPTS: '{options}'}}\n" + DIRECT
    else:
        text = DIRECT.replace("    secrets:", f"    variables: {{SHELLOPTS: '{options}'}}\n    secrets:")
    path = write_workflow(text)
    result: Any
    result, out, err = run_inprocess(path, environ)
    assert result.error is not None and result.error.code == ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE
    assert "SHELLOPTS" in result.error.message
    assert not (tmp_path / "ran.marker").exists()
    assert (VALUE.encode() in out + err) is False, "direct value printed"


def test_shellopts_without_xtrace_is_not_tracing(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """Other shell options (here ``braceexpand:hashall``) trace nothing: the job runs untraced."""
    path = write_workflow("variables: {SHELLOPTS: 'braceexpand:hashall'}\n" + DIRECT)
    result: Any
    result, _, err = run_inprocess(path, {"API_TOKEN": VALUE})
    assert result.error is None and result.exit_code == 0, err
    assert (tmp_path / "ran.marker").exists()
    assert b"+ touch" not in err
