"""The debug-trace guard: shell tracing and direct (``file: false``) secrets never mix.

``CI_DEBUG_TRACE`` turns on ``set -x`` in job scripts, which prints expanded
values. ``SHELLOPTS`` does the same without Loom's help: bash reads it from
its environment at startup and turns on every option it lists, so
``SHELLOPTS=xtrace`` (or ``braceexpand:xtrace``) traces every command. If
either is on anywhere in a run (the environment, workflow variables or a
selected job's variables) while any secret of the run is injected directly,
the run fails before anything resolves or starts.

Not counted: ``BASH_ENV`` names a file bash runs first, which could say
``set -x``, but it runs code like the script itself does (the script could say
``set -x`` too); no setting can be judged from its value. ``BASHOPTS`` holds
``shopt`` options, none of which traces; ``PS4`` and ``BASH_XTRACEFD`` only
shape a trace that something else turned on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from loom_core.errors import ErrorCode, LoomError
from loom_core.flags import is_truthy
from loom_core.workflow.graph import Workflow

TRACE_VARIABLE = "CI_DEBUG_TRACE"
SHELL_OPTIONS_VARIABLE = "SHELLOPTS"


def turns_on_tracing(name: str, value: str | None) -> bool:
    """Whether variable ``name`` set to ``value`` makes job shells trace their commands.

    ``SHELLOPTS`` counts when one of its ``:``-separated options is ``xtrace``; spaces and case
    are forgiven (bash itself refuses ``XTRACE``, but a guard errs towards refusing).
    """
    if value is None:
        return False
    if name == TRACE_VARIABLE:
        return is_truthy(value)
    if name == SHELL_OPTIONS_VARIABLE:
        return "xtrace" in {option.strip().lower() for option in value.split(":")}
    return False


def tracing_variables(variables: Mapping[str, str]) -> list[str]:
    """The names in ``variables`` that turn tracing on, e.g. ``["CI_DEBUG_TRACE", "SHELLOPTS"]``."""
    return [
        name for name in (TRACE_VARIABLE, SHELL_OPTIONS_VARIABLE) if turns_on_tracing(name, variables.get(name))
    ]


def trace_sources(workflow: Workflow, jobs: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """Where tracing is on, e.g. ``["CI_DEBUG_TRACE in the environment", "SHELLOPTS in jobs.build.variables"]``."""
    sources = [f"{name} in the environment" for name in tracing_variables(environ)]
    sources += [f"{name} in variables" for name in tracing_variables(workflow.variables)]
    for job in jobs:
        sources += [f"{name} in jobs.{job}.variables" for name in tracing_variables(workflow.jobs[job].variables)]
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
            f"shell tracing is on ({', '.join(sources)}) while secrets are injected directly "
            f"(file: false): {', '.join(direct)}; switch them to file: true, or unset {TRACE_VARIABLE} "
            f"and take xtrace out of {SHELL_OPTIONS_VARIABLE}",
            details={"sources": sources, "secrets": direct},
        )
