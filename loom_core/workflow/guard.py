"""The debug-trace guard: shell tracing and direct (``file: false``) secrets never mix.

``CI_DEBUG_TRACE`` turns on ``set -x`` in job scripts, which prints expanded
values. If it is on anywhere in a run (the environment, workflow variables or
a selected job's variables) while any secret of the run is injected directly,
the run fails before anything resolves or starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from loom_core.errors import ErrorCode, LoomError
from loom_core.flags import is_truthy
from loom_core.workflow.graph import Workflow

TRACE_VARIABLE = "CI_DEBUG_TRACE"
def trace_sources(workflow: Workflow, jobs: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """Where ``CI_DEBUG_TRACE`` is on, e.g. ``["environment", "jobs.build.variables"]``."""
    sources: list[str] = []
    if is_truthy(environ.get(TRACE_VARIABLE)):
        sources.append("environment")
    if is_truthy(workflow.variables.get(TRACE_VARIABLE)):
        sources.append("variables")
    for name in jobs:
        if is_truthy(workflow.jobs[name].variables.get(TRACE_VARIABLE)):
            sources.append(f"jobs.{name}.variables")
    return sources


def check_debug_trace(workflow: Workflow, jobs: list[str], environ: Mapping[str, str]) -> None:
    """Raise ``SECRETS_UNSAFE_DEBUG_TRACE`` when tracing meets a ``file: false`` secret."""
    sources = trace_sources(workflow, jobs, environ)
    if not sources:
        return
    direct = [f"jobs.{j}.secrets.{s.name}" for j in jobs for s in workflow.jobs[j].secrets.values() if not s.file]
    if direct:
        raise LoomError(
            ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE,
            f"{TRACE_VARIABLE} is on ({', '.join(sources)}) while secrets are injected directly "
            f"(file: false): {', '.join(direct)}; switch them to file: true or unset {TRACE_VARIABLE}",
            details={"sources": sources, "secrets": direct},
        )
