"""``loom check``: every problem of a workflow at once, each with code, path and line.

Stages: YAML, duplicate keys and keys YAML does not read as text, schema,
then semantic rules that the schema cannot express (name overlaps, reference
syntax and providers, tracing next to direct secrets, the DAG). Semantic
rules run even when the schema fails, defensively, so one pass lists
everything. The earlier copies of a duplicate key, which YAML drops, are
checked too, each in a parse of the file that keeps it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loom_core.errors import ErrorCode, LoomError, raised_at
from loom_core.secrets.providers import ProviderPool
from loom_core.workflow.graph import Workflow, build_workflow, topological_order, variable_text
from loom_core.workflow.guard import SHELL_OPTIONS_VARIABLE, TRACE_VARIABLE, turns_on_tracing
from loom_core.workflow.loader import Duplicate, JsonPath, LoadedDocument, RetypedKey, format_path, load_file
from loom_core.workflow.refs import check_syntax
from loom_core.workflow.schema import schema_problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow."""

    code: ErrorCode
    path: JsonPath
    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "path": format_path(self.path), "line": self.line, "message": self.message}

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}: "
        # a YAML error's message already starts with the place, for callers that show it alone
        return f"{where}{self.code.value} at {format_path(self.path)}: {self.message.removeprefix(where)}"


def _jobs(data: Any) -> dict[str, Mapping[str, Any]]:
    jobs = data.get("jobs") if isinstance(data, Mapping) else None
    if not isinstance(jobs, Mapping):
        return {}
    return {str(k): v for k, v in jobs.items() if isinstance(v, Mapping)}


def _names(block: Any) -> list[str]:
    return [k for k in block if isinstance(k, str)] if isinstance(block, Mapping) else []


def _overlaps(data: Any) -> list[tuple[ErrorCode, JsonPath, str]]:
    found: list[tuple[ErrorCode, JsonPath, str]] = []
    top_vars = set(_names(data.get("variables"))) if isinstance(data, Mapping) else set()
    for name, job in _jobs(data).items():
        job_vars = set(_names(job.get("variables")))
        for secret in _names(job.get("secrets")):
            path: JsonPath = ("jobs", name, "secrets", secret)
            if secret in job_vars:
                found.append(
                    (
                        ErrorCode.WORKFLOW_SCHEMA_INVALID,
                        path,
                        f"{secret!r} is both a variable and a secret of job {name!r}; a name is one or "
                        "the other, so a plain value can never shadow or stand in for a secret",
                    )
                )
            if secret in top_vars:
                found.append(
                    (
                        ErrorCode.WORKFLOW_SCHEMA_INVALID,
                        path,
                        f"{secret!r} is a workflow-level variable and a secret of job {name!r}; rename "
                        "one of them (a plain value must never share a name with a secret)",
                    )
                )
    return found


def _variable_blocks(data: Any) -> list[tuple[JsonPath, Any]]:
    """Every ``variables`` mapping of the document with its path: the workflow's and each job's."""
    blocks: list[tuple[JsonPath, Any]] = []
    if isinstance(data, Mapping):
        blocks.append((("variables",), data.get("variables")))
    blocks.extend((("jobs", name, "variables"), job.get("variables")) for name, job in _jobs(data).items())
    return blocks


def _credential_variables(data: Any, pool: ProviderPool | None) -> list[tuple[ErrorCode, JsonPath, str]]:
    """Provider credentials (a 1Password token, a KeePass database setting, any variable a
    registered secrets backend's policy names as a credential) are not workflow variables: they
    come only from the runtime environment, which jobs never inherit them from, and a value here
    would be a credential written into the workflow file."""
    from loom_core.secrets.credentials import BASELINE, is_credential_name

    policies = pool.policies() if pool is not None else (BASELINE,)
    found: list[tuple[ErrorCode, JsonPath, str]] = []
    for where, block in _variable_blocks(data):
        for key in _names(block):
            if is_credential_name(key, policies):
                found.append((
                    ErrorCode.WORKFLOW_SCHEMA_INVALID,
                    (*where, key),
                    f"{key!r} is a secrets provider's credential setting, not a workflow variable: set it in "
                    "the environment `loom run` starts in (jobs never inherit it)",
                ))
    return found


def _retyped_variables(doc: LoadedDocument) -> list[tuple[ErrorCode, JsonPath, str]]:
    """A variable written ``1.10``, ``0755``, ``yes`` or ``12:30`` is read by YAML as a number or a
    boolean, and the job would see ``1.1``, ``493``, ``true`` or ``750``: say so and ask for quotes,
    since jobs get text and the author meant the text."""
    found: list[tuple[ErrorCode, JsonPath, str]] = []
    for where, block in _variable_blocks(doc.data):
        if not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            source = doc.scalars.get((*where, key))
            if source is None or not isinstance(value, bool | int | float):
                continue
            seen = variable_text(value)
            if seen != source and not (isinstance(value, bool) and seen == source.lower()):
                found.append((
                    ErrorCode.WORKFLOW_SCHEMA_INVALID,
                    (*where, key),
                    f"YAML reads {source} as {type(value).__name__} {seen}, so the job would get {seen!r}; "
                    f"quote it to keep the text: {key}: \"{source}\"",
                ))
    return found


def _finite_timeouts(data: Any) -> list[tuple[ErrorCode, JsonPath, str]]:
    """``.nan`` and ``.inf`` pass the schema's bound (NaN compares false) and meant no timeout."""
    where: list[tuple[JsonPath, Any]] = []
    if isinstance(data, Mapping) and isinstance(data.get("default"), Mapping):
        where.append((("default", "timeout"), data["default"].get("timeout")))
    where.extend((("jobs", name, "timeout"), job.get("timeout")) for name, job in _jobs(data).items())
    return [
        (ErrorCode.WORKFLOW_SCHEMA_INVALID, path, "must be a finite number of seconds greater than 0")
        for path, value in where
        if isinstance(value, float) and not math.isfinite(value)
    ]


def _schemes(data: Any) -> list[str]:
    """The scheme of every reference of the workflow (syntax unchecked), in order, once each."""
    schemes: dict[str, None] = {}
    for job in _jobs(data).values():
        secrets = job.get("secrets")
        if not isinstance(secrets, Mapping):
            continue
        for spec in secrets.values():
            if isinstance(spec, Mapping) and isinstance(spec.get("ref"), str) and "://" in spec["ref"]:
                schemes.setdefault(spec["ref"].partition("://")[0].lower(), None)
    return list(schemes)


def _refs(data: Any, pool: ProviderPool | None) -> list[tuple[ErrorCode, JsonPath, str]]:
    found: list[tuple[ErrorCode, JsonPath, str]] = []
    validated: dict[str, Any] = {}
    for name, job in _jobs(data).items():
        secrets = job.get("secrets")
        if not isinstance(secrets, Mapping):
            continue
        for secret, spec in secrets.items():
            if not isinstance(spec, Mapping) or not isinstance(spec.get("ref"), str):
                continue
            path: JsonPath = ("jobs", name, "secrets", str(secret), "ref")
            try:
                ref = check_syntax(spec["ref"])
                if pool is not None:
                    pool.available(ref.scheme)
                    if ref.scheme not in validated:
                        validated[ref.scheme] = _validator_for(pool, ref.scheme)
                    provider = validated[ref.scheme]
                    if provider is not None:
                        provider.validate(ref)
            except LoomError as exc:
                code = exc.code if exc.code.value.startswith("SECRETS_") else ErrorCode.SECRETS_REF_INVALID
                found.append((code, path, exc.message))
            except Exception as exc:  # a provider's bug: its own problem line, never a traceback
                # (only the type: a foreign exception's text is not trusted to be value-free)
                scheme = str(spec["ref"]).partition("://")[0]
                found.append((
                    ErrorCode.SECRETS_PROVIDER_FAILED,
                    path,
                    f"the {scheme!r} secrets provider failed to validate {spec['ref']!r} "
                    f"({type(exc).__name__}{raised_at(exc)}): fix or report that provider",
                ))
    return found


#: a provider that cannot start for want of credentials is still fine for ``check``
_AUTH_CODES = frozenset({ErrorCode.SECRETS_AUTH_MISSING, ErrorCode.SECRETS_AUTH_INVALID})


def _validator_for(pool: ProviderPool, scheme: str) -> Any:
    """The provider, if it can be built; ``None`` if only credentials are missing (check never
    needs auth). Any other failure to start (bad provider settings) is reported, since ``run``
    would fail on it too."""
    try:
        return pool.get(scheme)
    except LoomError as exc:
        if exc.code in _AUTH_CODES:
            return None
        raise


def _dag(data: Any) -> list[tuple[ErrorCode, JsonPath, str]]:
    jobs = _jobs(data)
    found: list[tuple[ErrorCode, JsonPath, str]] = []
    needs: dict[str, list[str]] = {}
    for name, job in jobs.items():
        raw = job.get("needs") or []
        wanted = [n for n in raw if isinstance(n, str)] if isinstance(raw, list) else []
        needs[name] = []
        for i, need in enumerate(wanted):
            if need not in jobs:
                found.append(
                    (ErrorCode.WORKFLOW_CYCLE, ("jobs", name, "needs", i), f"needs unknown job {need!r}")
                )
            elif need == name:
                found.append((ErrorCode.WORKFLOW_CYCLE, ("jobs", name, "needs", i), "a job cannot need itself"))
            else:
                needs[name].append(need)
    try:
        topological_order(needs)
    except LoomError as exc:
        cycle = exc.details.get("cycle") or [""]
        found.append((exc.code, ("jobs", str(cycle[0]), "needs"), exc.message))
    return found


def _duplicate(dup: Duplicate) -> tuple[ErrorCode, JsonPath, str]:
    *earlier, last = dup.lines
    if len(set(dup.lines)) == 1:
        where = f"written {len(dup.lines)} times on line {last}"
    else:
        where = "lines " + ", ".join(str(n) for n in earlier) + f" and {last}"
    return (
        ErrorCode.WORKFLOW_SCHEMA_INVALID,
        dup.path,
        f"duplicate key {dup.path[-1]!r} ({where}): YAML keeps only the last and silently drops the "
        "earlier; merge them or rename one",
    )


def _retyped_key(key: RetypedKey) -> tuple[ErrorCode, JsonPath, str]:
    """``ON:`` is the boolean true to YAML 1.1 and ``1:`` an integer; names are text, so say which
    key, as written, and how to quote it."""
    written = str(key.path[-1])
    if not written:
        message = f"an empty key (line {key.line}) is read by YAML 1.1 as {key.kind}; write a name"
    else:
        message = f"key {written} (line {key.line}) is read by YAML 1.1 as {key.kind}; quote it: \"{written}\""
    return ErrorCode.WORKFLOW_SCHEMA_INVALID, key.path, message


def _debug_trace(data: Any) -> list[tuple[ErrorCode, JsonPath, str]]:
    """The workflow's own variables turn on shell tracing (``CI_DEBUG_TRACE``, ``SHELLOPTS`` with
    xtrace) while a secret is injected directly: `loom run` of the whole workflow refuses it with
    SECRETS_UNSAFE_DEBUG_TRACE, so the file can be faulted before anything runs."""
    direct = [
        f"jobs.{name}.secrets.{secret}"
        for name, job in _jobs(data).items()
        if isinstance(job.get("secrets"), Mapping)
        for secret, spec in job["secrets"].items()
        if isinstance(spec, Mapping) and spec.get("file", True) is False
    ]
    if not direct:
        return []
    found: list[tuple[ErrorCode, JsonPath, str]] = []
    for where, block in _variable_blocks(data):
        if not isinstance(block, Mapping):
            continue
        for key in (TRACE_VARIABLE, SHELL_OPTIONS_VARIABLE):
            value = block.get(key)
            if isinstance(value, str | int | float | bool) and turns_on_tracing(key, variable_text(value)):
                fix = f"remove {key}" if key == TRACE_VARIABLE else "take xtrace out of it"
                found.append((
                    ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE,
                    (*where, key),
                    f"{key} here turns on shell tracing, which prints the secrets injected directly "
                    f"(file: false): {', '.join(direct)}; `loom run` refuses this, so switch them to "
                    f"file: true or {fix}",
                ))
    return found


def _problems(doc: LoadedDocument, pool: ProviderPool | None) -> list[Problem]:
    """Every problem of ``doc`` as parsed (the last copy of a duplicate key only)."""
    raw: list[tuple[ErrorCode, JsonPath, str]] = [_duplicate(dup) for dup in doc.duplicates]
    schema = schema_problems(doc.data, doc.scalars) if isinstance(doc.data, Mapping) else []
    # a key the schema refuses anyway (`on:` at the top, a variable `10`) is named by that problem,
    # and quoting would not help it
    refused = {p.path for p in schema}
    raw.extend(_retyped_key(key) for key in doc.retyped_keys if key.path not in refused)
    if not isinstance(doc.data, Mapping):
        raw.append((ErrorCode.WORKFLOW_SCHEMA_INVALID, (), "a workflow is a mapping with a `jobs` key"))
    else:
        raw.extend((ErrorCode.WORKFLOW_SCHEMA_INVALID, p.path, p.message) for p in schema)
        raw.extend(_overlaps(doc.data))
        if pool is not None:
            # every referenced provider's plugin first: its policy then protects its credentials
            # from the variables checked below and from every provider built (env:// included)
            pool.load(_schemes(doc.data))
        raw.extend(_credential_variables(doc.data, pool))
        raw.extend(_retyped_variables(doc))
        raw.extend(_debug_trace(doc.data))
        raw.extend(_finite_timeouts(doc.data))
        raw.extend(_refs(doc.data, pool))
        raw.extend(_dag(doc.data))
    return [Problem(code, path, doc.line_of(path), message) for code, path, message in raw]


def check_document(doc: LoadedDocument, pool: ProviderPool | None) -> list[Problem]:
    """Every problem in ``doc``; empty means valid. ``pool=None`` skips provider checks.

    The problems inside an earlier copy of a duplicate key come from a parse that keeps that copy,
    so a dropped copy cannot hide them (each says which copy it is in).
    """
    problems = _problems(doc, pool)
    seen = set(problems)
    for where, line, variant in doc.earlier_copies():
        note = f" (in the copy of {where[-1]!r} at line {line}, which YAML drops for a later one)"
        for problem in _problems(variant, pool):
            if problem.path[: len(where)] == where and problem not in seen:
                seen.add(problem)
                problems.append(Problem(problem.code, problem.path, problem.line, problem.message + note))
    return sorted(problems, key=lambda p: (p.line, format_path(p.path)))


def problems_error(file: str, problems: list[Problem]) -> LoomError:
    """One ``LoomError`` for a failed check; its code is the first problem's."""
    listing = "\n".join("  " + p.render(file) for p in problems)
    return LoomError(
        problems[0].code,
        f"{file}: {len(problems)} problem(s); run `loom check {file}`:\n{listing}",
        details={"problems": [p.to_dict() for p in problems]},
    )


def load_workflow(path: Path | str, pool: ProviderPool | None) -> Workflow:
    """Load, check and build a workflow; any problem raises (see :func:`problems_error`).

    Tracing next to a direct secret is left to the run's own guard
    (:func:`loom_core.workflow.guard.check_debug_trace`): it knows the jobs selected and the
    environment, and ``loom run --job`` of a job that meets no direct secret is fine.
    """
    doc = load_file(path)
    problems = [p for p in check_document(doc, pool) if p.code != ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE]
    if problems:
        raise problems_error(str(path), problems)
    return build_workflow(doc.data, fallback_name=Path(path).stem)
