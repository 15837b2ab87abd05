"""`loom check` in one pass: keys YAML retypes, duplicate keys, syntax errors and tracing problems
are reported with everything else, each with code, path and line, instead of hiding the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.workflow.check import Problem, check_document
from loom_core.workflow.loader import parse_text

from .conftest import run_loom


def _check(text: str, tmp_path: Path) -> list[Problem]:
    return check_document(parse_text(text, tmp_path / "w.yml"), None)


def _found(problems: list[Problem]) -> set[tuple[str, int, str]]:
    return {(p.to_dict()["path"], p.line, p.code.value) for p in problems}


def test_a_retyped_key_does_not_hide_schema_and_graph_problems(tmp_path: Path) -> None:
    """An unquoted ``ON`` key made the check stop after the key problem: the non-list ``script`` and
    the unknown field appeared only once the key was fixed. One pass reports all five."""
    text = (
        "variables: {ON: x, REGION: 1.10}\n"
        "jobs:\n"
        "  a:\n"
        '    script: "x"\n'
        "    bogus: 1\n"
        "    needs: [zz]\n"
    )
    assert _found(_check(text, tmp_path)) == {
        ("$.variables.ON", 1, "WORKFLOW_SCHEMA_INVALID"),
        ("$.variables.REGION", 1, "WORKFLOW_SCHEMA_INVALID"),
        ("$.jobs.a.script", 4, "WORKFLOW_SCHEMA_INVALID"),
        ("$.jobs.a.bogus", 5, "WORKFLOW_SCHEMA_INVALID"),
        ("$.jobs.a.needs[0]", 6, "WORKFLOW_CYCLE"),
    }


def test_a_retyped_key_is_named_as_written_with_its_line(tmp_path: Path) -> None:
    """"found a bool key" did not say which key; the message names it as written, says what YAML
    made of it and how to quote it. ``ON`` and ``on`` are two keys (YAML merged them into one
    ``True`` silently); a quoted key is fine."""
    text = 'variables: {"YES": q}\njobs:\n  a:\n    variables: {ON: a, on: b}\n    script: [x]\n  10: {script: [x]}\n'
    messages = {p.to_dict()["path"]: (p.line, p.message) for p in _check(text, tmp_path)}
    assert len(messages) == 3
    assert messages["$.jobs.a.variables.ON"] == (
        4, 'key ON (line 4) is read by YAML 1.1 as a boolean; quote it: "ON"'
    )
    assert messages["$.jobs.a.variables.on"] == (
        4, 'key on (line 4) is read by YAML 1.1 as a boolean; quote it: "on"'
    )
    assert messages["$.jobs.10"] == (6, 'key 10 (line 6) is read by YAML 1.1 as an integer; quote it: "10"')


def test_a_retyped_key_the_schema_refuses_anyway_is_one_problem(tmp_path: Path) -> None:
    """``on:`` at the top (a GitHub Actions habit) is an unknown field whatever its type; quoting
    would not help, so only the unknown field is reported, naming it as written."""
    problems = _check("on: push\njobs: {a: {script: [x]}}\n", tmp_path)
    assert [(p.to_dict()["path"], p.line) for p in problems] == [("$.on", 1)]
    assert "unknown field 'on'" in problems[0].message


def test_a_value_that_must_be_text_is_named_as_written(tmp_path: Path) -> None:
    """"must be of type string" for ``name: 1.10`` or ``needs: [1]`` did not say that YAML read a
    number; the message says so and how to quote it, but never repeats what is in a secret."""
    text = (
        "name: 1.10\n"
        "jobs:\n"
        '  "1": {script: [x]}\n'
        "  a:\n"
        "    needs: [1]\n"
        "    secrets: {T: {ref: 73519046}}\n"
        "    script: [yes]\n"
    )
    messages = {p.to_dict()["path"]: p.message for p in _check(text, tmp_path)}
    assert messages["$.name"] == 'must be text, but YAML 1.1 reads the unquoted 1.10 as a number; quote it: "1.10"'
    assert messages["$.jobs.a.needs[0]"].endswith('reads the unquoted 1 as an integer; quote it: "1"')
    assert 'as a boolean; quote it: "yes"' in messages["$.jobs.a.script[0]"]
    assert "integer" in messages["$.jobs.a.secrets.T.ref"]
    assert "73519046" not in messages["$.jobs.a.secrets.T.ref"]


DUPLICATE_JOB = """\
jobs:
  build:
    script: "x"
    bogus: 1
    needs: [zz]
  build:
    timeout: 5
    script: "y"
"""


def test_a_duplicate_key_names_both_lines_and_both_copies_are_checked(tmp_path: Path) -> None:
    """Of two ``build:`` jobs YAML keeps the second, so the first copy's problems were never
    reported, and the second copy's ``script`` was placed on the first copy's line. The duplicate
    names both lines; each copy's problems are reported at their own lines."""
    problems = _check(DUPLICATE_JOB, tmp_path)
    assert _found(problems) == {
        ("$.jobs.build", 6, "WORKFLOW_SCHEMA_INVALID"),
        ("$.jobs.build.script", 3, "WORKFLOW_SCHEMA_INVALID"),
        ("$.jobs.build.bogus", 4, "WORKFLOW_SCHEMA_INVALID"),
        ("$.jobs.build.needs[0]", 5, "WORKFLOW_CYCLE"),
        ("$.jobs.build.script", 8, "WORKFLOW_SCHEMA_INVALID"),
    }
    by_line = {p.line: p.message for p in problems}
    assert "duplicate key 'build' (lines 2 and 6)" in by_line[6]
    assert by_line[4].endswith("(in the copy of 'build' at line 2, which YAML drops for a later one)")
    assert "copy of" not in by_line[8]


def test_three_copies_of_a_variable_are_one_problem_naming_every_line(tmp_path: Path) -> None:
    """Every line of a thrice-written key is named, and the earlier values' problems are found."""
    text = "variables:\n  A: x\n  A: 1.10\n  A: z\njobs: {a: {script: [x]}}\n"
    problems = _check(text, tmp_path)
    assert _found(problems) == {
        ("$.variables.A", 3, "WORKFLOW_SCHEMA_INVALID"),
        ("$.variables.A", 4, "WORKFLOW_SCHEMA_INVALID"),
    }
    duplicate = next(p for p in problems if p.line == 4)
    assert "(lines 2, 3 and 4)" in duplicate.message


@pytest.mark.parametrize(
    ("text", "line", "started"),
    [
        ('jobs:\n  a:\n    script: ["x]\n  b: {script: [y]}\n\n\n', 3, "a quoted scalar that starts at line 3"),
        ("jobs:\n  a:\n    script: [x, y\n\n\n", 3, "a flow sequence that starts at line 3"),
    ],
)
def test_an_unclosed_quote_or_bracket_points_where_it_opened(
    tmp_path: Path, text: str, line: int, started: str
) -> None:
    """YAML runs to the end of the file looking for the closing quote, and the error named the end
    of the file; it names the line where the quote (or bracket) opened, and the end as well."""
    with pytest.raises(LoomError) as caught:
        parse_text(text, tmp_path / "w.yml")
    assert caught.value.code == ErrorCode.WORKFLOW_YAML_INVALID
    assert caught.value.details["line"] == line
    assert started in caught.value.message
    (tmp_path / "w.yml").write_text(text)
    proc = run_loom(["check", "--format", "json", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 1
    [problem] = json.loads(proc.stdout)
    assert problem["line"] == line


DIRECT = """\
jobs:
  deploy:
    secrets:
      API_TOKEN: {ref: "env://API_TOKEN", file: false}
    script: ["echo hi"]
  other:
    script: ["touch other.marker"]
"""


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("variables: {CI_DEBUG_TRACE: true}\n", "$.variables.CI_DEBUG_TRACE"),
        ("variables: {CI_DEBUG_TRACE: 'On'}\n", "$.variables.CI_DEBUG_TRACE"),
        ("variables: {SHELLOPTS: xtrace}\n", "$.variables.SHELLOPTS"),
        ("variables: {SHELLOPTS: 'braceexpand:xtrace'}\n", "$.variables.SHELLOPTS"),
    ],
)
def test_check_reports_tracing_next_to_a_direct_secret(tmp_path: Path, setting: str, path: str) -> None:
    """`loom run` refuses tracing turned on by the workflow's own variables while a secret is
    injected directly; `loom check` said OK for such a file. It reports SECRETS_UNSAFE_DEBUG_TRACE
    at the variable, naming the secret, and exits non-zero."""
    (tmp_path / "w.yml").write_text(setting + DIRECT)
    proc = run_loom(["check", "--format", "json", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 1
    [problem] = json.loads(proc.stdout)
    assert (problem["code"], problem["path"], problem["line"]) == ("SECRETS_UNSAFE_DEBUG_TRACE", path, 1)
    assert "jobs.deploy.secrets.API_TOKEN" in problem["message"]


def test_check_reports_tracing_in_job_variables(tmp_path: Path) -> None:
    """A job's own ``CI_DEBUG_TRACE`` counts too: a whole `loom run` would meet the direct secret."""
    text = DIRECT.replace('    script: ["touch', '    variables: {CI_DEBUG_TRACE: "1"}\n    script: ["touch')
    problems = _check(text, tmp_path)
    assert _found(problems) == {("$.jobs.other.variables.CI_DEBUG_TRACE", 7, "SECRETS_UNSAFE_DEBUG_TRACE")}


@pytest.mark.parametrize(
    "setting",
    ["variables: {CI_DEBUG_TRACE: 'false'}\n", "variables: {SHELLOPTS: 'braceexpand:hashall'}\n"],
)
def test_no_tracing_problem_without_tracing(tmp_path: Path, setting: str) -> None:
    """Tracing switched off, or SHELLOPTS without xtrace, is fine next to a direct secret."""
    assert _check(setting + DIRECT, tmp_path) == []


def test_no_tracing_problem_with_file_secrets_only(tmp_path: Path) -> None:
    """Traced jobs whose secrets are all files are allowed (the trace shows paths)."""
    text = "variables: {SHELLOPTS: xtrace, CI_DEBUG_TRACE: 'yes'}\n" + DIRECT.replace(", file: false", "")
    assert _check(text, tmp_path) == []


def test_run_of_a_job_that_meets_no_direct_secret_is_not_refused(tmp_path: Path) -> None:
    """The file-level problem is `loom check`'s; `loom run --job other` selects no direct secret,
    so the run's guard, which knows the selection, lets it run traced."""
    text = DIRECT.replace('    script: ["touch', '    variables: {CI_DEBUG_TRACE: "1"}\n    script: ["touch')
    (tmp_path / "w.yml").write_text(text)
    proc = run_loom(["run", "--job", "other", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "other.marker").exists()
    refused = run_loom(["run", "w.yml"], cwd=tmp_path)
    assert refused.returncode == 1 and b"error[SECRETS_UNSAFE_DEBUG_TRACE]" in refused.stderr


def test_a_duplicate_on_one_line_is_said_so(tmp_path: Path) -> None:
    """Two copies in one flow mapping share a line; "lines 1 and 1" read like a typo."""
    problems = _check("jobs: {a: {script: x}, a: {script: [y]}}\n", tmp_path)
    assert _found(problems) == {
        ("$.jobs.a", 1, "WORKFLOW_SCHEMA_INVALID"),
        ("$.jobs.a.script", 1, "WORKFLOW_SCHEMA_INVALID"),
    }
    assert any("(written 2 times on line 1)" in p.message for p in problems)


def test_check_names_the_place_of_a_yaml_error_once(tmp_path: Path) -> None:
    """`loom check` printed ``w.yml:3: WORKFLOW_YAML_INVALID at $: w.yml:3: not valid YAML ...``."""
    (tmp_path / "w.yml").write_text('jobs:\n  a:\n    script: ["x\n', encoding="utf-8")
    done = run_loom(["check", "w.yml"], cwd=tmp_path)
    line = done.stdout.decode().splitlines()[0]
    assert line.startswith("w.yml:3: WORKFLOW_YAML_INVALID at $: not valid YAML")
    assert line.count("w.yml:3") == 1
