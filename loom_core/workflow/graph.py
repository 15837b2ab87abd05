"""The workflow model (jobs, secret references) and its Graph IR.

Built only from a document that passed the schema, so field types are known.
The IR holds references, never values: compiling never touches a provider.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loom_core.errors import ErrorCode, LoomError

IR_VERSION = 1


@dataclass(frozen=True)
class SecretSpec:
    """A job's secret: the env var name, the provider reference, the injection mode."""

    name: str
    ref: str
    file: bool = True

    @property
    def scheme(self) -> str:
        return self.ref.split("://", 1)[0].lower()


@dataclass(frozen=True)
class Job:
    """One node of the DAG."""

    name: str
    script: tuple[str, ...]
    needs: tuple[str, ...] = ()
    image: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, SecretSpec] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True)
class Workflow:
    """A checked workflow: plain variables and jobs in declaration order."""

    name: str
    variables: Mapping[str, str]
    jobs: Mapping[str, Job]

    def order(self) -> list[str]:
        """Jobs in dependency order (stable: declaration order among ready jobs)."""
        return topological_order({name: job.needs for name, job in self.jobs.items()})

    def edges(self) -> list[tuple[str, str]]:
        """``(need, job)`` pairs: ``need`` must finish before ``job`` starts."""
        return [(need, name) for name, job in self.jobs.items() for need in job.needs]

    def closure(self, name: str) -> list[str]:
        """``name`` and every job it transitively needs, in dependency order."""
        if name not in self.jobs:
            known = ", ".join(self.jobs)
            raise LoomError(ErrorCode.WORKFLOW_NOT_FOUND, f"no job named {name!r} (jobs: {known})")
        wanted: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            if current not in wanted:
                wanted.add(current)
                stack.extend(self.jobs[current].needs)
        return [j for j in self.order() if j in wanted]

    def secret_specs(self, jobs: list[str] | None = None) -> list[SecretSpec]:
        names = self.order() if jobs is None else jobs
        return [spec for j in names for spec in self.jobs[j].secrets.values()]


def topological_order(needs: Mapping[str, tuple[str, ...] | list[str]]) -> list[str]:
    """Kahn's order via :mod:`graphlib`; a cycle raises ``WORKFLOW_CYCLE`` naming it."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in needs:
        sorter.add(name, *needs[name])
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1] if len(exc.args) > 1 else []
        raise LoomError(
            ErrorCode.WORKFLOW_CYCLE,
            "jobs form a cycle: " + " -> ".join(str(c) for c in cycle),
            details={"cycle": list(cycle)},
        ) from None
    position = {name: i for i, name in enumerate(needs)}
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: position.get(n, len(position)))
        for name in ready:
            order.append(name)
            sorter.done(name)
    return order


def variable_text(value: object) -> str:
    """The text a job gets for a plain variable (YAML booleans as `true`/`false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_workflow(data: Mapping[str, Any], fallback_name: str = "workflow") -> Workflow:
    """Turn a schema-valid document into a :class:`Workflow` (``default`` applied)."""
    defaults = data.get("default") or {}
    jobs: dict[str, Job] = {}
    for name, raw in data["jobs"].items():
        secrets = {
            key: SecretSpec(name=key, ref=spec["ref"], file=bool(spec.get("file", True)))
            for key, spec in (raw.get("secrets") or {}).items()
        }
        timeout = raw.get("timeout", defaults.get("timeout"))
        jobs[name] = Job(
            name=name,
            script=tuple(raw["script"]),
            needs=tuple(raw.get("needs") or ()),
            image=raw.get("image", defaults.get("image")),
            variables={k: variable_text(v) for k, v in (raw.get("variables") or {}).items()},
            secrets=secrets,
            timeout=float(timeout) if timeout is not None else None,
        )
    return Workflow(
        name=str(data.get("name") or fallback_name),
        variables={k: variable_text(v) for k, v in (data.get("variables") or {}).items()},
        jobs=jobs,
    )


def graph_ir(workflow: Workflow) -> dict[str, Any]:
    """The JSON-ready Graph IR: jobs, edges, variables, references and order; no values."""
    return {
        "ir_version": IR_VERSION,
        "name": workflow.name,
        "variables": dict(workflow.variables),
        "order": workflow.order(),
        "edges": [list(e) for e in workflow.edges()],
        "jobs": {
            name: {
                "needs": list(job.needs),
                "image": job.image,
                "variables": dict(job.variables),
                "secrets": {
                    s.name: {"ref": s.ref, "scheme": s.scheme, "file": s.file} for s in job.secrets.values()
                },
                "script": list(job.script),
                "timeout": job.timeout,
            }
            for name, job in workflow.jobs.items()
        },
    }
