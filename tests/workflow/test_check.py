"""`loom check`: every problem at once with code, JSON path and line; exit status."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from loom_core.errors import ErrorCode
from loom_core.plugins.host import PluginHost
from loom_core.secrets.providers import ProviderPool
from loom_core.workflow.check import check_document
from loom_core.workflow.loader import load_file, parse_text
from loom_core.workflow.refs import check_syntax
from tests.provider_stubs import host_with_provider

from .conftest import run_loom

INLINE = "hunter2-inline-value-9f3a"

BROKEN = f"""\
variables: {{REGION: eu-west-1, TOKEN: plain}}
default:
  secrets: {{A: {{ref: "env://A"}}}}
jobs:
  a:
    needs: [nope]
    colour: red
    variables: {{PW: x}}
    secrets:
      PW: {{ref: "env://PW"}}
      TOKEN: {{ref: "env://T"}}
      INLINE: "{INLINE}"
      V: {{ref: "env://V", value: "{INLINE}"}}
      K: {{ref: "keepass://main//x"}}
      O: {{ref: "op://vault/item"}}
      U: {{ref: "vault://x/y"}}
    script: ["true"]
  b:
    needs: [c]
    script: []
  c:
    needs: [b]
    script: ["x"]
    timeout: -1
"""

EXPECTED = {
    ("$.default.secrets", 3, "WORKFLOW_SCHEMA_INVALID"),
    ("$.jobs.a.needs[0]", 6, "WORKFLOW_CYCLE"),
    ("$.jobs.a.colour", 7, "WORKFLOW_SCHEMA_INVALID"),
    ("$.jobs.a.secrets.PW", 10, "WORKFLOW_SCHEMA_INVALID"),
    ("$.jobs.a.secrets.TOKEN", 11, "WORKFLOW_SCHEMA_INVALID"),
    ("$.jobs.a.secrets.INLINE", 12, "WORKFLOW_SCHEMA_INVALID"),
    ("$.jobs.a.secrets.V.value", 13, "WORKFLOW_SCHEMA_INVALID"),
    ("$.jobs.a.secrets.K.ref", 14, "SECRETS_REF_INVALID"),
    ("$.jobs.a.secrets.O.ref", 15, "SECRETS_REF_INVALID"),
    ("$.jobs.a.secrets.U.ref", 16, "SECRETS_PROVIDER_UNAVAILABLE"),
    ("$.jobs.b.needs", 19, "WORKFLOW_CYCLE"),
    ("$.jobs.b.script", 20, "WORKFLOW_SCHEMA_INVALID"),
    ("$.jobs.c.timeout", 24, "WORKFLOW_SCHEMA_INVALID"),
}


def _pool() -> ProviderPool:
    return ProviderPool(PluginHost(environ={}), {})


def test_every_problem_reported_at_once_with_code_path_and_line(tmp_path: Path) -> None:
    """One pass lists all thirteen problems, each with its code, JSON path and line."""
    doc = parse_text(BROKEN, tmp_path / "w.yml")
    problems = check_document(doc, _pool())
    found = {(p.to_dict()["path"], p.line, p.code.value) for p in problems}
    assert found == EXPECTED


def test_cli_json_lists_problems_and_exits_nonzero(tmp_path: Path) -> None:
    """`loom check --format json` prints a JSON list of the same problems and exits 1."""
    (tmp_path / "w.yml").write_text(BROKEN)
    proc = run_loom(["check", "--format", "json", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 1
    listed = json.loads(proc.stdout)
    assert {(p["path"], p["line"], p["code"]) for p in listed} == EXPECTED
    assert all(p["message"] for p in listed)


def test_cli_text_never_echoes_inline_values(tmp_path: Path) -> None:
    """A value pasted where a reference belongs is rejected without being echoed back."""
    (tmp_path / "w.yml").write_text(BROKEN)
    proc = run_loom(["check", "w.yml"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert (INLINE.encode() in out) is False, "inline value echoed by loom check"
    assert b"w.yml:3: WORKFLOW_SCHEMA_INVALID at $.default.secrets" in out
    assert b"job-scoped" in out


def test_a_value_pasted_into_ref_is_not_echoed(tmp_path: Path) -> None:
    """`ref: "hunter2hunter2"` (no scheme) or a password that happens to contain :// is refused
    as SECRETS_REF_INVALID without repeating the text."""
    (tmp_path / "w.yml").write_text(
        "jobs:\n  a:\n    secrets:\n      A: {ref: 'hunter2hunter2-pasted'}\n      B: {ref: 'p@ss://w0rd-pasted'}\n"
        "      C: {ref: 'env://#Pasted-S3cret-123'}\n"
        "    script: ['true']\n"
    )
    proc = run_loom(["check", "w.yml"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert out.count(b"SECRETS_REF_INVALID") == 3
    assert b"hunter2" not in out and b"w0rd" not in out and b"p@ss" not in out and b"S3cret" not in out


def test_valid_workflow_prints_ok_and_exits_zero(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A valid workflow exits 0 with one OK line."""
    write_workflow(
        """\
        variables: {REGION: eu-west-1}
        jobs:
          build: {script: ["make"]}
          migrate:
            needs: [build]
            variables: {DB_HOST: db.internal}
            secrets:
              DATABASE_PASSWORD: {ref: "env://DB_PW"}
              API_TOKEN: {ref: "env://API_TOKEN", file: false}
            script: ["./migrate.sh"]
        """
    )
    proc = run_loom(["check", "workflow.yml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == b"workflow.yml: OK"


def test_yaml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    """Malformed YAML is WORKFLOW_YAML_INVALID with the line of the error."""
    (tmp_path / "w.yml").write_text("jobs:\n  a:\n    script: [\"x\"\n  b: {}\n")
    proc = run_loom(["check", "--format", "json", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 1
    [problem] = json.loads(proc.stdout)
    assert problem["code"] == "WORKFLOW_YAML_INVALID"
    assert problem["line"] >= 3


def test_missing_file_is_workflow_not_found(tmp_path: Path) -> None:
    """A missing workflow file fails with WORKFLOW_NOT_FOUND."""
    proc = run_loom(["check", "absent.yml"], cwd=tmp_path)
    assert proc.returncode == 1
    assert b"error[WORKFLOW_NOT_FOUND]" in proc.stderr


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    """A duplicated key (which YAML would silently overwrite) is a problem with its line."""
    doc = parse_text("jobs:\n  a: {script: [x]}\n  a: {script: [y]}\n", tmp_path / "w.yml")
    problems = check_document(doc, None)
    assert [(p.to_dict()["path"], p.line) for p in problems] == [("$.jobs.a", 3)]


def test_an_override_after_a_merge_key_is_not_a_duplicate(tmp_path: Path) -> None:
    """``<<: *anchor`` then an override of one merged key is valid YAML and means the override;
    it was reported as a duplicate key because the mapping was indexed after PyYAML merged it."""
    text = (
        "jobs:\n"
        "  a: &base {script: [\"true\"], timeout: 5}\n"
        "  b:\n"
        "    <<: *base\n"
        "    timeout: 9\n"
        "  c: {script: [x], script: [y]}\n"
    )
    doc = parse_text(text, tmp_path / "w.yml")
    assert doc.data["jobs"]["b"] == {"script": ["true"], "timeout": 9}
    problems = check_document(doc, None)
    assert [(p.to_dict()["path"], p.line) for p in problems] == [("$.jobs.c.script", 6)]


def test_absurd_documents_are_coded_errors_not_tracebacks(tmp_path: Path) -> None:
    """Nesting far beyond any workflow (it raised RecursionError), aliases that expand a small file
    into millions of nodes, and a file that is not UTF-8 (it was reported as not found) are each
    WORKFLOW_YAML_INVALID with a message saying which."""
    deep = tmp_path / "deep.yml"
    deep.write_text("jobs: " + "[" * 1500 + "]" * 1500 + "\n")
    laughs = tmp_path / "laughs.yml"
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    laughs.write_text("\n".join(rows) + "\njobs: {a: {script: *a6}}\n")
    latin = tmp_path / "latin.yml"
    latin.write_bytes("jobs:\n  a: {script: ['echo caf\u00e9']}\n".encode("latin-1"))
    expected = {"deep.yml": "deeper than 64 levels", "laughs.yml": "more than 200000 nodes", "latin.yml": "not UTF-8"}
    for name, reason in expected.items():
        proc = run_loom(["check", "--format", "json", name], cwd=tmp_path)
        assert proc.returncode == 1, name
        assert b"Traceback" not in proc.stderr, proc.stderr
        error = json.loads(proc.stderr)["error"] if proc.stderr.strip() else json.loads(proc.stdout)[0]
        assert error["code"] == "WORKFLOW_YAML_INVALID" and reason in error["message"], (name, error)


def test_variables_yaml_would_retype_must_be_quoted(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1.10`` as 1.1, ``0755`` as 493, ``yes`` as true and ``12:30:00`` as 45000;
    the job would silently get the changed text. Each is reported with the fix; values whose text
    survives (``3``, ``1.5``, ``true``, ``True``, quoted ones) are fine."""
    text = (
        "variables: {VER: 1.10, MODE: 0755}\n"
        "jobs:\n"
        "  a:\n"
        "    variables: {ENABLED: yes, AT: 12:30:00, N: 3, F: 1.5, T: true, T2: True, Q: \"1.10\"}\n"
        "    script: [x]\n"
        "    timeout: .nan\n"
        "  b: {script: [x], timeout: .inf}\n"
    )
    problems = {p.to_dict()["path"]: p.message for p in check_document(parse_text(text, tmp_path / "w.yml"), None)}
    assert set(problems) == {
        "$.variables.VER", "$.variables.MODE", "$.jobs.a.variables.ENABLED", "$.jobs.a.variables.AT",
        "$.jobs.a.timeout", "$.jobs.b.timeout",
    }
    assert problems["$.variables.VER"] == (
        "YAML reads 1.10 as float 1.1, so the job would get '1.1'; quote it to keep the text: VER: \"1.10\""
    )
    assert "get 'true'" in problems["$.jobs.a.variables.ENABLED"] and "get '493'" in problems["$.variables.MODE"]
    assert problems["$.jobs.a.timeout"] == "must be a finite number of seconds greater than 0"


def test_missing_jobs_and_top_level_unknown_field(tmp_path: Path) -> None:
    """`jobs` is required and unknown top-level fields are rejected."""
    doc = parse_text("name: x\nsteps: []\n", tmp_path / "w.yml")
    messages = {p.to_dict()["path"]: p.message for p in check_document(doc, None)}
    assert "missing required field 'jobs'" in messages["$"]
    assert "unknown field 'steps'" in messages["$.steps"]


def test_bad_names_rejected(tmp_path: Path) -> None:
    """Job names and variable/secret names must be safe identifiers."""
    doc = parse_text(
        'jobs:\n  "bad job": {script: [x]}\n  ok:\n    variables: {"1X": y}\n    script: [x]\n',
        tmp_path / "w.yml",
    )
    paths = {p.to_dict()["path"] for p in check_document(doc, None)}
    assert paths == {"$.jobs['bad job']", "$.jobs.ok.variables.1X"}


def test_reference_syntax_per_scheme() -> None:
    """env, keepass and op references are checked for their scheme's syntax."""
    good = [
        "env://API_TOKEN",
        "keepass://main/ci/db/postgres#password",
        "keepass://main/Entry",
        "keepass://ci-main/ci/db",  # '-' as the plugin allows (LOOM_KEEPASS_DB_CI_MAIN_*)
        "op://vault/item/field",
        "op://vault/item/section/field",
        "op://dev/ssh/private key?ssh-format=openssh",
    ]
    bad = [
        "env://1BAD",
        "env://A#f",
        "env://A/B",
        "keepass://main",
        "keepass://main//e",
        "keepass://-main/e",
        "keepass://bad.alias/e",
        "keepass://main/e#",
        "op://vault/item",
        "op://v/i/s/f/extra",
        "op://v//f",
        "op://v/i/f#x",
        "no-scheme",
        "://x",
    ]
    for raw in good:
        check_syntax(raw)
    for raw in bad:
        try:
            check_syntax(raw)
        except Exception as exc:
            assert getattr(exc, "code", None) == ErrorCode.SECRETS_REF_INVALID, raw
        else:
            raise AssertionError(f"{raw!r} accepted")


def test_brackets_in_a_reference_are_a_syntax_verdict_not_a_traceback(tmp_path: Path) -> None:
    """``[`` right after ``scheme://`` made urllib raise "Invalid IPv6 URL" out of `loom check`;
    the reference is now judged by its scheme's own syntax."""
    text = (
        "jobs:\n  a:\n    secrets:\n"
        "      A: {ref: \"env://[X\"}\n"
        "      B: {ref: \"keepass://ma[in/x\"}\n"
        "    script: [x]\n"
    )
    (tmp_path / "w.yml").write_text(text)
    proc = run_loom(["check", "--format", "json", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr, proc.stderr
    codes = {(p["path"], p["code"]) for p in json.loads(proc.stdout)}
    assert codes == {
        ("$.jobs.a.secrets.A.ref", "SECRETS_REF_INVALID"),
        ("$.jobs.a.secrets.B.ref", "SECRETS_REF_INVALID"),
    }
    assert check_syntax("op://[vault]/item/field").path == "[vault]/item/field"


def _pool_validating_with(scheme: str, validate: Callable[[object], None]) -> ProviderPool:
    """A provider pool whose ``scheme`` provider only validates (check must never resolve)."""
    return ProviderPool(host_with_provider(scheme, validate=validate), {})


def test_installed_provider_validate_is_consulted(tmp_path: Path) -> None:
    """References also go through the installed provider's own validate()."""

    def refuse(ref: object) -> None:
        from loom_core.errors import LoomError

        raise LoomError(ErrorCode.SECRETS_REF_INVALID, f"{ref}: strict refuses everything")

    doc = parse_text(
        'jobs:\n  a:\n    secrets: {S: {ref: "strict://x"}}\n    script: [x]\n', tmp_path / "w.yml"
    )
    [problem] = check_document(doc, _pool_validating_with("strict", refuse))
    assert problem.code == ErrorCode.SECRETS_REF_INVALID
    assert "strict refuses everything" in problem.message


def test_disabled_provider_is_unavailable(tmp_path: Path) -> None:
    """A disabled provider's scheme is SECRETS_PROVIDER_UNAVAILABLE (no fallback)."""
    path = tmp_path / "w.yml"
    path.write_text('jobs:\n  a:\n    secrets: {S: {ref: "env://X"}}\n    script: [x]\n')
    host = PluginHost(environ={}, disabled=["secrets:env"])
    [problem] = check_document(load_file(path), ProviderPool(host, {}))
    assert problem.code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE
    assert "PLUGIN_DISABLED" in problem.message


def test_secret_names_are_upper_case(tmp_path: Path) -> None:
    """Secret names become redaction tokens (SECRET_<NAME>), so they must be upper-case identifiers."""
    doc = parse_text(
        'jobs:\n  a:\n    secrets: {db_pass: {ref: "env://X"}}\n    script: [x]\n', tmp_path / "w.yml"
    )
    [problem] = check_document(doc, None)
    assert problem.to_dict()["path"] == "$.jobs.a.secrets.db_pass" and problem.line == 3
    assert "upper-case" in problem.message


def test_top_level_format_flag_applies(tmp_path: Path) -> None:
    """`loom --format json check FILE` gives the JSON list too."""
    (tmp_path / "w.yml").write_text("jobs:\n  a: {script: []}\n")
    proc = run_loom(["--format", "json", "check", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[0]["path"] == "$.jobs.a.script"


def test_shipped_schema_is_a_valid_json_schema() -> None:
    """The packaged workflow.schema.json satisfies its own metaschema (Draft 2020-12)."""
    import jsonschema

    from loom_core.workflow.schema import workflow_schema

    schema = workflow_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")


def test_a_provider_that_cannot_start_is_reported_but_missing_credentials_are_not(tmp_path: Path) -> None:
    """`loom check` needs no credentials: an op:// reference checks OK without a token. A provider
    whose own settings are broken (an invalid LOOM_OP_TIMEOUT_SECONDS) cannot start, so `loom run`
    would fail on it: check reports it at the reference, with its code, and exits non-zero."""
    (tmp_path / "w.yml").write_text('jobs:\n  a:\n    secrets: {T: {ref: "op://v/i/f"}}\n    script: ["true"]\n')
    fine = run_loom(["check", "w.yml"], cwd=tmp_path)
    assert fine.returncode == 0 and b"OK" in fine.stdout, fine.stderr
    broken = run_loom(["check", "w.yml"], cwd=tmp_path, env={"LOOM_OP_TIMEOUT_SECONDS": "abc"})
    assert broken.returncode == 1
    report = broken.stdout + broken.stderr
    assert b"SECRETS_PROVIDER_UNAVAILABLE" in report and b"jobs.a.secrets.T.ref" in report


def test_provider_credentials_are_not_workflow_variables(tmp_path: Path) -> None:
    """A 1Password token or a KeePass database setting among workflow or job variables is refused at
    its path (it belongs in the environment loom run starts in), and its value is not echoed."""
    (tmp_path / "w.yml").write_text(
        "variables: {OP_SERVICE_ACCOUNT_TOKEN: ops_literal_token_value}\n"
        "jobs:\n  a:\n    variables: {LOOM_KEEPASS_DB_MAIN_PATH: /srv/main.kdbx, REGION: eu}\n"
        "    script: ['true']\n"
    )
    proc = run_loom(["check", "--format", "json", "w.yml"], cwd=tmp_path)
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)
    assert {(p["code"], p["path"]) for p in problems} == {
        ("WORKFLOW_SCHEMA_INVALID", "$.variables.OP_SERVICE_ACCOUNT_TOKEN"),
        ("WORKFLOW_SCHEMA_INVALID", "$.jobs.a.variables.LOOM_KEEPASS_DB_MAIN_PATH"),
    }
    assert b"ops_literal_token_value" not in proc.stdout + proc.stderr


def test_a_provider_whose_validate_crashes_gets_a_problem_line_not_a_traceback(tmp_path: Path) -> None:
    """A validate() raising TypeError ended `loom check` with a traceback (later INTERNAL_ERROR telling
    users to report a Loom bug). It is one SECRETS_PROVIDER_FAILED problem at that reference, naming
    the provider and the exception type, never the exception's text; other references still checked."""

    def crash(ref: object) -> None:
        raise TypeError("internal state quoting buggy-value-88c1")

    doc = parse_text(
        'jobs:\n  a:\n    secrets:\n      S: {ref: "buggy://x"}\n      T: {ref: "env"}\n    script: [x]\n',
        tmp_path / "w.yml",
    )
    problems = check_document(doc, _pool_validating_with("buggy", crash))
    by_path = {p.path: p for p in problems}
    crashed = by_path[("jobs", "a", "secrets", "S", "ref")]
    assert crashed.code == ErrorCode.SECRETS_PROVIDER_FAILED
    assert "'buggy' secrets provider" in crashed.message and "TypeError" in crashed.message
    assert "in test_check.py:" in crashed.message and "(crash)" in crashed.message  # where, for its author
    assert "buggy-value-88c1" not in crashed.message
    assert by_path[("jobs", "a", "secrets", "T", "ref")].code == ErrorCode.SECRETS_REF_INVALID


def test_a_plugin_that_fails_to_register_is_reported_with_its_own_error(tmp_path: Path) -> None:
    """An installed secrets plugin whose registration raises (here: AuthPolicy misused) is reported by
    `loom check` with that error, not as "registered no backend" from a second load attempt."""
    dist = tmp_path / "site" / "check_badreg-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: check-badreg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[loom.secrets]\nbadreg = check_badreg\n")
    (tmp_path / "site" / "check_badreg.py").write_text(
        "from loom_core.contracts.secrets import AuthPolicy\n"
        "from loom_core.hookspecs import hookimpl\n"
        "@hookimpl\n"
        "def loom_register_backends(registry):\n"
        "    registry.add_secrets('badreg', lambda ctx: None, auth_policy=AuthPolicy(credentials='BADREG_TOKEN'))\n"
    )
    (tmp_path / "w.yml").write_text("jobs:\n  a:\n    secrets: {X: {ref: 'badreg://thing'}}\n    script: ['true']\n")
    proc = run_loom(["check", "w.yml"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert b"SECRETS_PROVIDER_UNAVAILABLE" in out and b"AuthPolicy.credentials" in out
    assert b"registered no secrets backend" not in out
